//! Deterministic fuzzing of the GDB remote protocol client on stable Rust (no cargo-fuzz): a
//! seeded xorshift generator makes random and mutated wire input for
//!
//! - the codec: the frame decoder fed in random pieces, the body decoder, and the parsers of
//!   what a packet carries (stop replies, `qSupported`, console output, target descriptions);
//! - the client over loopback: `RspClient` against a scripted stub that answers like QEMU but
//!   misbehaves on purpose (mutated, truncated, run-length bombed and garbage replies, console
//!   floods, stalls, hang-ups, hostile target descriptions), for connect, memory and register
//!   reads, continue/interrupt, step, monitor commands and detach.
//!
//! Properties: errors, never a panic; memory stays under the client's limits (decoded payloads,
//! buffered frames, console output); a valid packet after garbage is still decoded; a fatal
//! error never leaves a half-open connection that believes the guest halted; and a session
//! never ends with the stub's guest left halted while the stub kept talking properly.
//!
//! `LEAKSCOPE_FUZZ_ITERS` sets the number of codec inputs (default 50 000, a few seconds in a
//! debug build); the client sessions are real TCP connections with timeouts, so they get their
//! own smaller share, one per 1 000 codec inputs (at least 24). `make fuzz` runs 10 million.
//! Each test prints `fuzz_rsp: N inputs, ...`. A failure names its seed; rerun one seed with
//! `LEAKSCOPE_FUZZ_SEED` (and `LEAKSCOPE_FUZZ_TRACE=1` to see what the scripted stub did).

use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use inspector::rsp::codec::{self, Decoder, Frame, MAX_FRAME, MAX_PAYLOAD};
use inspector::rsp::target_xml::{self, RegisterMap};
use inspector::rsp::{
    BreakpointType, RspClient, RspConfig, RspError, Supported, MAX_CONSOLE_BYTES,
};

// ---- the generator ---------------------------------------------------------------------------

/// xorshift64* : small, fast, deterministic.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so neighbouring seeds give unrelated streams (never zero).
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (((self.next() >> 32) * n as u64) >> 32) as usize
    }

    /// True with probability `percent`/100.
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn iterations() -> u64 {
    std::env::var("LEAKSCOPE_FUZZ_ITERS")
        .ok()
        .and_then(|v| v.trim().replace('_', "").parse().ok())
        .unwrap_or(50_000)
}

/// Seeds to run: all of `0..n`, or the one in `LEAKSCOPE_FUZZ_SEED`.
fn seeds(n: u64) -> Box<dyn Iterator<Item = u64> + Send> {
    match std::env::var("LEAKSCOPE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        Some(seed) => Box::new(std::iter::once(seed)),
        None => Box::new(0..n),
    }
}

/// Bytes that mean something on the wire, and some that do not.
const WIRE: &[u8] = b"$#}*+-%\x03OKET;:,0123456789abcdefxmlSWX\x00\x7f\xff \x1d~";

fn random_bytes(rng: &mut Rng, max: usize) -> Vec<u8> {
    let len = rng.below(max + 1);
    (0..len)
        .map(|_| {
            if rng.chance(80) {
                *rng.pick(WIRE)
            } else {
                rng.next() as u8
            }
        })
        .collect()
}

/// `n` random bytes in hex.
fn random_hex(rng: &mut Rng, n: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let data: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    codec::push_hex(&mut out, &data);
    out
}

/// A payload a stub might send: a stop reply, hex data, `OK`, an error, console output, XML…
fn plausible_payload(rng: &mut Rng) -> Vec<u8> {
    match rng.below(12) {
        0 => b"OK".to_vec(),
        1 => format!("E{:02x}", rng.below(256)).into_bytes(),
        2 => b"T02thread:p01.01;".to_vec(),
        3 => format!("T05swbreak:;thread:p01.01;20:{};", "00".repeat(8)).into_bytes(),
        4 => {
            let mut p = b"O".to_vec();
            let n = 1 + rng.below(40);
            p.extend(random_hex(rng, n));
            p
        }
        5 => b"PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+".to_vec(),
        6 => br#"l<target><xi:include href="cpu.xml"/><reg name="pc" bitsize="64" regnum="32"/></target>"#.to_vec(),
        7 => format!("W{:02x}", rng.below(256)).into_bytes(),
        8 => b"".to_vec(),
        // Long runs: what run-length encoding is for.
        9 => vec![*rng.pick(b"0fx"); rng.below(300)],
        10 => random_bytes(rng, 40),
        _ => {
            let n = rng.below(64);
            random_hex(rng, n)
        }
    }
}

