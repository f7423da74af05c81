//! The recording file's framing (docs/recording-format.md): a 12-byte file header (magic and
//! format version), then frames. A frame is a 14-byte head (payload length, kind, flags, time),
//! the payload (JSON, deflated when that makes it smaller) and a CRC-32 over head and payload.
//!
//! Contract: [`scan`] never panics on any input; it returns every intact frame before the first
//! damaged one (short head, short payload, absurd length, checksum mismatch, unknown kind, time
//! going backwards) and says where and why it stopped ([`Damage`]).

use std::io::{Read, Write};

/// The first 8 bytes of every recording.
pub const MAGIC: [u8; 8] = *b"LSRECORD";
/// The format version this inspector writes and reads.
pub const VERSION: u32 = 1;
/// Bytes before the first frame: magic + version (u32, little-endian).
pub const FILE_HEADER_LEN: usize = 12;
/// Bytes of a frame's head: length u32, kind u8, flags u8, time u64 (little-endian).
pub const FRAME_HEAD_LEN: usize = 14;
/// Bytes of a frame's tail: the CRC-32.
pub const FRAME_TAIL_LEN: usize = 4;
/// Longest payload accepted: a larger length is damage, not an allocation.
pub const MAX_PAYLOAD: u32 = 256 << 20;
/// Payloads at least this long are deflated (when that makes them smaller).
const DEFLATE_FROM: usize = 256;
/// `flags` bit: the payload is deflated (raw deflate, RFC 1951).
const FLAG_DEFLATE: u8 = 1;

/// What a frame holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameKind {
    /// What was recorded, from where (once, first).
    Start = 1,
    /// The tracker's full state, and the events of that sample.
    Keyframe = 2,
    /// What changed since the previous frame.
    Delta = 3,
    /// The recorder stopped cleanly (absent when it was killed).
    End = 4,
}

impl FrameKind {
    fn from_u8(b: u8) -> Option<FrameKind> {
        Some(match b {
            1 => FrameKind::Start,
            2 => FrameKind::Keyframe,
            3 => FrameKind::Delta,
            4 => FrameKind::End,
            _ => return None,
        })
    }
}

/// One intact frame: its kind, time (µs since the recording began), payload (inflated) and
/// where it starts in the file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RawFrame {
    pub kind: FrameKind,
    pub t_us: u64,
    pub payload: Vec<u8>,
    pub offset: usize,
}

/// Where a recording stops being readable, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Damage {
    /// Byte offset of the first frame that could not be read.
    pub offset: usize,
    pub reason: String,
}

impl std::fmt::Display for Damage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

/// The file header.
pub fn file_header() -> [u8; FILE_HEADER_LEN] {
    let mut h = [0u8; FILE_HEADER_LEN];
    h[..8].copy_from_slice(&MAGIC);
    h[8..].copy_from_slice(&VERSION.to_le_bytes());
    h
}

/// Checks the file header; Err says what the file is not.
pub fn check_file_header(bytes: &[u8]) -> Result<(), String> {
    if bytes.len() < FILE_HEADER_LEN {
        return Err(format!(
            "the file is {} bytes long, shorter than a recording's header ({FILE_HEADER_LEN}): \
             not a recording, or cut off at its start",
            bytes.len()
        ));
    }
    if bytes[..8] != MAGIC {
        return Err(
            "not a Leakscope recording (no LSRECORD magic): make one with `inspector record`"
                .to_string(),
        );
    }
    let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
    if version != VERSION {
        return Err(format!(
            "recording format version {version}; this inspector reads version {VERSION}: use \
             the inspector that wrote it"
        ));
    }
    Ok(())
}

/// One frame, ready to write: head, payload (deflated if that is smaller), CRC.
pub fn encode_frame(kind: FrameKind, t_us: u64, payload: &[u8]) -> Vec<u8> {
    let mut flags = 0;
    let mut body = std::borrow::Cow::Borrowed(payload);
    if payload.len() >= DEFLATE_FROM {
        let mut enc =
            flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
        let packed = enc
            .write_all(payload)
            .and_then(|_| enc.finish())
            .expect("deflating into memory cannot fail");
        if packed.len() < payload.len() {
            flags |= FLAG_DEFLATE;
            body = std::borrow::Cow::Owned(packed);
        }
    }
    let mut out = Vec::with_capacity(FRAME_HEAD_LEN + body.len() + FRAME_TAIL_LEN);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.push(kind as u8);
    out.push(flags);
    out.extend_from_slice(&t_us.to_le_bytes());
    out.extend_from_slice(&body);
    let crc = crc32fast::hash(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Every intact frame of `bytes` (a whole recording, file header included, checked by the
/// caller), in order, and the damage that ended the scan early, if any.
pub fn scan(bytes: &[u8]) -> (Vec<RawFrame>, Option<Damage>) {
    let mut frames = Vec::new();
    let mut at = FILE_HEADER_LEN.min(bytes.len());
    let mut last_t = 0;
    while at < bytes.len() {
        match frame_at(bytes, at, last_t) {
            Ok((frame, next)) => {
                last_t = frame.t_us;
                frames.push(frame);
                at = next;
            }
            Err(reason) => {
                return (frames, Some(Damage { offset: at, reason }));
            }
        }
    }
    (frames, None)
}

/// The frame at `at` and the offset after it.
fn frame_at(bytes: &[u8], at: usize, last_t: u64) -> Result<(RawFrame, usize), String> {
    let rest = &bytes[at..];
    if rest.len() < FRAME_HEAD_LEN {
        return Err(format!(
            "the file ends inside a frame's head ({} of {FRAME_HEAD_LEN} bytes): cut off while \
             it was written",
            rest.len()
        ));
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes"));
    if len > MAX_PAYLOAD {
        return Err(format!(
            "a frame claims {len} bytes (at most {MAX_PAYLOAD}): corrupt"
        ));
    }
    let total = FRAME_HEAD_LEN + len as usize + FRAME_TAIL_LEN;
    if rest.len() < total {
        return Err(format!(
            "the file ends inside a frame ({} of {total} bytes): cut off while it was written",
            rest.len()
        ));
    }
    let stored = u32::from_le_bytes(
        rest[total - FRAME_TAIL_LEN..total]
            .try_into()
            .expect("4 bytes"),
    );
    if crc32fast::hash(&rest[..total - FRAME_TAIL_LEN]) != stored {
        return Err("checksum mismatch: the frame is corrupt".to_string());
    }
    let kind = FrameKind::from_u8(rest[4]).ok_or_else(|| {
        format!(
            "unknown frame kind {} (written by a newer inspector?)",
            rest[4]
        )
    })?;
    let flags = rest[5];
    let t_us = u64::from_le_bytes(rest[6..14].try_into().expect("8 bytes"));
    if t_us < last_t {
        return Err(format!(
            "time goes backwards ({t_us} µs after {last_t} µs): corrupt"
        ));
    }
    let body = &rest[FRAME_HEAD_LEN..total - FRAME_TAIL_LEN];
    let payload = if flags & FLAG_DEFLATE != 0 {
        let mut out = Vec::new();
        flate2::read::DeflateDecoder::new(body)
            .take(u64::from(MAX_PAYLOAD))
            .read_to_end(&mut out)
            .map_err(|e| format!("the frame does not inflate: {e}"))?;
        out
    } else {
        body.to_vec()
    };
    Ok((
        RawFrame {
            kind,
            t_us,
            payload,
            offset: at,
        },
        at + total,
    ))
}
