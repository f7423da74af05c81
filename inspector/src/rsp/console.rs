//! Console output (`O` packets) a stub sends aside from replies, kept in a bounded buffer: the
//! most recent [`MAX_CONSOLE_BYTES`] are held, older bytes are dropped and counted, so a stub
//! that talks without end cannot exhaust memory.

use std::collections::VecDeque;

/// Most bytes of console output held between two takes.
pub const MAX_CONSOLE_BYTES: usize = 64 * 1024;

/// The held console output. Positions ([`Console::mark`]) count every byte ever pushed, dropped
/// ones included.
#[derive(Debug, Default)]
pub(super) struct Console {
    held: VecDeque<u8>,
    /// Bytes pushed since the start.
    total: u64,
    /// Bytes dropped since the start to respect the bound.
    dropped: u64,
}

impl Console {
    /// Appends `text`, dropping the oldest bytes beyond [`MAX_CONSOLE_BYTES`].
    pub(super) fn push(&mut self, text: &[u8]) {
        self.total += text.len() as u64;
        let text = if text.len() > MAX_CONSOLE_BYTES {
            self.dropped += (text.len() - MAX_CONSOLE_BYTES) as u64;
            &text[text.len() - MAX_CONSOLE_BYTES..]
        } else {
            text
        };
        let excess = (self.held.len() + text.len()).saturating_sub(MAX_CONSOLE_BYTES);
        self.held.drain(..excess);
        self.dropped += excess as u64;
        self.held.extend(text);
    }

    /// Takes everything held.
    pub(super) fn take(&mut self) -> Vec<u8> {
        Vec::from(std::mem::take(&mut self.held))
    }

    /// The position after the last byte pushed, for [`Console::take_since`].
    pub(super) fn mark(&self) -> u64 {
        self.total
    }

    /// Takes the bytes pushed since `mark` that are still held, and says how many of those
    /// pushed since were dropped. Bytes before `mark` stay.
    pub(super) fn take_since(&mut self, mark: u64) -> (Vec<u8>, u64) {
        let since = self.total.saturating_sub(mark);
        let held = self.held.len() as u64;
        let keep = held.saturating_sub(since) as usize;
        let taken = Vec::from(self.held.split_off(keep));
        (taken, since.saturating_sub(held))
    }

    /// Bytes dropped so far because the buffer was full.
    pub(super) fn dropped(&self) -> u64 {
        self.dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_the_most_recent_bytes() {
        let mut c = Console::default();
        c.push(b"abc");
        c.push(b"def");
        assert_eq!(c.take(), b"abcdef");
        assert_eq!(c.take(), b"");
        let big: Vec<u8> = (0..MAX_CONSOLE_BYTES + 10).map(|i| i as u8).collect();
        c.push(b"xyz");
        c.push(&big);
        assert_eq!(c.dropped(), 13);
        assert_eq!(c.take(), big[10..]);
        // Many small pushes: the bound holds all along.
        for _ in 0..MAX_CONSOLE_BYTES / 2 + 5 {
            c.push(b"hi");
            assert!(c.held.len() <= MAX_CONSOLE_BYTES);
        }
        assert_eq!(c.dropped(), 13 + 10);
    }

    #[test]
    fn take_since_a_mark_reports_what_was_dropped_after_it() {
        let mut c = Console::default();
        c.push(b"before ");
        let mark = c.mark();
        c.push(b"after");
        assert_eq!(c.take_since(mark), (b"after".to_vec(), 0));
        assert_eq!(c.take(), b"before ");
        let mark = c.mark();
        let big = vec![b'z'; MAX_CONSOLE_BYTES + 7];
        c.push(&big);
        let (kept, lost) = c.take_since(mark);
        assert_eq!((kept.len(), lost), (MAX_CONSOLE_BYTES, 7));
        assert_eq!(c.take_since(c.mark()), (Vec::new(), 0));
    }
}