/// Frames `payload` with escapes and, if `rle`, run-length encoding as gdbserver and the
/// `gdbstub` crate do it: a run of 4 or more (up to 98) becomes `b*n`, never with a count that
/// would be `#` or `$`.
fn frame(payload: &[u8], rle: bool, out: &mut Vec<u8>) {
    if !rle {
        codec::encode_packet(payload, out);
        return;
    }
    out.push(b'$');
    let start = out.len();
    let mut i = 0;
    while i < payload.len() {
        let b = payload[i];
        let escaped = matches!(b, b'$' | b'#' | b'}' | b'*');
        if escaped {
            out.push(b'}');
            out.push(b ^ 0x20);
            i += 1;
            continue;
        }
        out.push(b);
        let mut run = payload[i + 1..].iter().take_while(|&&c| c == b).count();
        run = run.min(97);
        while run == 6 || run == 7 {
            run -= 1; // counts `#` (35) and `$` (36) are not allowed
        }
        if run >= 3 {
            out.push(b'*');
            out.push(29 + run as u8);
            i += 1 + run;
        } else {
            i += 1;
        }
    }
    let sum = codec::checksum(&out[start..]);
    out.extend(format!("#{sum:02x}").bytes());
}

/// Applies 1 to 4 random mutations to `bytes`.
fn mutate(rng: &mut Rng, bytes: &mut Vec<u8>) {
    for _ in 0..1 + rng.below(4) {
        let len = bytes.len();
        match rng.below(8) {
            0 if len > 0 => {
                let i = rng.below(len);
                bytes[i] ^= 1 << rng.below(8);
            }
            1 if len > 0 => {
                let i = rng.below(len);
                bytes[i] = *rng.pick(WIRE);
            }
            2 => {
                let i = rng.below(len + 1);
                bytes.insert(i, *rng.pick(b"$#}*+-%\x03"));
            }
            3 if len > 0 => {
                bytes.remove(rng.below(len));
            }
            4 if len > 0 => bytes.truncate(rng.below(len)),
            5 if len > 0 => {
                let a = rng.below(len);
                let b = (a + 1 + rng.below(16)).min(len);
                let piece = bytes[a..b].to_vec();
                let at = rng.below(bytes.len() + 1);
                bytes.splice(at..at, piece);
            }
            6 => {
                let at = rng.below(len + 1);
                let junk = random_bytes(rng, 8);
                bytes.splice(at..at, junk);
            }
            _ => {
                // A run-length bomb in the middle: big expansion from few bytes.
                let at = rng.below(len + 1);
                bytes.splice(at..at, b"0*~".repeat(1 + rng.below(20)));
            }
        }
    }
}

/// Every parser of packet contents, on `payload`: none may panic.
fn parse_everything(payload: &[u8]) {
    let _ = codec::parse_stop_reply(payload);
    let _ = codec::is_stop_reply(payload);
    let _ = codec::classify(payload);
    if let Some(text) = codec::console_output(payload) {
        assert!(text.len() <= payload.len() / 2);
    }
    let _ = codec::decode_hex(payload);
    let _ = codec::parse_hex_u64(payload);
    let _ = Supported::parse(payload);
    if let Ok(items) = target_xml::parse_items(&String::from_utf8_lossy(payload)) {
        let (mut next, mut map) = (0u64, RegisterMap::default());
        for item in &items {
            let _ = target_xml::number_registers(item, &mut next, &mut map);
        }
    }
}

// ---- the codec -------------------------------------------------------------------------------

#[derive(Default)]
struct CodecStats {
    inputs: u64,
    bytes: u64,
    packets: u64,
    errors: u64,
    bad_checksums: u64,
    big: u64,
}

/// Feeds `input` to `d` in random pieces and takes every frame out, checking the bounds.
/// Returns the decoded packets.
fn decode_all(
    rng: &mut Rng,
    d: &mut Decoder,
    input: &[u8],
    stats: &mut CodecStats,
) -> Vec<Vec<u8>> {
    let mut packets = Vec::new();
    let mut payload = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = if rng.chance(50) {
            rest.len()
        } else {
            1 + rng.below(rest.len().min(64))
        };
        let (piece, tail) = rest.split_at(n);
        rest = tail;
        d.feed(piece);
        loop {
            match d.next_frame(&mut payload) {
                Ok(Some(Frame::Packet)) => {
                    assert!(
                        payload.len() <= MAX_PAYLOAD,
                        "decoded {} bytes",
                        payload.len()
                    );
                    stats.packets += 1;
                    packets.push(payload.clone());
                }
                Ok(Some(Frame::BadChecksum)) => stats.bad_checksums += 1,
                Ok(Some(_)) => {}
                Ok(None) => break,
                Err(_) => {
                    assert!(
                        payload.len() <= MAX_PAYLOAD,
                        "decoded {} bytes",
                        payload.len()
                    );
                    stats.errors += 1;
                }
            }
        }
        assert!(
            d.buffered() <= MAX_FRAME + n,
            "{} bytes buffered after a piece of {n}",
            d.buffered()
        );
    }
    packets
}

