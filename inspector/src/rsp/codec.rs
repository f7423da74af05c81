//! GDB remote serial protocol framing: checksums, escapes, run-length decoding, the incremental
//! frame decoder, hex helpers and the classification of reply payloads. Pure: no I/O.
//!
//! Wire format: a packet is `$payload#cc` where `cc` is the modulo-256 sum of the payload bytes
//! as sent (after escaping and run-length encoding), in two hex digits. Acknowledgements are the
//! single bytes `+` (received intact) and `-` (resend). Notifications are `%payload#cc` and are
//! never acknowledged. In the payload, `}` escapes the next byte (XOR 0x20) and `*` repeats the
//! previous decoded byte `n - 29` times, `n` being the byte after it.

use super::RspError;

/// Largest packet this client will buffer before declaring the stream malformed. Servers
/// advertise far less (QEMU: 4096); this only bounds memory when a peer sends garbage.
pub const MAX_FRAME: usize = 1 << 20;

/// Largest decoded payload: run-length encoding lets a frame of [`MAX_FRAME`] bytes expand about
/// 33 times; a body that decodes to more than this is malformed. No reply this client asks for
/// comes near it (QEMU's packets are at most 4 KiB).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// Modulo-256 sum of `data`, the RSP checksum.
pub fn checksum(data: &[u8]) -> u8 {
    data.iter().fold(0u8, |acc, &b| acc.wrapping_add(b))
}

/// Appends the framed packet `$payload#cc` to `out`, escaping `$`, `#`, `}` and `*` in the
/// payload. Never run-length encodes (servers must accept plain packets).
pub fn encode_packet(payload: &[u8], out: &mut Vec<u8>) {
    out.reserve(payload.len() + 4);
    out.push(b'$');
    let start = out.len();
    for &b in payload {
        if matches!(b, b'$' | b'#' | b'}' | b'*') {
            out.push(b'}');
            out.push(b ^ 0x20);
        } else {
            out.push(b);
        }
    }
    let sum = checksum(&out[start..]);
    out.push(b'#');
    out.push(HEX_DIGITS[usize::from(sum >> 4)]);
    out.push(HEX_DIGITS[usize::from(sum & 0xf)]);
}

/// Decodes the body of a packet as sent (between `$` and `#`) into `out`, undoing `}` escapes and
/// expanding `*` runs. `out` is cleared first. Fails on a dangling escape, a run with nothing
/// before it, a run count below 29, or a result over [`MAX_PAYLOAD`] bytes (`out` then holds at
/// most that many).
pub fn decode_body(raw: &[u8], out: &mut Vec<u8>) -> Result<(), RspError> {
    out.clear();
    out.reserve(raw.len().min(MAX_PAYLOAD));
    let mut i = 0;
    while i < raw.len() {
        match raw[i] {
            b'}' => {
                let Some(&next) = raw.get(i + 1) else {
                    return Err(RspError::malformed(
                        "packet body",
                        raw,
                        "ends in a `}` escape",
                    ));
                };
                out.push(next ^ 0x20);
                i += 2;
            }
            b'*' => {
                let (Some(&prev), Some(&count)) = (out.last(), raw.get(i + 1)) else {
                    return Err(RspError::malformed(
                        "packet body",
                        raw,
                        "`*` run without a byte",
                    ));
                };
                if count < 29 {
                    return Err(RspError::malformed(
                        "packet body",
                        raw,
                        "run count below 29",
                    ));
                }
                let n = usize::from(count - 29);
                if out.len() + n > MAX_PAYLOAD {
                    return Err(RspError::malformed(
                        "packet body",
                        raw,
                        &format!("decodes to more than {MAX_PAYLOAD} bytes"),
                    ));
                }
                out.resize(out.len() + n, prev);
                i += 2;
            }
            b => {
                if out.len() == MAX_PAYLOAD {
                    return Err(RspError::malformed(
                        "packet body",
                        raw,
                        &format!("decodes to more than {MAX_PAYLOAD} bytes"),
                    ));
                }
                out.push(b);
                i += 1;
            }
        }
    }
    Ok(())
}

