//! Sv39 page tables: the kernel's identity map and each process's address space, and copying
//! between kernel and user memory through a process's table.
//!
//! Layout of every table: 1 GiB identity leaves (global, not user) for slot 0 (devices) and for
//! the RAM slots; user mappings only in slot 1 (image and stack) and in the heap window
//! (`HEAP_BASE + (pa - ram_base)`), see `sysabi`. The kernel is thus mapped in every address
//! space and traps need no table switch. Page-table pages of a process are tracked with owner
//! = pid and tag "pagetable"; the kernel root with owner 0 and tag "kernel_pagetable".

use super::{alloc_pages, free_pages, AllocError};
use crate::devicetree::BootInfo;
use crate::sync::KCell;
use crate::sysabi::USER_VA_END;
use core::arch::asm;
use kcore::sysargs;
use tracker::abi::{Pid, PAGE_SHIFT, PAGE_SIZE};

pub const PTE_V: u64 = 1 << 0;
pub const PTE_R: u64 = 1 << 1;
pub const PTE_W: u64 = 1 << 2;
pub const PTE_X: u64 = 1 << 3;
pub const PTE_U: u64 = 1 << 4;
pub const PTE_G: u64 = 1 << 5;
pub const PTE_A: u64 = 1 << 6;
pub const PTE_D: u64 = 1 << 7;
/// A PTE holds the physical page number from this bit up.
const PTE_PPN_SHIFT: u32 = 10;

/// Sv39: three levels of tables, each indexed by 9 bits of the virtual page number.
const VPN_BITS: u32 = 9;
const VPN_MASK: u64 = (1 << VPN_BITS) - 1;
const PTES_PER_TABLE: usize = 1 << VPN_BITS;
/// Level of the root table; level 0 maps pages.
const ROOT_LEVEL: u32 = 2;
/// Bytes one root-table leaf maps (1 GiB).
const ROOT_LEAF_SIZE: u64 = 1 << (PAGE_SHIFT + ROOT_LEVEL * VPN_BITS);
/// `satp.MODE` (bits 63..60) selecting Sv39.
const SATP_MODE_SV39: u64 = 8 << 60;

static KERNEL_ROOT: KCell<u64> = KCell::new(0);

type Table = [u64; PTES_PER_TABLE];

fn table(pa: u64) -> *mut Table {
    pa as *mut Table
}

fn pte_pa(pte: u64) -> u64 {
    (pte >> PTE_PPN_SHIFT) << PAGE_SHIFT
}

fn make_pte(pa: u64, flags: u64) -> u64 {
    ((pa >> PAGE_SHIFT) << PTE_PPN_SHIFT) | flags
}

/// Index of `va` in a table of `level`.
fn vpn(va: u64, level: u32) -> usize {
    ((va >> (PAGE_SHIFT + VPN_BITS * level)) & VPN_MASK) as usize
}

fn is_leaf(pte: u64) -> bool {
    pte & (PTE_R | PTE_W | PTE_X) != 0
}

/// `satp` value selecting the Sv39 table rooted at `root`.
pub fn satp_of(root: u64) -> u64 {
    SATP_MODE_SV39 | (root >> PAGE_SHIFT)
}

/// Switches to the table rooted at `root` and flushes the TLB.
pub fn activate(root: u64) {
    // SAFETY: every table built here maps the kernel identically (module invariant), so the
    // instruction stream and the stack stay valid across the switch.
    unsafe { asm!("csrw satp, {0}", "sfence.vma", in(reg) satp_of(root)) };
}

pub fn kernel_root() -> u64 {
    // SAFETY: written once in `init_kernel`, read-only afterwards.
    unsafe { *KERNEL_ROOT.get() }
}

/// Builds the kernel's identity map (devices and RAM, 1 GiB leaves) and turns paging on.
pub fn init_kernel(boot: &BootInfo) {
    let root =
        alloc_pages(1, 0, "kernel_pagetable").expect("vm: no page for the kernel root table");
    let t = table(root);
    let flags = PTE_V | PTE_R | PTE_W | PTE_G | PTE_A | PTE_D;
    let first = boot.ram_base / ROOT_LEAF_SIZE;
    let last = (boot.ram_base + boot.ram_size - 1) / ROOT_LEAF_SIZE;
    // SAFETY: `root` is a fresh zeroed page owned by the kernel, identity-addressable (paging off).
    unsafe {
        (*t)[0] = make_pte(0, flags);
        for slot in first..=last {
            (*t)[slot as usize] = make_pte(slot * ROOT_LEAF_SIZE, flags | PTE_X);
        }
        *KERNEL_ROOT.get() = root;
    }
    activate(root);
}

/// A new process root table: the kernel's leaves and nothing else. Tracked for `pid`.
pub fn new_user_root(pid: Pid) -> Result<u64, AllocError> {
    let root = alloc_pages(1, pid, "pagetable")?;
    // SAFETY: `root` is a fresh page; the kernel root is only read.
    unsafe { *table(root) = *table(kernel_root()) };
    Ok(root)
}