/// A big input, now and then: a run-length bomb far over the payload limit, or a frame with no
/// end that outgrows the frame limit.
fn big_input(rng: &mut Rng) -> Vec<u8> {
    if rng.chance(50) {
        let body = b"0*~".repeat(MAX_FRAME / 3 - 8);
        let mut out = Vec::new();
        out.push(b'$');
        out.extend_from_slice(&body);
        out.extend(format!("#{:02x}", codec::checksum(&body)).bytes());
        out
    } else {
        let mut out = b"$".to_vec();
        out.resize(MAX_FRAME + 2 + rng.below(100), b'a');
        out
    }
}

fn fuzz_codec_input(seed: u64, d: &mut Decoder, stats: &mut CodecStats) {
    let mut rng = Rng::new(seed);
    let mut input = Vec::new();
    // The payloads of the frames, if the input is left intact (they must decode exactly).
    let mut intact = Some(Vec::new());
    if seed % 100_000 == 7 {
        input = big_input(&mut rng);
        intact = None;
        stats.big += 1;
    } else if rng.chance(25) {
        input = random_bytes(&mut rng, 96);
        intact = None;
    } else {
        for _ in 0..1 + rng.below(4) {
            match rng.below(10) {
                0 => input.push(*rng.pick(b"+-")),
                1 => input.extend_from_slice(b"\r\n"),
                _ => {
                    let payload = plausible_payload(&mut rng);
                    frame(&payload, rng.chance(50), &mut input);
                    if let Some(p) = intact.as_mut() {
                        p.push(payload);
                    }
                }
            }
        }
        if rng.chance(70) {
            mutate(&mut rng, &mut input);
            intact = None;
        }
    }
    stats.inputs += 1;
    stats.bytes += input.len() as u64;

    // The body decoder alone, on the raw input.
    let mut out = Vec::new();
    let _ = codec::decode_body(&input, &mut out);
    assert!(out.len() <= MAX_PAYLOAD);

    let packets = decode_all(&mut rng, d, &input, stats);
    for p in &packets {
        parse_everything(p);
    }
    if let Some(expected) = intact {
        assert_eq!(
            packets, expected,
            "seed {seed}: intact frames must decode exactly"
        );
    }
    // A good packet after whatever came before is decoded: garbage, truncated frames and bad
    // checksums cost what they are, never the packet after them.
    let mut sentinel = Vec::new();
    codec::encode_packet(b"Lsentinel", &mut sentinel);
    let after = decode_all(&mut rng, d, &sentinel, stats);
    assert_eq!(
        after.last().map(Vec::as_slice),
        Some(&b"Lsentinel"[..]),
        "seed {seed}: a valid packet after {:?} was lost",
        String::from_utf8_lossy(&input[..input.len().min(200)])
    );
    assert!(d.is_empty(), "seed {seed}: bytes left after the sentinel");
}

#[test]
fn fuzz_codec() {
    let n = iterations();
    let start = Instant::now();
    let mut stats = CodecStats::default();
    let mut d = Decoder::new();
    for seed in seeds(n) {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            fuzz_codec_input(seed, &mut d, &mut stats)
        }));
        if let Err(e) = result {
            eprintln!("fuzz_rsp: codec failed at seed {seed} (LEAKSCOPE_FUZZ_SEED={seed})");
            std::panic::resume_unwind(e);
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "fuzz_rsp: {} inputs to the codec in {secs:.1} s ({:.0} inputs/s, {} MiB): {} packets, \
         {} bad checksums, {} decode errors, {} big inputs, {} bytes skipped as garbage",
        stats.inputs,
        stats.inputs as f64 / secs,
        stats.bytes >> 20,
        stats.packets,
        stats.bad_checksums,
        stats.errors,
        stats.big,
        d.garbage(),
    );
}