/// One unit read from the byte stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// `+`: the peer received our last packet.
    Ack,
    /// `-`: the peer wants our last packet again.
    Nack,
    /// A packet with a correct checksum; its decoded payload was written to the caller's buffer.
    Packet,
    /// A packet whose checksum did not match; the caller should answer `-` when acks are on.
    BadChecksum,
    /// A `%` notification (non-stop mode); ignored by this all-stop client.
    Notification,
}

/// Incremental decoder: feed it the bytes read from the socket, take frames out.
///
/// Contract: bytes that cannot start a frame (anything but `+ - $ %` outside a packet) are
/// skipped and counted in [`Decoder::garbage`]; a `$` seen inside an unfinished packet, or in
/// place of a checksum digit, means the packet was truncated (a `$` is always escaped in a
/// payload, is never a run count and is no hex digit), so the decoder drops it and restarts
/// there. `%` is not a restart: it is a legal run count (8). Memory: at most [`MAX_FRAME`]
/// undecoded bytes plus what one [`Decoder::feed`] brought are buffered.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Bytes consumed from the front of `buf` but not yet compacted away.
    start: usize,
    /// Body bytes of the open packet at `start` already searched for `$` and `#` (none there),
    /// so a packet arriving in pieces is scanned once.
    scanned: usize,
    garbage: u64,
}

impl Decoder {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends bytes read from the peer.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.start > 0 && self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
        self.buf.extend_from_slice(bytes);
    }

    /// Bytes skipped so far because they belonged to no frame (including truncated packets).
    pub fn garbage(&self) -> u64 {
        self.garbage
    }

    /// True if no undecoded bytes are buffered.
    pub fn is_empty(&self) -> bool {
        self.start == self.buf.len()
    }

    /// Undecoded bytes buffered (at most [`MAX_FRAME`] plus the last [`Decoder::feed`]).
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Takes the next complete frame out of the buffer. For [`Frame::Packet`] the decoded
    /// payload is left in `payload` (cleared first). Returns `Ok(None)` when more bytes are
    /// needed, and an error if a packet is not decodable or exceeds [`MAX_FRAME`].
    pub fn next_frame(&mut self, payload: &mut Vec<u8>) -> Result<Option<Frame>, RspError> {
        loop {
            let pending = &self.buf[self.start..];
            let Some(first) = pending.first().copied() else {
                self.compact();
                return Ok(None);
            };
            match first {
                b'+' => {
                    self.consume(1);
                    return Ok(Some(Frame::Ack));
                }
                b'-' => {
                    self.consume(1);
                    return Ok(Some(Frame::Nack));
                }
                b'$' | b'%' => {
                    // Find the end marker, restarting at any new start byte (truncation).
                    let body = &pending[1..];
                    let from = self.scanned.min(body.len());
                    let h = match body[from..].iter().position(|&b| b == b'$' || b == b'#') {
                        None => {
                            self.scanned = body.len();
                            return self.need_more();
                        }
                        Some(i) if body[from + i] == b'$' => {
                            self.skip_truncated(from + i);
                            continue;
                        }
                        Some(i) => from + i,
                    };
                    self.scanned = h;
                    // A `$` where a checksum digit should be: this packet was cut off there.
                    let digits = &body[h + 1..body.len().min(h + 3)];
                    if let Some(k) = digits.iter().position(|&b| b == b'$') {
                        self.skip_truncated(h + 1 + k);
                        continue;
                    }
                    if digits.len() < 2 {
                        return self.need_more();
                    }
                    let raw = &body[..h];
                    let sent = parse_hex_byte(digits[0], digits[1]);
                    let frame = if sent != Some(checksum(raw)) {
                        Frame::BadChecksum
                    } else if first == b'%' {
                        Frame::Notification
                    } else {
                        let decoded = decode_body(raw, payload);
                        self.consume(1 + h + 3);
                        decoded?;
                        return Ok(Some(Frame::Packet));
                    };
                    self.consume(1 + h + 3);
                    return Ok(Some(frame));
                }
                _ => {
                    let skip = pending
                        .iter()
                        .position(|&b| matches!(b, b'+' | b'-' | b'$' | b'%'))
                        .unwrap_or(pending.len());
                    self.garbage += skip as u64;
                    self.consume(skip);
                }
            }
        }
    }

    /// Moves past `n` bytes at the front; the next frame starts after them.
    fn consume(&mut self, n: usize) {
        self.start += n;
        self.scanned = 0;
    }

    /// Drops a truncated packet: its start byte and the `r` body bytes before the next start.
    fn skip_truncated(&mut self, r: usize) {
        self.garbage += (1 + r) as u64;
        self.consume(1 + r);
    }

    fn need_more(&mut self) -> Result<Option<Frame>, RspError> {
        if self.buf.len() - self.start > MAX_FRAME {
            let len = self.buf.len() - self.start;
            self.buf.clear();
            self.start = 0;
            self.scanned = 0;
            return Err(RspError::Malformed {
                what: "packet framing".into(),
                detail: format!("no `#` end marker within {len} bytes"),
                packet: String::new(),
            });
        }
        self.compact();
        Ok(None)
    }

    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
    }
}

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Value of one ASCII hex digit, either case.
pub fn hex_value(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

fn parse_hex_byte(hi: u8, lo: u8) -> Option<u8> {
    Some(hex_value(hi)? << 4 | hex_value(lo)?)
}

/// Appends `data` as lowercase hex to `out`.
pub fn push_hex(out: &mut Vec<u8>, data: &[u8]) {
    for &b in data {
        out.push(HEX_DIGITS[usize::from(b >> 4)]);
        out.push(HEX_DIGITS[usize::from(b & 0xf)]);
    }
}

/// Appends `n` as lowercase hex without leading zeros (`0` for zero) to `out`.
pub fn push_hex_u64(out: &mut Vec<u8>, n: u64) {
    if n == 0 {
        out.push(b'0');
        return;
    }
    let digits = (64 - n.leading_zeros()).div_ceil(4);
    for i in (0..digits).rev() {
        out.push(HEX_DIGITS[((n >> (i * 4)) & 0xf) as usize]);
    }
}

/// Decodes hex pairs from `hex` into `out`; `hex.len()` must be `2 * out.len()`. Returns false on
/// a length mismatch or a non-hex digit.
pub fn decode_hex_into(hex: &[u8], out: &mut [u8]) -> bool {
    if hex.len() != out.len() * 2 {
        return false;
    }
    for (dst, pair) in out.iter_mut().zip(hex.chunks_exact(2)) {
        match parse_hex_byte(pair[0], pair[1]) {
            Some(v) => *dst = v,
            None => return false,
        }
    }
    true
}

/// Decodes a hex string of even length into bytes, or None.
pub fn decode_hex(hex: &[u8]) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let mut out = vec![0; hex.len() / 2];
    decode_hex_into(hex, &mut out).then_some(out)
}

