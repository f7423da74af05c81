//! The boot nonce (`alloc_tracker.boot_nonce`): a value that differs between boots, so a
//! reader that sees it change knows the guest rebooted even if the generation happens to equal
//! the one it last saw. Mixed from the wall clock, the `time` CSR and the build id; never 0
//! (0 is the header before initialisation).

/// splitmix64's finaliser: a bijection of u64 that spreads every input bit over the output.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The nonce for a boot at wall-clock `wall_ns` (RTC) and `time` CSR value `ticks`, of the
/// kernel with `build_id`. Never 0.
pub fn boot_nonce(wall_ns: u64, ticks: u64, build_id: &[u8; 16]) -> u64 {
    let (lo, hi) = build_id.split_at(8);
    let id = u64::from_le_bytes(lo.try_into().unwrap_or_default())
        ^ mix(u64::from_le_bytes(hi.try_into().unwrap_or_default()));
    nonzero(mix(mix(wall_ns ^ mix(ticks)) ^ id))
}

fn nonzero(v: u64) -> u64 {
    v.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: [u8; 16] = *b"0123456789abcdef";

    #[test]
    fn never_zero() {
        assert_eq!(nonzero(0), 1);
        assert_eq!(nonzero(7), 7);
        assert_ne!(boot_nonce(0, 0, &[0; 16]), 0);
        for t in 0..10_000u64 {
            assert_ne!(boot_nonce(t, t * 3, &ID), 0);
        }
    }

    #[test]
    fn differs_when_any_input_differs() {
        let base = boot_nonce(1_700_000_000_000_000_000, 12_345, &ID);
        assert_ne!(
            base,
            boot_nonce(1_700_000_000_000_000_001, 12_345, &ID),
            "wall clock"
        );
        assert_ne!(
            base,
            boot_nonce(1_700_000_000_000_000_000, 12_346, &ID),
            "time CSR"
        );
        let mut other = ID;
        other[15] ^= 1;
        assert_ne!(
            base,
            boot_nonce(1_700_000_000_000_000_000, 12_345, &other),
            "build id"
        );
        // Nearby boots (wall clock a few ms apart, the same early time CSR) never collide.
        let mut seen = std::collections::HashSet::new();
        for ms in 0..20_000u64 {
            assert!(seen.insert(boot_nonce(
                1_700_000_000_000_000_000 + ms * 1_000_000,
                4_000,
                &ID
            )));
        }
    }

    #[test]
    fn is_the_same_for_the_same_inputs() {
        assert_eq!(boot_nonce(5, 6, &ID), boot_nonce(5, 6, &ID));
    }
}