/// Mutated target descriptions through the tolerant XML reader and the register numbering.
#[test]
fn fuzz_target_description_parser() {
    let n = (iterations() / 10).max(1000);
    let docs: &[&str] = &[
        r#"<target><xi:include href="riscv-64bit-cpu.xml"/><!-- c --><xi:include href='csr.xml'/></target>"#,
        r#"<feature><reg name="zero" bitsize="64" regnum="0"/><reg name="ra" bitsize="64"/></feature>"#,
        r#"<reg name="a" bitsize="64" regnum="4294967295"/><reg name="b" bitsize="64"/>"#,
        r#"<reg name='x' bitsize='32' regnum='4294967296'/><reg name="y" bitsize="99999999999"/>"#,
    ];
    let start = Instant::now();
    for seed in seeds(n) {
        let mut rng = Rng::new(seed ^ 0x786d_6c00);
        let mut doc = rng.pick(docs).as_bytes().to_vec();
        if rng.chance(50) {
            doc.extend_from_slice(rng.pick(docs).as_bytes());
        }
        mutate(&mut rng, &mut doc);
        parse_everything(&doc);
    }
    println!(
        "fuzz_rsp: {n} inputs to the target description parser in {:.1} s",
        start.elapsed().as_secs_f64()
    );
}

// ---- the client over loopback ----------------------------------------------------------------

/// How a scripted stub misbehaves in one session.
#[derive(Debug, Clone, Copy)]
struct Chaos {
    /// Percent of replies that are tampered with.
    percent: usize,
    /// Percent of tamperings that may end the session's usefulness (stall, hang-up, bomb).
    fatal_percent: usize,
}

/// What a scripted stub did, for the properties checked after the session.
#[derive(Debug, Default)]
struct StubLog {
    /// The stub's guest is halted (it starts halted: stubs halt the guest on attach).
    halted: bool,
    detached: bool,
    /// The stub misbehaved in a way no client can undo: it hung up, said the guest exited, sent
    /// mutated frames (which may pass their checksum), or refused a `D`. The guest may then end
    /// up halted through no fault of the client. (Stalls, truncated frames, run-length bombs and
    /// duplicated replies do not count: the client must leave the guest running after those.)
    broken: bool,
    packets: u64,
}

/// A stub that answers like QEMU and misbehaves as `chaos` says. Runs until the client hangs
/// up or, idle, for a few seconds.
struct Stub {
    seed: u64,
    rng: Rng,
    chaos: Chaos,
    s: TcpStream,
    log: StubLog,
    /// The last frame sent, as it should have been sent, for a resend on `-`.
    last: Vec<u8>,
    running: bool,
    no_ack: bool,
    /// The last packet was refused with `-`.
    nacked: bool,
}

/// True if `LEAKSCOPE_FUZZ_TRACE` is set: the scripted stub prints what it does.
fn tracing() -> bool {
    std::env::var_os("LEAKSCOPE_FUZZ_TRACE").is_some()
}

fn trace(seed: u64, what: &str, bytes: &[u8]) {
    if tracing() {
        let text = String::from_utf8_lossy(&bytes[..bytes.len().min(120)]).into_owned();
        let more = if bytes.len() > 120 { "…" } else { "" };
        eprintln!("stub {seed} {what}: {text:?}{more}");
    }
}

impl Stub {
    /// Sends `bytes`. A write error (the client hung up) does not end the session: what the
    /// client sent before is still read and acted on, as a real stub would.
    fn send(&mut self, bytes: &[u8]) -> bool {
        trace(self.seed, "sends", bytes);
        let _ = self.s.write_all(bytes);
        true
    }

