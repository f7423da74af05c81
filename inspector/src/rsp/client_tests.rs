//! Tests of `RspClient` against scripted servers on loopback: QEMU's dialect (acks on, an
//! unsolicited stop reply, 0x800-byte `m` limit, `p` only after the target description,
//! PhyMemMode) and fault injection (silence, dropped connection, garbage, bad checksums).

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use super::codec;
use super::{RspClient, RspConfig, RspError, StopReply};

/// What the client sent.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Ev {
    Packet(Vec<u8>),
    Ack,
    Nack,
    Interrupt,
    Eof,
}

/// The server side of a scripted session.
pub(crate) struct Peer {
    r: BufReader<TcpStream>,
    w: TcpStream,
    acks: bool,
}

impl Peer {
    fn byte(&mut self) -> Option<u8> {
        let mut b = [0u8];
        match self.r.read(&mut b) {
            Ok(1) => Some(b[0]),
            _ => None,
        }
    }

    pub(crate) fn event(&mut self) -> Ev {
        match self.byte() {
            None => Ev::Eof,
            Some(b'+') => Ev::Ack,
            Some(b'-') => Ev::Nack,
            Some(0x03) => Ev::Interrupt,
            Some(b'$') => {
                let mut raw = Vec::new();
                loop {
                    match self.byte() {
                        Some(b'#') => break,
                        Some(b) => raw.push(b),
                        None => return Ev::Eof,
                    }
                }
                let (hi, lo) = (self.byte().unwrap(), self.byte().unwrap());
                let sum = u8::from_str_radix(std::str::from_utf8(&[hi, lo]).unwrap(), 16);
                assert_eq!(sum.unwrap(), codec::checksum(&raw), "client checksum");
                let mut payload = Vec::new();
                codec::decode_body(&raw, &mut payload).unwrap();
                Ev::Packet(payload)
            }
            Some(other) => panic!("client sent stray byte {other:#x}"),
        }
    }

    /// Next packet from the client (acknowledged if acks are on). Stray `+` are skipped.
    pub(crate) fn packet(&mut self) -> Vec<u8> {
        loop {
            match self.event() {
                Ev::Packet(p) => {
                    if self.acks {
                        self.w.write_all(b"+").unwrap();
                    }
                    return p;
                }
                Ev::Ack => {}
                other => panic!("expected a packet, got {other:?}"),
            }
        }
    }

    fn raw(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).unwrap();
    }

    /// Sends a reply and, with acks on, checks that the client acknowledges it.
    pub(crate) fn reply(&mut self, payload: &[u8]) {
        let mut framed = Vec::new();
        codec::encode_packet(payload, &mut framed);
        self.raw(&framed);
        if self.acks {
            assert_eq!(
                self.event(),
                Ev::Ack,
                "client must ack {:?}",
                String::from_utf8_lossy(payload)
            );
        }
    }

    /// Answers the connect handshake like QEMU 7.2 (no QStartNoAckMode).
    pub(crate) fn qemu_handshake(&mut self, packet_size: &str) {
        assert_eq!(self.event(), Ev::Ack, "client starts with +");
        let q = self.packet();
        assert!(q.starts_with(b"qSupported"), "{q:?}");
        self.reply(
            format!("PacketSize={packet_size};qXfer:features:read+;vContSupported+;multiprocess+")
                .as_bytes(),
        );
        assert_eq!(self.packet(), b"?");
        self.reply(b"T02thread:p01.01;");
    }
}

pub(crate) fn config() -> RspConfig {
    RspConfig {
        connect_timeout: Duration::from_secs(2),
        reply_timeout: Duration::from_millis(500),
        max_retransmits: 2,
        // Every reply is waited for by spinning first, as the gdb server's connection does.
        spin: super::spin::SPIN,
    }
}

/// Starts a server running `script` on one connection; returns its address.
pub(crate) fn serve(script: impl FnOnce(&mut Peer) + Send + 'static) -> (String, JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let handle = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut peer = Peer {
            r: BufReader::new(s.try_clone().unwrap()),
            w: s,
            acks: true,
        };
        script(&mut peer);
    });
    (addr, handle)
}

/// Memory of the scripted QEMU: `len` bytes at `addr`, byte i = i as u8.
fn mem_reply(addr: u64, len: u64) -> Vec<u8> {
    let mut out = Vec::new();
    let data: Vec<u8> = (addr..addr + len).map(|a| a as u8).collect();
    codec::push_hex(&mut out, &data);
    out
}