/// The level-0 PTE slot for `va`, allocating intermediate tables for `alloc_for` if given.
/// Ok(None) if `va` is outside user space, crosses a kernel leaf, or a table is missing.
fn walk(root: u64, va: u64, alloc_for: Option<Pid>) -> Result<Option<*mut u64>, AllocError> {
    if va >= USER_VA_END {
        return Ok(None);
    }
    let mut t = table(root);
    for level in (1..=ROOT_LEVEL).rev() {
        let idx = vpn(va, level);
        // SAFETY: `t` is a page-table page of this address space (reached from `root`).
        let pte = unsafe { &mut (*t)[idx] };
        if *pte & PTE_V != 0 {
            if is_leaf(*pte) {
                return Ok(None);
            }
            t = table(pte_pa(*pte));
        } else {
            let Some(pid) = alloc_for else {
                return Ok(None);
            };
            let page = alloc_pages(1, pid, "pagetable")?;
            *pte = make_pte(page, PTE_V);
            t = table(page);
        }
    }
    let idx = vpn(va, 0);
    // SAFETY: as above, for the level-0 table.
    Ok(Some(unsafe { &mut (*t)[idx] as *mut u64 }))
}

/// Maps the user page `va` → `pa` with `flags` (U, A, D added). Panics if `va` is already mapped.
pub fn map(root: u64, va: u64, pa: u64, flags: u64, pid: Pid) -> Result<(), AllocError> {
    let slot =
        walk(root, va, Some(pid))?.unwrap_or_else(|| panic!("vm: cannot map user va {va:#x}"));
    // SAFETY: `slot` points into a page-table page of this address space.
    unsafe {
        assert!(*slot & PTE_V == 0, "vm: va {va:#x} mapped twice");
        *slot = make_pte(pa, flags | PTE_V | PTE_U | PTE_A | PTE_D);
    }
    Ok(())
}

/// Removes the mapping of user page `va`; returns the page it mapped.
pub fn unmap(root: u64, va: u64) -> Option<u64> {
    let slot = walk(root, va, None).ok()??;
    // SAFETY: `slot` points into a page-table page of this address space.
    unsafe {
        if *slot & PTE_V == 0 {
            return None;
        }
        let pa = pte_pa(*slot);
        *slot = 0;
        Some(pa)
    }
}

/// The physical address behind user address `va` if it is mapped user-readable (and writable
/// when `write`).
pub fn translate(root: u64, va: u64, write: bool) -> Option<u64> {
    let slot = walk(root, va & !(PAGE_SIZE - 1), None).ok()??;
    // SAFETY: `slot` points into a page-table page of this address space.
    let pte = unsafe { *slot };
    let need = PTE_V | PTE_U | PTE_R | if write { PTE_W } else { 0 };
    (pte & need == need).then(|| pte_pa(pte) + (va & (PAGE_SIZE - 1)))
}

/// Bad user pointer: not user-mapped with the needed permission, or out of range.
#[derive(Debug)]
pub struct Fault;

/// Ok if all of user range `[va, va+len)` is mapped user-readable (and writable when `write`).
/// Ranges outside the user regions (or wrapping) are refused before any walk
/// (`kcore::sysargs::user_range`).
pub fn check_user(root: u64, va: u64, len: u64, write: bool) -> Result<(), Fault> {
    sysargs::user_range(va, len).map_err(|_| Fault)?;
    let end = va + len;
    let mut page = va & !(PAGE_SIZE - 1);
    while page < end {
        translate(root, page, write).ok_or(Fault)?;
        page += PAGE_SIZE;
    }
    Ok(())
}

/// Applies `f(kernel_ptr, offset, len)` to each page-sized piece of user range `[va, va+len)`.
fn for_user_range(
    root: u64,
    va: u64,
    len: usize,
    write: bool,
    mut f: impl FnMut(*mut u8, usize, usize),
) -> Result<(), Fault> {
    // Check the whole range first so a failing copy changes nothing.
    check_user(root, va, len as u64, write)?;
    let end = va + len as u64;
    let mut cur = va;
    while cur < end {
        let n = ((PAGE_SIZE - (cur & (PAGE_SIZE - 1))).min(end - cur)) as usize;
        let pa = translate(root, cur, write).ok_or(Fault)?;
        f(pa as *mut u8, (cur - va) as usize, n);
        cur += n as u64;
    }
    Ok(())
}

/// Copies user memory at `va` into `dst`.
pub fn copy_in(root: u64, va: u64, dst: &mut [u8]) -> Result<(), Fault> {
    for_user_range(root, va, dst.len(), false, |p, off, n| {
        // SAFETY: `p..p+n` is a user-mapped piece of one RAM page (checked by translate), identity-mapped for the kernel.
        unsafe { core::ptr::copy_nonoverlapping(p, dst[off..].as_mut_ptr(), n) }
    })
}

/// Copies `src` into user memory at `va` (which must be user-writable).
pub fn copy_out(root: u64, va: u64, src: &[u8]) -> Result<(), Fault> {
    for_user_range(root, va, src.len(), true, |p, off, n| {
        // SAFETY: as in `copy_in`, and the page is user-writable, so it is process memory.
        unsafe { core::ptr::copy_nonoverlapping(src[off..].as_ptr(), p, n) }
    })
}

/// Frees the page-table pages of a process (intermediate tables, then the root). The pages
/// they map are not touched: their owners free them.
pub fn free_user_tables(root: u64) {
    fn free_level(t: u64, level: u32) {
        for idx in 0..PTES_PER_TABLE {
            // SAFETY: `t` is a page-table page of a dead process's address space.
            let pte = unsafe { (*table(t))[idx] };
            if pte & PTE_V != 0 && !is_leaf(pte) && level > 0 {
                free_level(pte_pa(pte), level - 1);
                free_pages(pte_pa(pte), 1).expect("vm: page-table page not tracked");
            }
        }
    }
    free_level(root, ROOT_LEVEL);
    free_pages(root, 1).expect("vm: root table not tracked");
}