    /// Sends `payload` as a reply, maybe tampered with. Returns false to end the session.
    fn reply(&mut self, payload: &[u8]) -> bool {
        let mut framed = Vec::new();
        frame(payload, self.rng.chance(30), &mut framed);
        self.last = framed.clone();
        if !self.rng.chance(self.chaos.percent) {
            return self.send(&framed);
        }
        let fatal = self.rng.chance(self.chaos.fatal_percent);
        let stop_reply = codec::is_stop_reply(payload);
        let how = self.rng.below(if fatal { 12 } else { 7 });
        trace(self.seed, &format!("tampers ({how}) with"), payload);
        match how {
            // Recoverable on the wire: the client asks for a resend and gets it intact.
            0 => {
                let sum = framed.len() - 1;
                framed[sum] = if framed[sum] == b'0' { b'1' } else { b'0' };
                self.send(&framed)
            }
            1 => {
                let mut junk = random_bytes(&mut self.rng, 16);
                junk.retain(|b| !matches!(b, b'$' | b'%' | b'#'));
                junk.extend_from_slice(&framed);
                self.send(&junk)
            }
            2 => {
                // Console output first (sometimes more than the client keeps).
                let total = if self.rng.chance(10) {
                    MAX_CONSOLE_BYTES + self.rng.below(MAX_CONSOLE_BYTES)
                } else {
                    self.rng.below(2000)
                };
                let mut out = Vec::new();
                let text: Vec<u8> = (0..total).map(|i| b' ' + (i % 90) as u8).collect();
                for part in text.chunks(1 + self.rng.below(1500)) {
                    let mut o = b"O".to_vec();
                    codec::push_hex(&mut o, part);
                    frame(&o, false, &mut out);
                }
                out.extend_from_slice(&framed);
                self.send(&out)
            }
            3 => {
                // Dribbled a few bytes at a time.
                for piece in framed.chunks(1 + self.rng.below(8)) {
                    if !self.send(piece) {
                        return false;
                    }
                    if self.rng.chance(5) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                }
                true
            }
            4 => {
                // A well-framed reply with other contents (the client must cope, not trust).
                let mut other = Vec::new();
                let mut payload = plausible_payload(&mut self.rng);
                if stop_reply && self.rng.chance(50) {
                    // Something where a stop reply is due: the stub did stop the guest.
                    mutate(&mut self.rng, &mut payload);
                }
                // "The guest exited": the client believes it and lets go.
                self.log.broken |= matches!(payload.first(), Some(b'W' | b'X'));
                frame(&payload, false, &mut other);
                self.send(&other)
            }
            5 => {
                // A notification first (non-stop mode only; an all-stop client ignores it).
                let mut out = Vec::new();
                let body = b"Stop:T05thread:p01.01;";
                out.push(b'%');
                out.extend_from_slice(body);
                out.extend(format!("#{:02x}", codec::checksum(body)).bytes());
                out.extend_from_slice(&framed);
                self.send(&out)
            }
            6 => {
                // Run-length encoded with the longest runs (legal, if unusual).
                let mut out = Vec::new();
                frame(payload, true, &mut out);
                self.send(&out)
            }
            // From here on the connection may not survive.
            7 => true, // stall: say nothing
            8 => {
                self.log.broken = true;
                false // hang up
            }
            9 => {
                // A frame that decodes far past the payload limit.
                let body = b"0*~".repeat(MAX_PAYLOAD / 90);
                let mut out = b"$".to_vec();
                out.extend_from_slice(&body);
                out.extend(format!("#{:02x}", codec::checksum(&body)).bytes());
                self.send(&out)
            }
            10 => {
                // Truncated: the rest never comes.
                let cut = self.rng.below(framed.len());
                self.send(&framed[..cut])
            }
            11 if self.rng.chance(50) => {
                // The reply twice: the second is taken for the reply to the next request.
                let twice = [framed.clone(), framed].concat();
                self.send(&twice)
            }
            _ => {
                // Random mutation of the reply, maybe followed by the good one.
                self.log.broken = true;
                let mut bad = framed.clone();
                mutate(&mut self.rng, &mut bad);
                if self.rng.chance(50) {
                    bad.extend_from_slice(&framed);
                }
                self.send(&bad)
            }
        }
    }

    /// Memory of the scripted guest: byte at `a` is `a as u8`.
    fn memory_reply(&mut self, req: &str) -> Vec<u8> {
        let Some((a, l)) = req.split_once(',') else {
            return b"E01".to_vec();
        };
        let (Ok(a), Ok(l)) = (u64::from_str_radix(a, 16), usize::from_str_radix(l, 16)) else {
            return b"E01".to_vec();
        };
        if l > 0x800 {
            return b"E22".to_vec();
        }
        let data: Vec<u8> = (0..l as u64).map(|i| a.wrapping_add(i) as u8).collect();
        let mut out = Vec::new();
        codec::push_hex(&mut out, &data);
        out
    }