fn parse_m(p: &[u8]) -> (u64, u64) {
    let s = std::str::from_utf8(&p[1..]).unwrap();
    let (a, l) = s.split_once(',').unwrap();
    (
        u64::from_str_radix(a, 16).unwrap(),
        u64::from_str_radix(l, 16).unwrap(),
    )
}

#[test]
fn qemu_dialect_handshake_drains_unsolicited_stop_and_keeps_acks() {
    let (addr, server) = serve(|p| {
        // QEMU 7.2 may send a stop reply as soon as the client connects.
        p.raw(b"$T02thread:p01.01;#");
        let sum = codec::checksum(b"T02thread:p01.01;");
        p.raw(format!("{sum:02x}").as_bytes());
        assert_eq!(
            p.event(),
            Ev::Ack,
            "the first + acknowledges the unsolicited stop"
        );
        let q = p.packet();
        assert!(q.starts_with(b"qSupported"));
        p.reply(b"PacketSize=1000;qXfer:features:read+;vContSupported+;multiprocess+");
        assert_eq!(p.packet(), b"?");
        p.reply(b"T02thread:p01.01;");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    assert!(c.acks_enabled());
    assert_eq!(c.packet_size(), 0x1000);
    assert_eq!(c.max_read_chunk(), 0x800);
    assert!(c.supported().xfer_features && c.supported().vcont && !c.supported().no_ack_mode);
    assert!(matches!(
        c.initial_stop(),
        Some(StopReply::Stopped { signal: 2, .. })
    ));
    assert!(!c.is_running());
    c.detach().unwrap();
    assert!(c.is_closed());
    server.join().unwrap();
}

#[test]
fn unsolicited_stop_after_the_first_request_is_drained_too() {
    let (addr, server) = serve(|p| {
        assert_eq!(p.event(), Ev::Ack);
        let q = p.packet();
        assert!(q.starts_with(b"qSupported"));
        p.reply(b"T02thread:p01.01;");
        p.reply(b"PacketSize=1000;qXfer:features:read+");
        assert_eq!(p.packet(), b"?");
        p.reply(b"S05");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    assert_eq!(c.packet_size(), 0x1000);
    assert!(matches!(
        c.initial_stop(),
        Some(StopReply::Stopped { signal: 5, .. })
    ));
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn detach_names_the_process_when_qemu_kept_multiprocess_mode() {
    // QEMU 7.2 after a gdb session in multiprocess mode: a plain `D` gets E22, `D;1` works.
    let (addr, server) = serve(|p| {
        assert!(p.packet().starts_with(b"qSupported"));
        p.reply(b"PacketSize=1000;multiprocess+");
        assert_eq!(p.packet(), b"?");
        p.reply(b"S05");
        assert_eq!(p.packet(), b"D");
        p.reply(b"E22");
        assert_eq!(p.packet(), b"D;1");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    c.detach().unwrap();
    assert!(c.is_closed());
    server.join().unwrap();
}

#[test]
fn memory_writes_split_to_fit_the_packet_size() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("100");
        let mut written = Vec::new();
        loop {
            let m = p.packet();
            if m == b"D" {
                p.reply(b"OK");
                break;
            }
            let s = std::str::from_utf8(&m[1..]).unwrap();
            let (head, data) = s.split_once(':').unwrap();
            let (a, l) = head.split_once(',').unwrap();
            let l = usize::from_str_radix(l, 16).unwrap();
            assert!(m.len() <= 0x100, "request of {} bytes", m.len());
            assert_eq!(
                u64::from_str_radix(a, 16).unwrap(),
                0x8000_0000 + written.len() as u64
            );
            let bytes = codec::decode_hex(data.as_bytes()).unwrap();
            assert_eq!(bytes.len(), l);
            written.extend(bytes);
            p.reply(b"OK");
        }
        assert_eq!(written, (0..300).map(|i| i as u8).collect::<Vec<_>>());
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let data: Vec<u8> = (0..300).map(|i| i as u8).collect();
    c.write_memory(0x8000_0000, &data).unwrap();
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn memory_reads_split_by_packet_size_and_0x800_and_continue_short_replies() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        // 0x1001 bytes in 0x800-byte requests; the second is answered short (QEMU never does,
        // the protocol allows it).
        let mut asked = Vec::new();
        loop {
            let m = p.packet();
            if m == b"D" {
                p.reply(b"OK");
                break;
            }
            let (a, l) = parse_m(&m);
            asked.push(l);
            if l > 0x800 {
                p.reply(b"E22");
            } else if asked.len() == 2 {
                p.reply(&mem_reply(a, l / 2));
            } else {
                p.reply(&mem_reply(a, l));
            }
        }
        // The short second reply (0x400 bytes) is continued: 0x1001 - 0xc00 = 0x401 left.
        assert_eq!(asked, vec![0x800, 0x800, 0x401]);
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let mut buf = vec![0u8; 0x1001];
    c.read_memory(0x8000_0000, &mut buf).unwrap();
    assert!(buf.iter().enumerate().all(|(i, &b)| b == i as u8));
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn small_packet_size_limits_each_read() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("100");
        let mut asked = Vec::new();
        loop {
            let m = p.packet();
            if m == b"D" {
                p.reply(b"OK");
                break;
            }
            let (a, l) = parse_m(&m);
            asked.push(l);
            p.reply(&mem_reply(a, l));
        }
        // 0x100 / 2 = 128 bytes per packet.
        assert_eq!(asked, vec![128, 128, 44]);
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let mut buf = vec![0u8; 300];
    c.read_memory(0x1000, &mut buf).unwrap();
    assert!(buf.iter().enumerate().all(|(i, &b)| b == i as u8));
    drop(c); // detaches in Drop
    server.join().unwrap();
}

#[test]
fn error_reply_is_typed_and_empty_reply_is_unsupported() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert!(p.packet().starts_with(b"m"));
        p.reply(b"E14");
        assert_eq!(p.packet(), b"Qqemu.PhyMemMode:1");
        p.reply(b"");
        assert_eq!(p.packet(), b"Z0,80200000,4");
        p.reply(b"");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let err = c
        .read_memory(0xffff_ffc0_0000_0000, &mut [0u8; 8])
        .unwrap_err();
    assert!(
        matches!(err, RspError::ErrorReply { code: 0x14, .. }),
        "{err}"
    );
    assert!(!c.is_closed(), "an error reply is not fatal");
    assert!(
        !c.set_phy_mem_mode(true).unwrap(),
        "empty reply: not supported"
    );
    assert!(!c.phy_mem_mode());
    let err = c
        .insert_breakpoint(super::BreakpointType::Software, 0x8020_0000, 4)
        .unwrap_err();
    assert!(matches!(err, RspError::Unsupported { .. }), "{err}");
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn nack_causes_retransmit_and_bad_reply_checksum_is_nacked() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        // First copy of the request: ask for it again.
        let Ev::Packet(first) = p.event() else {
            panic!()
        };
        p.raw(b"-");
        let second = p.packet();
        assert_eq!(first, second);
        // A reply with a wrong checksum must be answered with `-`, then resent.
        p.raw(b"$0102#00");
        assert_eq!(p.event(), Ev::Nack);
        p.reply(b"0102");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let mut buf = [0u8; 2];
    c.read_memory(0x10, &mut buf).unwrap();
    assert_eq!(buf, [1, 2]);
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn run_length_encoded_and_escaped_replies_are_decoded_with_garbage_between() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        p.packet();
        // "0" then 29+… : "0*'" = '0' + 10 more = eleven '0', then "1" -> 0x00 x5, 0x01.
        p.raw(b"\r\n");
        let body = b"0*'1";
        p.raw(b"$");
        p.raw(body);
        p.raw(format!("#{:02x}", codec::checksum(body)).as_bytes());
        assert_eq!(p.event(), Ev::Ack);
        p.packet();
        // A binary-ish reply with an escaped `}`: qXfer data carries raw bytes.
        p.reply(b"l<x>}</x>");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let mut buf = [0xffu8; 6];
    c.read_memory(0x10, &mut buf).unwrap();
    assert_eq!(buf, [0, 0, 0, 0, 0, 1]);
    assert_eq!(c.read_features_xml("x.xml").unwrap(), b"<x>}</x>");
    assert!(c.garbage_bytes() >= 2);
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn silent_server_times_out_and_closes_the_client() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        let _ = p.packet();
        // Say nothing. The client gives up, sends `D` so the guest is not left paused (after
        // `0x03`, which QEMU ignores while stopped), closes.
        assert_eq!(p.event(), Ev::Interrupt);
        assert_eq!(p.event(), Ev::Packet(b"D".to_vec()));
        assert_eq!(p.event(), Ev::Eof);
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let err = c.read_memory(0x10, &mut [0u8; 4]).unwrap_err();
    assert!(matches!(err, RspError::Timeout { .. }), "{err}");
    assert!(err.to_string().contains("no answer"), "{err}");
    assert!(c.is_closed());
    assert!(matches!(
        c.read_memory(0x10, &mut [0u8; 4]),
        Err(RspError::Closed)
    ));
    drop(c);
    server.join().unwrap();
}

#[test]
fn dropped_connection_is_closed() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        let _ = p.packet();
        // Returning drops the socket.
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let err = c.read_memory(0x10, &mut [0u8; 4]).unwrap_err();
    assert!(matches!(err, RspError::Closed), "{err}");
    assert!(c.is_closed());
    server.join().unwrap();
}

#[test]
fn malformed_replies_are_reported() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        p.packet();
        p.reply(b"zz");
        p.packet();
        p.reply(b"0102030405"); // 5 bytes for a 4-byte read
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let err = c.read_memory(0x10, &mut [0u8; 1]).unwrap_err();
    assert!(matches!(err, RspError::Malformed { .. }), "{err}");
    let err = c.read_memory(0x10, &mut [0u8; 4]).unwrap_err();
    assert!(matches!(err, RspError::Malformed { .. }), "{err}");
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn continue_sends_nothing_more_until_the_interrupt() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"c");
        // While running the client must send exactly one byte: the interrupt.
        assert_eq!(p.event(), Ev::Interrupt);
        p.raw(b"$O6869#");
        p.raw(format!("{:02x}", codec::checksum(b"O6869")).as_bytes());
        assert_eq!(p.event(), Ev::Ack);
        p.reply(b"T02thread:p01.01;");
        assert_eq!(p.packet(), b"c");
        // Running again when the client detaches: interrupt first, then D.
        assert_eq!(p.event(), Ev::Interrupt);
        p.reply(b"T02thread:p01.01;");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    c.cont().unwrap();
    assert!(c.is_running());
    let err = c.read_memory(0, &mut [0u8; 1]).unwrap_err();
    assert!(matches!(err, RspError::Running { .. }), "{err}");
    assert_eq!(c.wait_for_stop(Duration::from_millis(50)).unwrap(), None);
    let stop = c.interrupt().unwrap().unwrap();
    assert!(matches!(stop, StopReply::Stopped { signal: 2, .. }));
    assert_eq!(c.take_console_output(), b"hi");
    assert_eq!(c.interrupt().unwrap(), None, "already halted: nothing sent");
    c.cont().unwrap();
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn breakpoint_stop_is_reported_by_wait_for_stop() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"Z0,80200000,4");
        p.reply(b"OK");
        assert_eq!(p.packet(), b"c");
        p.reply(b"T05thread:p01.01;");
        assert_eq!(p.packet(), b"s");
        p.reply(b"T05thread:p01.01;");
        assert_eq!(p.packet(), b"z0,80200000,4");
        p.reply(b"OK");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    c.insert_breakpoint(super::BreakpointType::Software, 0x8020_0000, 4)
        .unwrap();
    c.cont().unwrap();
    let stop = c.wait_for_stop(Duration::from_secs(2)).unwrap().unwrap();
    assert!(matches!(stop, StopReply::Stopped { signal: 5, .. }));
    assert!(!c.is_running());
    assert!(matches!(
        c.step().unwrap(),
        StopReply::Stopped { signal: 5, .. }
    ));
    c.remove_breakpoint(super::BreakpointType::Software, 0x8020_0000, 4)
        .unwrap();
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn interrupt_takes_a_stop_that_already_arrived_without_sending_0x03() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"c");
        // The guest hits a breakpoint on its own.
        p.reply(b"T05swbreak:;thread:p01.01;");
        // Next from the client must be a packet, not an interrupt byte.
        assert_eq!(p.packet(), b"m10,1");
        p.reply(b"2a");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    c.cont().unwrap();
    // Let the stop reply reach our socket before we interrupt.
    std::thread::sleep(Duration::from_millis(100));
    let stop = c.interrupt().unwrap().unwrap();
    assert!(matches!(
        stop,
        StopReply::Stopped {
            signal: 5,
            kind: Some(super::StopKind::SwBreak),
            ..
        }
    ));
    let mut b = [0u8];
    c.read_memory(0x10, &mut b).unwrap();
    assert_eq!(b, [0x2a]);
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn target_description_with_includes_enables_p() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("100");
        // Chunked: PacketSize 0x100 -> at most 0xf8 bytes per qXfer request.
        let target = br#"<target><xi:include href="cpu.xml"/></target>"#;
        let mut cpu = String::from("<feature>");
        cpu.push_str(r#"<reg name="zero" bitsize="64" regnum="0"/>"#);
        for i in 1..32 {
            cpu.push_str(&format!(r#"<reg name="x{i}" bitsize="64"/>"#));
        }
        cpu.push_str(r#"<reg name="pc" bitsize="64"/></feature>"#);
        let q = p.packet();
        assert_eq!(q, b"qXfer:features:read:target.xml:0,f8");
        let mut r = b"l".to_vec();
        r.extend_from_slice(target);
        p.reply(&r);
        let mut offset = 0;
        loop {
            let q = String::from_utf8(p.packet()).unwrap();
            assert_eq!(q, format!("qXfer:features:read:cpu.xml:{offset:x},f8"));
            let end = (offset + 0xf8).min(cpu.len());
            let more = end < cpu.len();
            let mut r = vec![if more { b'm' } else { b'l' }];
            r.extend_from_slice(&cpu.as_bytes()[offset..end]);
            p.reply(&r);
            offset = end;
            if !more {
                break;
            }
        }
        assert_eq!(p.packet(), b"p20");
        p.reply(b"0000208000000000");
        assert_eq!(p.packet(), b"g");
        p.reply(b"xxxxxxxx00000000");
        assert_eq!(p.packet(), b"qRcmd,696e666f20726567697374657273");
        p.raw(b"$O70633d300a#");
        p.raw(format!("{:02x}", codec::checksum(b"O70633d300a")).as_bytes());
        assert_eq!(p.event(), Ev::Ack);
        p.reply(b"OK");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    assert_eq!(c.read_register(32).unwrap(), 0x8020_0000u64.to_le_bytes());
    let map = c.target_description().unwrap();
    assert_eq!(map.registers.len(), 33);
    assert_eq!(map.by_name("pc").unwrap().regnum, 32);
    assert_eq!(c.read_registers_raw().unwrap(), vec![0; 8]);
    assert_eq!(c.monitor("info registers").unwrap(), "pc=0\n");
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn detach_turns_phy_mem_mode_off_and_accepts_a_closed_socket() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"Qqemu.PhyMemMode:1");
        p.reply(b"OK");
        assert_eq!(p.packet(), b"Qqemu.PhyMemMode:0");
        p.reply(b"OK");
        assert_eq!(p.packet(), b"D");
        // Some stubs close without answering.
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    assert!(c.set_phy_mem_mode(true).unwrap());
    assert!(c.phy_mem_mode());
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn exited_target_is_reported() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"c");
        p.reply(b"W00");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    c.cont().unwrap();
    let err = c.wait_for_stop(Duration::from_secs(2)).unwrap_err();
    assert!(matches!(err, RspError::TargetGone { .. }), "{err}");
    assert!(c.is_closed());
    server.join().unwrap();
}

#[test]
fn connect_refused_says_what_to_do() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = RspClient::connect(&format!("127.0.0.1:{port}"), config()).unwrap_err();
    assert!(matches!(err, RspError::Connect { .. }), "{err}");
    assert!(err.to_string().contains("-gdb tcp:"), "{err}");
}

#[test]
fn raw_requests_for_packets_the_client_does_not_wrap() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"qqemu.sstep");
        p.reply(b"0x7");
        assert_eq!(p.packet(), b"Qqemu.sstep=0x1");
        p.reply(b"OK");
        assert_eq!(p.packet(), b"qNope");
        p.reply(b"");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    assert_eq!(c.request_data(b"qqemu.sstep").unwrap(), b"0x7");
    c.request_ok(b"Qqemu.sstep=0x1").unwrap();
    let err = c.request_data(b"qNope").unwrap_err();
    assert!(matches!(err, RspError::Unsupported { .. }), "{err}");
    c.detach().unwrap();
    server.join().unwrap();
}

