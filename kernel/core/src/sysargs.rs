//! The checks of syscall arguments that need no page table: where a user buffer may lie at
//! all, page counts, the heap window's address arithmetic, spawn's lengths. Each returns the
//! syscall's error code (`sysabi`) on refusal; arithmetic is checked, so no argument wraps.
//! What remains for the kernel is the page-table walk (`vm::check_user`): mapped, `U`, `R`/`W`.

use crate::sysabi::*;
use tracker::abi::Pid;

/// Whether a user buffer `[va, va + len)` may lie where it does: inside the program region
/// (`USER_BASE .. USER_STACK_TOP`: image, stack) or inside the heap window (`HEAP_BASE ..
/// USER_VA_END`), without wrapping. Everything else (null, the kernel at `0x8000_0000..`,
/// devices, the upper half) is `EFAULT` before any table is walked. An empty buffer touches
/// nothing and is always accepted.
pub fn user_range(va: u64, len: u64) -> Result<(), isize> {
    if len == 0 {
        return Ok(());
    }
    let end = va.checked_add(len).ok_or(EFAULT)?;
    let within = |lo: u64, hi: u64| va >= lo && end <= hi;
    if within(USER_BASE, USER_STACK_TOP) || within(HEAP_BASE, USER_VA_END) {
        Ok(())
    } else {
        Err(EFAULT)
    }
}

/// `alloc_pages(npages)`: 1 ..= `MAX_ALLOC_PAGES`, else `EINVAL`.
pub fn alloc_npages(npages: u64) -> Result<u64, isize> {
    if (1..=MAX_ALLOC_PAGES).contains(&npages) {
        Ok(npages)
    } else {
        Err(EINVAL)
    }
}

/// User address of the heap page for physical page `pa` (`pa >= ram_base`).
pub fn heap_va(pa: u64, ram_base: u64) -> u64 {
    HEAP_BASE + (pa - ram_base)
}

/// `free_pages(va, npages)`: the physical address of the first page, if `npages >= 1`, `va` is
/// page-aligned and the whole range `[va, va + npages pages)` lies in the heap window of a RAM
/// of `ram_pages` pages at `ram_base`; else `EINVAL`, whatever the size of `npages`. Whose
/// pages they are is the tracker's question, asked after this.
pub fn heap_free(va: u64, npages: u64, ram_base: u64, ram_pages: u64) -> Result<u64, isize> {
    if npages == 0 || !va.is_multiple_of(PAGE_SIZE) {
        return Err(EINVAL);
    }
    let first = va.checked_sub(HEAP_BASE).ok_or(EINVAL)? / PAGE_SIZE;
    let end = first.checked_add(npages).ok_or(EINVAL)?;
    if end > ram_pages {
        return Err(EINVAL);
    }
    Ok(ram_base + first * PAGE_SIZE)
}

/// `spawn(name, name_len, args, args_len)`: the lengths as buffer sizes if the name is 1 ..=
/// `MAX_NAME_LEN` bytes and the argument block at most `MAX_ARGS_LEN`; else `EINVAL`.
pub fn spawn_lens(name_len: u64, args_len: u64) -> Result<(usize, usize), isize> {
    if name_len == 0 || name_len > MAX_NAME_LEN as u64 || args_len > MAX_ARGS_LEN as u64 {
        return Err(EINVAL);
    }
    Ok((name_len as usize, args_len as usize))
}

