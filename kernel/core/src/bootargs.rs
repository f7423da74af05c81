//! The kernel command line (`/chosen` `bootargs` in the device tree, QEMU's `-append`):
//! whitespace-separated `key=value` words. The kernel knows one key, a fault injection for
//! tests: `fail_shell_starts=N` makes the first N attempts to start the shell fail as if out
//! of memory.

/// The key of the shell-start fault injection.
pub const FAIL_SHELL_STARTS: &str = "fail_shell_starts";

/// The value of the last `key=value` word for `key` in `args` (bytes up to a NUL, if any).
/// None if absent or not UTF-8.
pub fn value<'a>(args: &'a [u8], key: &str) -> Option<&'a str> {
    let end = args.iter().position(|&b| b == 0).unwrap_or(args.len());
    let text = core::str::from_utf8(&args[..end]).ok()?;
    text.split_ascii_whitespace()
        .rev()
        .filter_map(|w| w.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// The decimal value of `key`, if present and a number that fits a u32.
pub fn number(args: &[u8], key: &str) -> Option<u32> {
    value(args, key)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_keys_among_other_words() {
        let args = b"console=ttyS0 fail_shell_starts=3 quiet\0garbage";
        assert_eq!(value(args, "console"), Some("ttyS0"));
        assert_eq!(number(args, FAIL_SHELL_STARTS), Some(3));
        assert_eq!(value(args, "quiet"), None, "a word without = has no value");
        assert_eq!(value(args, "garbage"), None, "nothing after the NUL");
        assert_eq!(
            number(
                b"fail_shell_starts=1 fail_shell_starts=7",
                FAIL_SHELL_STARTS
            ),
            Some(7)
        );
    }

    #[test]
    fn bad_or_missing_values_are_none() {
        assert_eq!(number(b"", FAIL_SHELL_STARTS), None);
        assert_eq!(number(b"\0", FAIL_SHELL_STARTS), None);
        assert_eq!(number(b"fail_shell_starts=", FAIL_SHELL_STARTS), None);
        assert_eq!(number(b"fail_shell_starts=-1", FAIL_SHELL_STARTS), None);
        assert_eq!(
            number(b"fail_shell_starts=99999999999", FAIL_SHELL_STARTS),
            None
        );
        assert_eq!(number(b"xfail_shell_starts=2", FAIL_SHELL_STARTS), None);
        assert_eq!(number(b"fail_shell_starts=2\xff", FAIL_SHELL_STARTS), None);
    }
}