/// Answers `qXfer:features:read` from `docs` (annex → document) until `D`; returns how many
/// documents were asked for.
fn serve_descriptions(p: &mut Peer, docs: impl Fn(&str) -> Vec<u8>) -> usize {
    let mut fetched = 0;
    loop {
        let q = p.packet();
        if q == b"D" {
            p.reply(b"OK");
            return fetched;
        }
        let q = String::from_utf8(q).unwrap();
        let rest = q
            .strip_prefix("qXfer:features:read:")
            .expect("a qXfer request");
        let (annex, range) = rest.rsplit_once(':').unwrap();
        let (offset, len) = range.split_once(',').unwrap();
        let (offset, len) = (
            usize::from_str_radix(offset, 16).unwrap(),
            usize::from_str_radix(len, 16).unwrap(),
        );
        if offset == 0 {
            fetched += 1;
        }
        let doc = docs(annex);
        let end = (offset + len).min(doc.len());
        let mut r = vec![if end < doc.len() { b'm' } else { b'l' }];
        r.extend_from_slice(&doc[offset.min(end)..end]);
        p.reply(&r);
    }
}

#[test]
fn target_description_includes_are_bounded_in_number() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        let fetched = serve_descriptions(p, |annex| {
            if annex == "target.xml" {
                r#"<target><xi:include href="a.xml"/></target>"#
                    .repeat(1000)
                    .into_bytes()
            } else {
                br#"<feature><reg name="r" bitsize="64"/></feature>"#.to_vec()
            }
        });
        assert!(fetched <= super::target_xml::MAX_XML_ANNEXES, "{fetched}");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let err = c.target_description().unwrap_err();
    assert!(matches!(err, RspError::Malformed { .. }), "{err}");
    assert!(err.to_string().contains("documents"), "{err}");
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn target_description_includes_are_bounded_in_depth_and_total_size() {
    // Each document includes itself: only the depth limit stops the walk.
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        let fetched = serve_descriptions(p, |_| {
            br#"<target><xi:include href="loop.xml"/></target>"#.to_vec()
        });
        assert_eq!(fetched, super::target_xml::MAX_XML_DEPTH + 1);
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let err = c.target_description().unwrap_err();
    assert!(err.to_string().contains("nest"), "{err}");
    c.detach().unwrap();
    server.join().unwrap();

    // Few documents, but together over the total: refused before the whole is buffered.
    let each = super::target_xml::MAX_XML_BYTES * 3 / 4;
    let (addr, server) = serve(move |p| {
        p.qemu_handshake("40000");
        serve_descriptions(p, |annex| {
            if annex == "target.xml" {
                br#"<target><xi:include href="a.xml"/><xi:include href="b.xml"/></target>"#.to_vec()
            } else {
                vec![b' '; each]
            }
        });
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let err = c.target_description().unwrap_err();
    assert!(err.to_string().contains("bytes"), "{err}");
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn malformed_stop_reply_to_an_interrupt_abandons_the_connection_and_resumes_the_guest() {
    // Something came where only a stop reply can: the stub has stopped the guest, but what it
    // said cannot be trusted. The client must not stay connected believing the guest halted
    // (every later halt would then be a no-op and nothing would resume it): it sends `D`,
    // which resumes the guest, and closes.
    for bad in [
        &b"T05thread"[..],
        b"T05thread:p01.01;garbage",
        b"Tzz",
        b"OK",
        b"T051000000000:00;",
    ] {
        let bad = bad.to_vec();
        let (addr, server) = serve(move |p| {
            p.qemu_handshake("1000");
            assert_eq!(p.packet(), b"c");
            assert_eq!(p.event(), Ev::Interrupt);
            p.reply(&bad);
            assert_eq!(p.event(), Ev::Interrupt);
            assert_eq!(p.event(), Ev::Packet(b"D".to_vec()));
            assert_eq!(p.event(), Ev::Eof);
        });
        let mut c = RspClient::connect(&addr, config()).unwrap();
        c.cont().unwrap();
        let err = c.interrupt().unwrap_err();
        assert!(matches!(err, RspError::Malformed { .. }), "{err}");
        assert!(c.is_closed(), "{err}");
        assert!(!c.is_running());
        assert!(matches!(c.interrupt(), Err(RspError::Closed)));
        drop(c);
        server.join().unwrap();
    }
}

#[test]
fn malformed_stop_reply_to_a_step_or_a_breakpoint_abandons_too() {
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"Qqemu.PhyMemMode:1");
        p.reply(b"OK");
        assert_eq!(p.packet(), b"s");
        p.reply(b"T05thread");
        // Physical mode back off for the next debugger, then detach; no waiting for answers.
        assert_eq!(p.event(), Ev::Interrupt);
        assert_eq!(p.event(), Ev::Packet(b"Qqemu.PhyMemMode:0".to_vec()));
        assert_eq!(p.event(), Ev::Packet(b"D".to_vec()));
        assert_eq!(p.event(), Ev::Eof);
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    assert!(c.set_phy_mem_mode(true).unwrap());
    assert!(matches!(c.step(), Err(RspError::Malformed { .. })));
    assert!(c.is_closed());
    server.join().unwrap();

    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"c");
        p.reply(b"T05swbreak:;thread");
        assert_eq!(p.event(), Ev::Interrupt);
        assert_eq!(p.event(), Ev::Packet(b"D".to_vec()));
        assert_eq!(p.event(), Ev::Eof);
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    c.cont().unwrap();
    assert!(c.wait_for_stop(Duration::from_secs(2)).is_err());
    assert!(c.is_closed());
    server.join().unwrap();
}

#[test]
fn malformed_unsolicited_stop_reply_at_connect_abandons() {
    let (addr, server) = serve(|p| {
        assert_eq!(p.event(), Ev::Ack);
        assert!(p.packet().starts_with(b"qSupported"));
        p.reply(b"T02thread");
        assert_eq!(p.event(), Ev::Interrupt);
        assert_eq!(p.event(), Ev::Packet(b"D".to_vec()));
        assert_eq!(p.event(), Ev::Eof);
    });
    let err = RspClient::connect(&addr, config()).unwrap_err();
    assert!(matches!(err, RspError::Malformed { .. }), "{err}");
    server.join().unwrap();
}

/// Sends `text` as `O` packets of `piece` bytes each.
fn send_console(p: &mut Peer, text: &[u8], piece: usize) {
    for part in text.chunks(piece) {
        let mut o = b"O".to_vec();
        codec::push_hex(&mut o, part);
        p.reply(&o);
    }
}

#[test]
fn console_output_keeps_only_the_most_recent_bytes_and_counts_the_rest() {
    let limit = super::MAX_CONSOLE_BYTES;
    let flood: Vec<u8> = (0..limit * 3 + 123)
        .map(|i| b'a' + (i % 26) as u8)
        .collect();
    let flood2 = flood.clone();
    let (addr, server) = serve(move |p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"c");
        assert_eq!(p.event(), Ev::Interrupt);
        send_console(p, &flood2, 700);
        p.reply(b"T02thread:p01.01;");
        // A monitor command whose output overflows the buffer on its own.
        assert!(p.packet().starts_with(b"qRcmd,"));
        send_console(p, &flood2, 1000);
        p.reply(b"OK");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    c.cont().unwrap();
    c.interrupt().unwrap();
    let kept = c.take_console_output();
    assert_eq!(kept.len(), limit);
    assert_eq!(kept, flood[flood.len() - limit..]);
    assert_eq!(c.console_dropped(), (flood.len() - limit) as u64);
    let out = c.monitor("info mtree").unwrap();
    let lost = flood.len() - limit;
    assert!(
        out.starts_with(&format!("[{lost} bytes of earlier output dropped]\n")),
        "{}",
        &out[..80]
    );
    assert!(out.ends_with(std::str::from_utf8(&flood[flood.len() - 100..]).unwrap()));
    assert!(out.len() < limit + 100);
    assert_eq!(c.console_dropped(), 2 * lost as u64);
    c.detach().unwrap();
    server.join().unwrap();
}

#[test]
fn a_stub_that_stops_reading_makes_writes_time_out() {
    // A large write to a stub that reads nothing: the socket buffers fill and `write` blocks.
    let (release, wait) = std::sync::mpsc::channel::<()>();
    let (addr, server) = serve(move |p| {
        p.qemu_handshake("10000000");
        let _ = wait.recv();
    });
    let (done, result) = std::sync::mpsc::channel();
    let client = std::thread::spawn(move || {
        let mut c = RspClient::connect(&addr, config()).unwrap();
        let data = vec![0x5a; 8 << 20];
        let err = c.write_memory(0x8000_0000, &data).unwrap_err();
        let closed = c.is_closed();
        done.send((err.to_string(), closed)).unwrap();
    });
    let outcome = result.recv_timeout(Duration::from_secs(20));
    release.send(()).unwrap();
    let (err, closed) = outcome.expect("the write never timed out");
    assert!(err.contains("no answer"), "{err}");
    assert!(closed);
    client.join().unwrap();
    server.join().unwrap();
}

#[test]
fn an_interrupt_without_a_stop_reply_abandons_with_an_interrupt_and_d() {
    // The stop reply never comes: the guest may be stopped (the reply was lost) or running (the
    // interrupt was). `0x03` then `D` leaves it running in both cases: QEMU stops a running
    // guest on `0x03` and ignores it when stopped; `D` then resumes.
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"c");
        assert_eq!(p.event(), Ev::Interrupt);
        assert_eq!(p.event(), Ev::Interrupt);
        assert_eq!(p.event(), Ev::Packet(b"D".to_vec()));
        assert_eq!(p.event(), Ev::Eof);
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    c.cont().unwrap();
    let err = c.interrupt().unwrap_err();
    assert!(matches!(err, RspError::Timeout { .. }), "{err}");
    assert!(c.is_closed());
    server.join().unwrap();
}