/// Which children `wait(pid, …)` may reap: `Some(pid)` for a positive PID that fits a `Pid`,
/// `None` (any) for -1 and other non-positive values. A positive value no PID can have is
/// `Err(ECHILD)`: no child has it.
pub fn wait_target(arg: u64) -> Result<Option<Pid>, isize> {
    let v = arg as i64;
    if v <= 0 {
        return Ok(None);
    }
    Pid::try_from(v).map(Some).map_err(|_| ECHILD)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RAM_BASE: u64 = 0x8000_0000;
    const RAM_PAGES: u64 = 32768;
    const PAGE: u64 = PAGE_SIZE;

    #[test]
    fn user_buffers_inside_the_program_region_or_the_heap_window_pass() {
        for (va, len) in [
            (USER_BASE, 1),
            (USER_BASE + 0x1234, 0x100),
            (USER_STACK_TOP - 64, 64),
            (HEAP_BASE, PAGE),
            (USER_VA_END - 1, 1),
        ] {
            assert_eq!(user_range(va, len), Ok(()), "{va:#x}+{len:#x}");
        }
    }

    #[test]
    fn kernel_null_device_and_upper_half_buffers_are_efault() {
        for (va, len) in [
            (0, 1),
            (0x1000, 8),
            (0x1000_0000, 1),         // UART
            (0x8020_0000, 10),        // the kernel image
            (USER_STACK_TOP, 1),      // just past the stack: the kernel's RAM
            (USER_STACK_TOP - 8, 64), // straddles the stack top
            (USER_BASE - 1, 2),       // straddles the program region's start
            (HEAP_BASE - 8, 16),      // straddles the heap window's start
            (USER_VA_END, 1),
            (0xffff_ffc0_0000_0000, 8),
            (u64::MAX, 1),
        ] {
            assert_eq!(user_range(va, len), Err(EFAULT), "{va:#x}+{len:#x}");
        }
    }

    #[test]
    fn overflowing_buffer_lengths_are_efault() {
        for (va, len) in [
            (USER_BASE, u64::MAX),
            (HEAP_BASE, u64::MAX - HEAP_BASE + 1),
            (u64::MAX - 3, 8),
            (USER_BASE, USER_VA_END),
        ] {
            assert_eq!(user_range(va, len), Err(EFAULT), "{va:#x}+{len:#x}");
        }
        assert_eq!(user_range(0, 0), Ok(()), "an empty buffer touches nothing");
        assert_eq!(user_range(u64::MAX, 0), Ok(()));
    }

    #[test]
    fn alloc_page_counts() {
        assert_eq!(alloc_npages(0), Err(EINVAL));
        assert_eq!(alloc_npages(1), Ok(1));
        assert_eq!(alloc_npages(MAX_ALLOC_PAGES), Ok(MAX_ALLOC_PAGES));
        assert_eq!(alloc_npages(MAX_ALLOC_PAGES + 1), Err(EINVAL));
        assert_eq!(alloc_npages(u64::MAX), Err(EINVAL));
        assert_eq!(alloc_npages(1 << 40), Err(EINVAL));
    }

    #[test]
    fn heap_frees_map_back_to_physical_pages() {
        let va = heap_va(RAM_BASE + 0x53_7000, RAM_BASE);
        assert_eq!(va, HEAP_BASE + 0x53_7000);
        assert_eq!(
            heap_free(va, 1, RAM_BASE, RAM_PAGES),
            Ok(RAM_BASE + 0x53_7000)
        );
        assert_eq!(
            heap_free(HEAP_BASE, RAM_PAGES, RAM_BASE, RAM_PAGES),
            Ok(RAM_BASE)
        );
        let last = HEAP_BASE + (RAM_PAGES - 1) * PAGE;
        assert_eq!(
            heap_free(last, 1, RAM_BASE, RAM_PAGES),
            Ok(RAM_BASE + (RAM_PAGES - 1) * PAGE)
        );
    }

    #[test]
    fn heap_frees_that_are_misaligned_empty_or_outside_the_window_are_einval() {
        for (va, n) in [
            (HEAP_BASE, 0),
            (HEAP_BASE + 12, 1),
            (HEAP_BASE + PAGE - 1, 1),
            (HEAP_BASE - PAGE, 1),
            (0, 1),
            (0x7fff_f000, 1), // a stack page: not in the heap window
            (0x8020_0000, 1), // a kernel address
            (HEAP_BASE + RAM_PAGES * PAGE, 1),
            (HEAP_BASE + (RAM_PAGES - 1) * PAGE, 2),
            (!(PAGE - 1), 1),
        ] {
            assert_eq!(
                heap_free(va, n, RAM_BASE, RAM_PAGES),
                Err(EINVAL),
                "{va:#x} {n}"
            );
        }
    }

    #[test]
    fn heap_frees_with_huge_page_counts_are_einval_not_a_wrap() {
        let va = HEAP_BASE + 5 * PAGE;
        for n in [
            u64::MAX,
            u64::MAX - 4,
            u64::MAX - 5,
            1 << 63,
            RAM_PAGES - 4,
            1 << 52,
        ] {
            assert_eq!(
                heap_free(va, n, RAM_BASE, RAM_PAGES),
                Err(EINVAL),
                "npages {n:#x}"
            );
        }
        assert_eq!(
            heap_free(va, RAM_PAGES - 5, RAM_BASE, RAM_PAGES),
            Ok(RAM_BASE + 5 * PAGE)
        );
    }

    #[test]
    fn spawn_lengths() {
        assert_eq!(spawn_lens(5, 0), Ok((5, 0)));
        assert_eq!(
            spawn_lens(MAX_NAME_LEN as u64, MAX_ARGS_LEN as u64),
            Ok((MAX_NAME_LEN, MAX_ARGS_LEN))
        );
        for (n, a) in [
            (0, 0),
            (MAX_NAME_LEN as u64 + 1, 0),
            (1 << 40, 0),
            (u64::MAX, 0),
            (5, MAX_ARGS_LEN as u64 + 1),
            (5, 1 << 30),
            (5, u64::MAX),
        ] {
            assert_eq!(spawn_lens(n, a), Err(EINVAL), "{n} {a}");
        }
    }

    #[test]
    fn wait_targets() {
        assert_eq!(wait_target(-1i64 as u64), Ok(None));
        assert_eq!(wait_target(0), Ok(None));
        assert_eq!(wait_target(i64::MIN as u64), Ok(None));
        assert_eq!(wait_target(7), Ok(Some(7)));
        assert_eq!(wait_target(u32::MAX as u64), Ok(Some(u32::MAX)));
        assert_eq!(
            wait_target(u32::MAX as u64 + 1),
            Err(ECHILD),
            "no PID is that large"
        );
        assert_eq!(wait_target(i64::MAX as u64), Err(ECHILD));
    }
}