/// Parses a big-endian hex number (as in addresses, lengths, signals), 1 to 16 digits.
pub fn parse_hex_u64(hex: &[u8]) -> Option<u64> {
    if hex.is_empty() || hex.len() > 16 {
        return None;
    }
    hex.iter()
        .try_fold(0u64, |acc, &c| Some(acc << 4 | u64::from(hex_value(c)?)))
}

/// What a reply payload is, before the caller interprets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// Empty payload: the server does not support the request.
    Empty,
    /// `OK`.
    Ok,
    /// `Enn` (or `E.text`, code 0): the request failed.
    Error(u8),
    /// Anything else: request-specific data.
    Data,
}

/// Classifies a reply payload. `Enn` is exactly three bytes with two hex digits, so it cannot be
/// confused with hex data (always an even number of digits).
pub fn classify(payload: &[u8]) -> ReplyKind {
    match payload {
        [] => ReplyKind::Empty,
        b"OK" => ReplyKind::Ok,
        [b'E', hi, lo] => match parse_hex_byte(*hi, *lo) {
            Some(code) => ReplyKind::Error(code),
            None => ReplyKind::Data,
        },
        [b'E', b'.', ..] => ReplyKind::Error(0),
        _ => ReplyKind::Data,
    }
}

/// If `payload` is an `O` console-output packet, returns its decoded text bytes. `OK` and other
/// replies starting with `O` are not console output (the rest must be non-empty even-length hex).
pub fn console_output(payload: &[u8]) -> Option<Vec<u8>> {
    match payload {
        [b'O', rest @ ..] if !rest.is_empty() => decode_hex(rest),
        _ => None,
    }
}