#[test]
fn undecodable_bytes_while_running_abandon_with_an_interrupt_and_d() {
    // A stop reply that expands past the payload limit: it may have been the stop reply.
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"c");
        let body = b"T0*~".repeat(codec::MAX_PAYLOAD / 90);
        p.raw(b"$");
        p.raw(&body);
        p.raw(format!("#{:02x}", codec::checksum(&body)).as_bytes());
        assert_eq!(p.event(), Ev::Interrupt);
        assert_eq!(p.event(), Ev::Packet(b"D".to_vec()));
        assert_eq!(p.event(), Ev::Eof);
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    c.cont().unwrap();
    let err = c.wait_for_stop(Duration::from_secs(2)).unwrap_err();
    assert!(matches!(err, RspError::Malformed { .. }), "{err}");
    assert!(c.is_closed());
    server.join().unwrap();
}

#[test]
fn detach_sends_d_even_when_an_earlier_step_fails() {
    // A stale reply (here a duplicated stop reply) answers `Qqemu.PhyMemMode:0`: the detach
    // reports it, but `D` must still go out, or the guest stays halted.
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"Qqemu.PhyMemMode:1");
        p.reply(b"OK");
        assert_eq!(p.packet(), b"Qqemu.PhyMemMode:0");
        p.reply(b"T02thread:p01.01;");
        assert_eq!(p.packet(), b"D");
        p.reply(b"OK");
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    assert!(c.set_phy_mem_mode(true).unwrap());
    let err = c.detach().unwrap_err();
    assert!(matches!(err, RspError::Malformed { .. }), "{err}");
    assert!(c.is_closed());
    server.join().unwrap();

    // The `D` itself gets a reply that makes no sense: it is sent once more without waiting.
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.packet(), b"D");
        p.reply(b"1234");
        assert_eq!(p.event(), Ev::Interrupt);
        assert_eq!(p.event(), Ev::Packet(b"D".to_vec()));
        assert_eq!(p.event(), Ev::Eof);
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    assert!(c.detach().is_err());
    assert!(c.is_closed());
    server.join().unwrap();
}