    fn description(&mut self, annex: &str) -> Vec<u8> {
        let hostile = self.rng.chance(self.chaos.percent);
        match annex {
            "target.xml" if hostile => match self.rng.below(3) {
                0 => r#"<target><xi:include href="target.xml"/></target>"#.into(),
                1 => r#"<xi:include href="cpu.xml"/>"#.repeat(200).into_bytes(),
                _ => r#"<reg name="a" bitsize="64" regnum="4294967295"/><reg name="pc" bitsize="64"/>"#.into(),
            },
            "target.xml" => r#"<target><xi:include href="cpu.xml"/></target>"#.into(),
            _ => {
                let mut doc = String::from("<feature>");
                for i in 0..32 {
                    doc.push_str(&format!(r#"<reg name="x{i}" bitsize="64"/>"#));
                }
                doc.push_str(r#"<reg name="pc" bitsize="64"/></feature>"#);
                doc.into_bytes()
            }
        }
    }

    /// Answers one packet. Returns false to end the session.
    fn answer(&mut self, p: &[u8]) -> bool {
        trace(self.seed, &format!("gets (running: {})", self.running), p);
        self.log.packets += 1;
        if self.running {
            // QEMU stops the guest on any byte and drops the packet.
            self.running = false;
            self.log.halted = true;
            return true;
        }
        let text = String::from_utf8_lossy(p).into_owned();
        let reply: Vec<u8> = match text.as_str() {
            t if t.starts_with("qSupported") => {
                let mut r = String::from("PacketSize=1000;qXfer:features:read+;vContSupported+");
                if self.rng.chance(20) {
                    r.push_str(";QStartNoAckMode+");
                }
                if self.rng.chance(self.chaos.percent) {
                    r = format!("PacketSize={:x}", self.rng.next() >> self.rng.below(64));
                }
                r.into_bytes()
            }
            "QStartNoAckMode" => {
                let ok = self.reply(b"OK");
                self.no_ack = true;
                return ok;
            }
            "?" => b"T02thread:p01.01;".to_vec(),
            "c" => {
                self.running = true;
                self.log.halted = false;
                if self.rng.chance(20) {
                    // A breakpoint is hit at once.
                    self.log.halted = true;
                    self.running = false;
                    return self.reply(b"T05swbreak:;thread:p01.01;");
                }
                return true;
            }
            "s" => {
                self.log.halted = false;
                let ok = self.reply(b"T05thread:p01.01;");
                self.log.halted = true;
                return ok;
            }
            "D" | "D;1" => {
                self.log.detached = true;
                self.log.halted = false;
                let _ = self.reply(b"OK");
                return false;
            }
            "g" => "00".repeat(33 * 8).into_bytes(),
            t if t.starts_with('p') => "0000208000000000".into(),
            t if t.starts_with('m') => self.memory_reply(&t[1..]),
            t if t.starts_with('M') || t.starts_with('Z') || t.starts_with('z') => b"OK".to_vec(),
            t if t.starts_with("Qqemu.PhyMemMode:") => b"OK".to_vec(),
            t if t.starts_with("qRcmd,") => {
                let mut o = b"O".to_vec();
                codec::push_hex(&mut o, b"pc=80200000\n");
                if !self.reply(&o) {
                    return false;
                }
                b"OK".to_vec()
            }
            t if t.starts_with("qXfer:features:read:") => {
                let rest = &t["qXfer:features:read:".len()..];
                let Some((annex, range)) = rest.rsplit_once(':') else {
                    return self.reply(b"E00");
                };
                let (off, len) = range.split_once(',').unwrap_or(("0", "0"));
                let off = usize::from_str_radix(off, 16).unwrap_or(0);
                let len = usize::from_str_radix(len, 16).unwrap_or(0);
                let doc = self.description(annex);
                let end = off.saturating_add(len).min(doc.len());
                let mut r = vec![if end < doc.len() { b'm' } else { b'l' }];
                r.extend_from_slice(&doc[off.min(end)..end]);
                r
            }
            _ => Vec::new(),
        };
        self.reply(&reply)
    }

    fn run(&mut self) {
        self.s
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let mut d = Decoder::new();
        let mut buf = [0u8; 4096];
        let mut payload = Vec::new();
        let mut idle = Instant::now();
        loop {
            let n = match self.s.read(&mut buf) {
                Ok(0) => {
                    trace(self.seed, "reads EOF", b"");
                    return;
                }
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if idle.elapsed() > Duration::from_secs(5) {
                        return;
                    }
                    continue;
                }
                Err(e) => {
                    trace(self.seed, &format!("read error {e}"), b"");
                    return;
                }
            };
            idle = Instant::now();
            // The client sends 0x03 only between packets, and its payloads are ASCII.
            for piece in buf[..n].split_inclusive(|&b| b == 0x03) {
                let (bytes, interrupt) = match piece.split_last() {
                    Some((0x03, head)) => (head, true),
                    _ => (piece, false),
                };
                d.feed(bytes);
                loop {
                    match d.next_frame(&mut payload) {
                        Ok(Some(Frame::Packet)) => {
                            if !self.no_ack && self.nack(&payload) {
                                if !self.send(b"-") {
                                    return;
                                }
                                continue;
                            }
                            if !self.no_ack && !self.send(b"+") {
                                return;
                            }
                            let p = payload.clone();
                            if !self.answer(&p) {
                                return;
                            }
                        }
                        Ok(Some(Frame::Nack)) => {
                            let last = self.last.clone();
                            if !self.send(&last) {
                                return;
                            }
                        }
                        Ok(Some(Frame::BadChecksum)) => panic!("the client sent a bad checksum"),
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => panic!("the client sent an undecodable packet: {e}"),
                    }
                }
                if interrupt {
                    trace(
                        self.seed,
                        &format!("gets 0x03 (running: {})", self.running),
                        b"",
                    );
                }
                if interrupt && self.running {
                    self.running = false;
                    self.log.halted = true;
                    if !self.reply(b"T02thread:p01.01;") {
                        return;
                    }
                }
                // While stopped, QEMU ignores 0x03.
            }
        }
    }

    /// True to refuse an intact packet with `-` (never twice in a row, so the client's
    /// retransmits suffice). Refusing `D` is beyond repair: the client may be abandoning the
    /// connection and not wait.
    fn nack(&mut self, packet: &[u8]) -> bool {
        let refuse = !self.nacked && self.rng.chance(self.chaos.percent / 2);
        self.nacked = refuse;
        if refuse && packet.starts_with(b"D") {
            self.log.broken = true;
        }
        refuse
    }
}

#[derive(Default)]
struct ClientStats {
    sessions: AtomicU64,
    connected: AtomicU64,
    ops: AtomicU64,
    errors: AtomicU64,
    detached: AtomicU64,
}

fn client_config() -> RspConfig {
    RspConfig {
        connect_timeout: Duration::from_secs(2),
        reply_timeout: Duration::from_millis(40),
        max_retransmits: 3,
        // Replies cut anywhere are read through the spinning path too.
        spin: inspector::rsp::spin::SPIN,
    }
}

/// Longest one client operation may take against any stub: each request is bounded by the
/// reply timeout (a target description takes many requests).
const OP_LIMIT: Duration = Duration::from_secs(20);

/// Checks what must hold after every client operation that failed.
fn check_error(seed: u64, op: &str, c: &RspClient, e: &RspError) {
    if e.is_fatal() {
        let waiting_on_a_running_guest = matches!(e, RspError::Timeout { .. }) && c.is_running();
        assert!(
            c.is_closed() || waiting_on_a_running_guest,
            "seed {seed}: {op} failed fatally ({e}) but the connection is still open"
        );
    }
}

fn fuzz_client_session(seed: u64, stats: &ClientStats) {
    let mut rng = Rng::new(seed ^ 0x00c1_1e47);
    let chaos = Chaos {
        percent: *rng.pick(&[0, 2, 5, 10, 25, 60]),
        fatal_percent: *rng.pick(&[0, 10, 40]),
    };
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let stub_rng = Rng::new(seed ^ 0x57ab);
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        s.set_nodelay(true).unwrap();
        let mut stub = Stub {
            seed,
            rng: stub_rng,
            chaos,
            s,
            log: StubLog {
                halted: true,
                ..StubLog::default()
            },
            last: Vec::new(),
            running: false,
            no_ack: false,
            nacked: false,
        };
        if stub.rng.chance(30) {
            // QEMU 7.2's unsolicited stop reply on connect.
            let _ = stub.reply(b"T02thread:p01.01;");
        }
        stub.run();
        stub.log
    });