/// Why the target stopped, as reported by an `S`/`T` stop reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopKind {
    /// `swbreak`: a software breakpoint was hit.
    SwBreak,
    /// `hwbreak`: a hardware breakpoint was hit.
    HwBreak,
    /// `watch`/`rwatch`/`awatch` with the data address.
    Watch(u64),
}

/// A parsed stop reply (`S`, `T`, `W`, `X`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReply {
    /// The target stopped with `signal` (2 = SIGINT after an interrupt, 5 = SIGTRAP after a
    /// breakpoint or step).
    Stopped {
        signal: u8,
        /// `thread:` value as sent (e.g. `p01.01`), if any.
        thread: Option<String>,
        kind: Option<StopKind>,
        /// Expedited registers: (register number, little-endian bytes as sent).
        registers: Vec<(u32, Vec<u8>)>,
    },
    /// `W`: the process exited with this status.
    Exited(u8),
    /// `X`: the process was terminated by this signal.
    Terminated(u8),
}

/// True if `payload` looks like a stop reply (starts with `S`, `T`, `W` or `X` followed by two
/// hex digits). Used to recognise unsolicited stop replies.
pub fn is_stop_reply(payload: &[u8]) -> bool {
    matches!(payload, [b'S' | b'T' | b'W' | b'X', hi, lo, ..]
        if hex_value(*hi).is_some() && hex_value(*lo).is_some())
}