#[test]
fn d_sent_when_abandoning_reaches_a_stub_busy_writing() {
    // The stub floods console output and reads nothing meanwhile; the client times out and
    // abandons. Its `D` waits behind the stub's full receive window: closing at once, with the
    // flood unread, would reset the connection and discard it.
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert!(p.packet().starts_with(b"m"));
        let mut flood = Vec::new();
        for _ in 0..200 {
            codec::encode_packet(b"O78", &mut flood);
        }
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_millis(900) {
            let _ = p.w.write_all(&flood);
        }
        loop {
            match p.event() {
                Ev::Ack | Ev::Interrupt => {}
                Ev::Packet(d) if d == b"D" => break,
                other => panic!("expected D, got {other:?}"),
            }
        }
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let err = c.read_memory(0x10, &mut [0u8; 4]).unwrap_err();
    assert!(matches!(err, RspError::Timeout { .. }), "{err}");
    assert!(c.is_closed());
    drop(c);
    server.join().unwrap();
}

#[test]
fn a_continue_never_acknowledged_abandons_with_an_interrupt_and_d() {
    // The stub may have taken the `c` (guest running) or not (guest stopped): only `0x03`
    // followed by `D` leaves the guest running in both cases.
    let (addr, server) = serve(|p| {
        p.qemu_handshake("1000");
        assert_eq!(p.event(), Ev::Packet(b"c".to_vec())); // taken, never acknowledged
        assert_eq!(p.event(), Ev::Interrupt);
        assert_eq!(p.event(), Ev::Packet(b"D".to_vec()));
        assert_eq!(p.event(), Ev::Eof);
    });
    let mut c = RspClient::connect(&addr, config()).unwrap();
    let err = c.cont().unwrap_err();
    assert!(matches!(err, RspError::Timeout { .. }), "{err}");
    assert!(c.is_closed());
    server.join().unwrap();
}