    stats.sessions.fetch_add(1, Ordering::Relaxed);
    let mut client = match RspClient::connect(&addr, client_config()) {
        Ok(c) => {
            stats.connected.fetch_add(1, Ordering::Relaxed);
            Some(c)
        }
        Err(e) => {
            trace(seed, &format!("client: connect failed: {e}"), b"");
            assert!(!matches!(e, RspError::Connect { .. }), "seed {seed}: {e}");
            stats.errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    };
    if let Some(c) = client.as_mut() {
        for _ in 0..1 + rng.below(8) {
            if c.is_closed() {
                break;
            }
            let start = Instant::now();
            let (op, result): (&str, Result<(), RspError>) = match rng.below(10) {
                0 | 1 => {
                    let len = 1 + rng.below(0x1800);
                    let mut buf = vec![0u8; len];
                    let addr = 0x8000_0000 + rng.below(0x10000) as u64;
                    ("read_memory", c.read_memory(addr, &mut buf))
                }
                2 => ("write_memory", c.write_memory(0x8000_1000, &[0x5a; 300])),
                3 => ("read_register", c.read_register(32).map(drop)),
                4 => ("read_registers_raw", c.read_registers_raw().map(drop)),
                5 => ("monitor", c.monitor("info registers").map(drop)),
                6 => ("set_phy_mem_mode", c.set_phy_mem_mode(true).map(drop)),
                7 => (
                    "breakpoint",
                    c.insert_breakpoint(BreakpointType::Software, 0x8020_0000, 4),
                ),
                8 => ("step", c.step().map(drop)),
                _ => {
                    // Continue, let it run a moment, stop it.
                    let r = c.cont().and_then(|()| {
                        if rng.chance(50) {
                            std::thread::sleep(Duration::from_millis(rng.below(3) as u64));
                        }
                        match c.wait_for_stop(Duration::from_millis(rng.below(5) as u64))? {
                            Some(_) => Ok(()),
                            None => c.interrupt().map(drop),
                        }
                    });
                    ("cont+interrupt", r)
                }
            };
            assert!(
                start.elapsed() < OP_LIMIT,
                "seed {seed}: {op} took {:?}",
                start.elapsed()
            );
            stats.ops.fetch_add(1, Ordering::Relaxed);
            trace(seed, &format!("client: {op}: {result:?}"), b"");
            if let Err(e) = &result {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                check_error(seed, op, c, e);
            }
            assert!(c.take_console_output().len() <= MAX_CONSOLE_BYTES);
        }
    }
    // End the session: detach (or drop, which detaches).
    if let Some(mut c) = client {
        let start = Instant::now();
        if rng.chance(50) {
            if let Err(e) = c.detach() {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                check_error(seed, "detach", &c, &e);
            }
            assert!(c.is_closed());
        }
        drop(c);
        assert!(
            start.elapsed() < OP_LIMIT,
            "seed {seed}: detach took {:?}",
            start.elapsed()
        );
    }
    let log = server.join().expect("the scripted stub panicked");
    if log.detached {
        stats.detached.fetch_add(1, Ordering::Relaxed);
    }
    // The guest is never left halted by the client while the stub played fair on the wire.
    assert!(
        !log.halted || log.broken,
        "seed {seed} (chaos {chaos:?}): the session ended with the guest halted: {log:?}"
    );
}

#[test]
fn fuzz_client_over_loopback() {
    let sessions = (iterations() / 1000).max(24);
    // Most of a session's time is spent waiting (timeouts, stalls): run several at once.
    const WORKERS: u64 = 4;
    let stats = Arc::new(ClientStats::default());
    let start = Instant::now();
    let single: Option<u64> = std::env::var("LEAKSCOPE_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok());
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let stats = stats.clone();
            std::thread::spawn(move || {
                let mine: Vec<u64> = match single {
                    Some(seed) if w == 0 => vec![seed],
                    Some(_) => Vec::new(),
                    None => (w..sessions).step_by(WORKERS as usize).collect(),
                };
                for seed in mine {
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                        fuzz_client_session(seed, &stats)
                    }));
                    if let Err(e) = result {
                        eprintln!(
                            "fuzz_rsp: client session failed at seed {seed} \
                             (LEAKSCOPE_FUZZ_SEED={seed})"
                        );
                        std::panic::resume_unwind(e);
                    }
                }
            })
        })
        .collect();
    let mut failed = None;
    for w in workers {
        if let Err(e) = w.join() {
            failed.get_or_insert(e);
        }
    }
    if let Some(e) = failed {
        std::panic::resume_unwind(e);
    }
    let secs = start.elapsed().as_secs_f64();
    let s = &stats;
    println!(
        "fuzz_rsp: {} inputs (client sessions over loopback; their own share: one per 1000 of \
         LEAKSCOPE_FUZZ_ITERS) in {secs:.1} s ({:.0} sessions/s): {} connected, {} operations, \
         {} errors, {} detached cleanly",
        s.sessions.load(Ordering::Relaxed),
        s.sessions.load(Ordering::Relaxed) as f64 / secs,
        s.connected.load(Ordering::Relaxed),
        s.ops.load(Ordering::Relaxed),
        s.errors.load(Ordering::Relaxed),
        s.detached.load(Ordering::Relaxed),
    );
}