/// Parses a stop reply payload. Unknown `T` pairs (`core:`, `library:`, …) are skipped.
pub fn parse_stop_reply(payload: &[u8]) -> Result<StopReply, RspError> {
    let bad = |detail: &str| RspError::malformed("stop reply", payload, detail);
    if !is_stop_reply(payload) {
        return Err(bad("expected S, T, W or X and a two-digit signal"));
    }
    let code = parse_hex_byte(payload[1], payload[2]).ok_or_else(|| bad("bad signal"))?;
    match payload[0] {
        b'W' => return Ok(StopReply::Exited(code)),
        b'X' => return Ok(StopReply::Terminated(code)),
        b'S' => {
            return Ok(StopReply::Stopped {
                signal: code,
                thread: None,
                kind: None,
                registers: Vec::new(),
            })
        }
        _ => {}
    }
    let mut thread = None;
    let mut kind = None;
    let mut registers = Vec::new();
    for pair in payload[3..].split(|&b| b == b';').filter(|p| !p.is_empty()) {
        let colon = pair
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("a T pair without `:`"))?;
        let (key, value) = (&pair[..colon], &pair[colon + 1..]);
        match key {
            b"thread" => thread = Some(String::from_utf8_lossy(value).into_owned()),
            b"swbreak" => kind = Some(StopKind::SwBreak),
            b"hwbreak" => kind = Some(StopKind::HwBreak),
            b"watch" | b"rwatch" | b"awatch" => {
                let addr = parse_hex_u64(value).ok_or_else(|| bad("bad watch address"))?;
                kind = Some(StopKind::Watch(addr));
            }
            _ if key.iter().all(|&c| hex_value(c).is_some()) => {
                let n = parse_hex_u64(key)
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| bad("bad register number"))?;
                let bytes = decode_hex(value).ok_or_else(|| bad("bad register value"))?;
                registers.push((n, bytes));
            }
            _ => {}
        }
    }
    Ok(StopReply::Stopped {
        signal: code,
        thread,
        kind,
        registers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<(Frame, Vec<u8>)> {
        let mut d = Decoder::new();
        d.feed(input);
        let mut out = Vec::new();
        let mut payload = Vec::new();
        while let Some(f) = d.next_frame(&mut payload).unwrap() {
            let p = if f == Frame::Packet {
                payload.clone()
            } else {
                Vec::new()
            };
            out.push((f, p));
        }
        out
    }

    #[test]
    fn checksum_matches_known_packets() {
        assert_eq!(checksum(b"OK"), 0x9a);
        assert_eq!(checksum(b"qSupported"), 0x37);
        assert_eq!(checksum(b""), 0);
    }

    #[test]
    fn encode_frames_and_escapes() {
        let mut out = Vec::new();
        encode_packet(b"m80000000,4", &mut out);
        assert_eq!(out, b"$m80000000,4#55");
        out.clear();
        encode_packet(b"a$b#c}d*", &mut out);
        assert_eq!(&out[..14], b"$a}\x04b}\x03c}]d}\x0a#");
        // The checksum covers the escaped bytes.
        assert_eq!(
            checksum(&out[1..13]),
            u8::from_str_radix(std::str::from_utf8(&out[14..]).unwrap(), 16).unwrap()
        );
    }

    #[test]
    fn decodes_acks_packets_and_notifications() {
        let f = frames(b"+$OK#9a-%Stop:T05#00");
        assert_eq!(f[0], (Frame::Ack, vec![]));
        assert_eq!(f[1], (Frame::Packet, b"OK".to_vec()));
        assert_eq!(f[2], (Frame::Nack, vec![]));
        // Bad checksum on the notification: still not a Packet.
        assert_eq!(f[3].0, Frame::BadChecksum);
        let mut raw = b"%Stop:T05#".to_vec();
        let sum = checksum(b"Stop:T05");
        raw.extend(format!("{sum:02x}").bytes());
        assert_eq!(frames(&raw), vec![(Frame::Notification, vec![])]);
    }

    #[test]
    fn bad_checksum_is_reported_not_decoded() {
        assert_eq!(frames(b"$OK#00"), vec![(Frame::BadChecksum, vec![])]);
        assert_eq!(frames(b"$OK#zz"), vec![(Frame::BadChecksum, vec![])]);
    }

    #[test]
    fn run_length_decoding_repeats_previous_byte() {
        // "0* " = '0' then 32-29 = 3 more: "0000".
        let mut out = Vec::new();
        decode_body(b"0* ", &mut out).unwrap();
        assert_eq!(out, b"0000");
        // gdbstub style: 16 zero digits.
        decode_body(b"1*,0", &mut out).unwrap();
        assert_eq!(
            out,
            b"1".iter()
                .chain([b'1'; 15].iter())
                .chain(b"0")
                .copied()
                .collect::<Vec<_>>()
        );
        // Run after an escaped byte repeats the decoded byte.
        decode_body(b"}]*!", &mut out).unwrap();
        assert_eq!(out, b"}}}}}");
        assert!(decode_body(b"*!", &mut out).is_err());
        assert!(decode_body(b"0*\x10", &mut out).is_err());
        assert!(decode_body(b"ab}", &mut out).is_err());
    }

    #[test]
    fn framed_run_length_packet() {
        let raw = b"$0* #";
        let mut input = raw.to_vec();
        input.extend(format!("{:02x}", checksum(b"0* ")).bytes());
        assert_eq!(frames(&input), vec![(Frame::Packet, b"0000".to_vec())]);
    }

    #[test]
    fn run_counts_that_look_like_frame_bytes_stay_in_the_packet() {
        // A `g` reply from a `gdbstub`-crate stub: `*%` (8 repeats), `*-` and `**` are counts.
        let wire = b"$0*-110**210*%#";
        let body = &wire[1..wire.len() - 1];
        let mut input = wire.to_vec();
        input.extend(format!("{:02x}", checksum(body)).bytes());
        let f = frames(&input);
        assert_eq!(f.len(), 1, "{f:?}");
        let expected = format!("{}11{}21{}", "0".repeat(17), "0".repeat(14), "0".repeat(9));
        assert_eq!(f[0], (Frame::Packet, expected.into_bytes()));
    }

    #[test]
    fn garbage_and_truncation_are_skipped() {
        let mut d = Decoder::new();
        d.feed(b"\r\nnoise$trunc$OK#9a");
        let mut p = Vec::new();
        assert_eq!(d.next_frame(&mut p).unwrap(), Some(Frame::Packet));
        assert_eq!(p, b"OK");
        assert_eq!(d.garbage(), 13);
        assert_eq!(d.next_frame(&mut p).unwrap(), None);
        assert!(d.is_empty());
    }

    #[test]
    fn partial_frames_wait_for_more_bytes() {
        let mut d = Decoder::new();
        let mut p = Vec::new();
        for chunk in [&b"$O"[..], b"K", b"#", b"9"] {
            d.feed(chunk);
            assert_eq!(d.next_frame(&mut p).unwrap(), None);
        }
        d.feed(b"a+");
        assert_eq!(d.next_frame(&mut p).unwrap(), Some(Frame::Packet));
        assert_eq!(p, b"OK");
        assert_eq!(d.next_frame(&mut p).unwrap(), Some(Frame::Ack));
    }

    #[test]
    fn oversized_frame_is_malformed() {
        let mut d = Decoder::new();
        d.feed(b"$");
        d.feed(&vec![b'a'; MAX_FRAME + 1]);
        let err = d.next_frame(&mut Vec::new()).unwrap_err();
        assert!(matches!(err, RspError::Malformed { .. }), "{err}");
    }

    #[test]
    fn a_start_byte_in_the_checksum_digits_cuts_the_packet_and_the_next_survives() {
        // The first packet lost its last checksum digit, or both: the intact packet after it
        // must not be taken for the missing digits.
        for cut in [&b"$OK#9"[..], b"$OK#"] {
            let mut input = cut.to_vec();
            input.extend_from_slice(b"$OK#9a");
            assert_eq!(
                frames(&input),
                vec![(Frame::Packet, b"OK".to_vec())],
                "{}",
                String::from_utf8_lossy(&input)
            );
        }
        // Fed a byte at a time: the decoder must not wait for digits that will never come.
        let mut d = Decoder::new();
        let mut p = Vec::new();
        let mut got = Vec::new();
        for &b in b"$OK#9$OK#9a".iter() {
            d.feed(&[b]);
            while let Some(f) = d.next_frame(&mut p).unwrap() {
                got.push((f, p.clone()));
            }
        }
        assert_eq!(got, vec![(Frame::Packet, b"OK".to_vec())]);
        assert_eq!(d.garbage(), 5);
    }

    #[test]
    fn run_length_expansion_is_bounded() {
        // 1 MiB of `0*~` would decode to about 33 MiB: refused, and the next packet decodes.
        let mut body = Vec::new();
        while body.len() + 3 <= MAX_FRAME - 16 {
            body.extend_from_slice(b"0*~");
        }
        let mut out = Vec::new();
        let err = decode_body(&body, &mut out).unwrap_err();
        assert!(err.to_string().contains("decodes to more than"), "{err}");
        assert!(out.len() <= MAX_PAYLOAD, "{}", out.len());
        let mut wire = b"$".to_vec();
        wire.extend_from_slice(&body);
        wire.extend(format!("#{:02x}", checksum(&body)).bytes());
        wire.extend_from_slice(b"$OK#9a");
        let mut d = Decoder::new();
        d.feed(&wire);
        let mut p = Vec::new();
        assert!(d.next_frame(&mut p).is_err());
        assert!(p.len() <= MAX_PAYLOAD);
        assert_eq!(d.next_frame(&mut p).unwrap(), Some(Frame::Packet));
        assert_eq!(p, b"OK");
        // Exactly at the limit is fine.
        let mut at_limit = b"0".to_vec();
        let mut n = 1;
        while n + 97 <= MAX_PAYLOAD {
            at_limit.extend_from_slice(b"*~");
            n += 97;
        }
        decode_body(&at_limit, &mut out).unwrap();
        assert_eq!(out.len(), n);
    }

    #[test]
    fn a_frame_fed_in_small_pieces_is_scanned_once() {
        // Feeding a large frame 16 bytes at a time must not rescan it from the start each time:
        // a 256 KiB frame in 16 K pieces finishes quickly even in a debug build.
        let body = vec![b'a'; 256 * 1024];
        let mut wire = b"$".to_vec();
        wire.extend_from_slice(&body);
        wire.extend(format!("#{:02x}", checksum(&body)).bytes());
        let mut d = Decoder::new();
        let mut p = Vec::new();
        let start = std::time::Instant::now();
        let mut got = None;
        for piece in wire.chunks(16) {
            d.feed(piece);
            if let Some(f) = d.next_frame(&mut p).unwrap() {
                got = Some(f);
            }
        }
        assert_eq!(got, Some(Frame::Packet));
        assert_eq!(p.len(), body.len());
        assert!(
            start.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            start.elapsed()
        );
    }

    #[test]
    fn hex_helpers() {
        let mut out = Vec::new();
        push_hex(&mut out, &[0x00, 0xab, 0x7f]);
        assert_eq!(out, b"00ab7f");
        out.clear();
        push_hex_u64(&mut out, 0x8000_0000);
        assert_eq!(out, b"80000000");
        out.clear();
        push_hex_u64(&mut out, 0);
        assert_eq!(out, b"0");
        assert_eq!(parse_hex_u64(b"FfFf"), Some(0xffff));
        assert_eq!(parse_hex_u64(b""), None);
        assert_eq!(parse_hex_u64(b"12345678123456781"), None);
        assert_eq!(decode_hex(b"00ab"), Some(vec![0, 0xab]));
        assert_eq!(decode_hex(b"0"), None);
        assert_eq!(decode_hex(b"zz"), None);
    }

    #[test]
    fn classifies_replies() {
        assert_eq!(classify(b""), ReplyKind::Empty);
        assert_eq!(classify(b"OK"), ReplyKind::Ok);
        assert_eq!(classify(b"E22"), ReplyKind::Error(0x22));
        assert_eq!(classify(b"E.not mapped"), ReplyKind::Error(0));
        assert_eq!(classify(b"E2"), ReplyKind::Data);
        assert_eq!(classify(b"e1e1"), ReplyKind::Data);
    }

    #[test]
    fn console_output_is_recognised() {
        assert_eq!(console_output(b"O68690a"), Some(b"hi\n".to_vec()));
        assert_eq!(console_output(b"OK"), None);
        assert_eq!(console_output(b"O"), None);
    }

    #[test]
    fn parses_stop_replies() {
        assert_eq!(
            parse_stop_reply(b"T02thread:p01.01;").unwrap(),
            StopReply::Stopped {
                signal: 2,
                thread: Some("p01.01".into()),
                kind: None,
                registers: vec![],
            }
        );
        assert_eq!(
            parse_stop_reply(b"T05swbreak:;20:0010008000000000;core:0;").unwrap(),
            StopReply::Stopped {
                signal: 5,
                thread: None,
                kind: Some(StopKind::SwBreak),
                registers: vec![(0x20, vec![0, 0x10, 0, 0x80, 0, 0, 0, 0])],
            }
        );
        assert_eq!(
            parse_stop_reply(b"T05watch:80001000;").unwrap(),
            StopReply::Stopped {
                signal: 5,
                thread: None,
                kind: Some(StopKind::Watch(0x8000_1000)),
                registers: vec![],
            }
        );
        assert!(matches!(
            parse_stop_reply(b"S05").unwrap(),
            StopReply::Stopped { signal: 5, .. }
        ));
        assert_eq!(
            parse_stop_reply(b"W00;process:1").unwrap(),
            StopReply::Exited(0)
        );
        assert_eq!(parse_stop_reply(b"X09").unwrap(), StopReply::Terminated(9));
        assert!(parse_stop_reply(b"OK").is_err());
        assert!(parse_stop_reply(b"T05garbage").is_err());
        assert!(parse_stop_reply(b"T0520:zz;").is_err());
        // Register numbers beyond 32 bits are malformed, not truncated.
        assert!(parse_stop_reply(b"T05100000020:00;").is_err());
        assert!(is_stop_reply(b"T02thread:01;"));
        assert!(!is_stop_reply(b"Tx"));
    }

    /// Garbage from the wire never panics the decoder or the reply parsers, and a valid packet
    /// after it is still found: bad input gets an error, not a crash, and loses nothing after.
    #[test]
    fn random_bytes_never_panic_and_a_following_packet_survives() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let alphabet = b"$#}*+-%0123456789abcdefOKET;:,\x03\x7f\xff";
        for _ in 0..2000 {
            let len = (next() % 64) as usize;
            let junk: Vec<u8> = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let _ = parse_stop_reply(&junk);
            let _ = classify(&junk);
            let mut out = Vec::new();
            let _ = decode_body(&junk, &mut out);
            let mut d = Decoder::new();
            d.feed(&junk);
            // Terminate any half-open packet, then a good one.
            d.feed(b"#00");
            let mut good = Vec::new();
            encode_packet(b"OK", &mut good);
            d.feed(&good);
            let mut payload = Vec::new();
            let mut found = false;
            for _ in 0..1000 {
                match d.next_frame(&mut payload) {
                    Ok(Some(Frame::Packet)) if payload == b"OK" => {
                        found = true;
                        break;
                    }
                    Ok(Some(_)) | Err(_) => continue,
                    Ok(None) => break,
                }
            }
            assert!(found, "a good packet after {junk:?} was lost");
        }
    }
}
