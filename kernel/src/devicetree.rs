//! Reads what the kernel needs from the flattened device tree OpenSBI hands over: the RAM range
//! (`/memory@…` `reg`), the timer frequency (`/cpus` `timebase-frequency`) and the command
//! line (`/chosen` `bootargs`, see `kcore::bootargs`). Owns no state; the blob is only read
//! during boot (it lies in RAM the page allocator later hands out).

use kcore::bootargs;

const FDT_MAGIC: u32 = 0xd00d_feed;
const FDT_BEGIN_NODE: u32 = 1;
const FDT_END_NODE: u32 = 2;
const FDT_PROP: u32 = 3;
const FDT_NOP: u32 = 4;
const FDT_END: u32 = 9;
/// Header fields (big-endian u32 at these offsets): offsets of the structure and strings blocks.
const FDT_OFF_DT_STRUCT: usize = 8;
const FDT_OFF_DT_STRINGS: usize = 12;

/// `time` CSR frequency when the device tree gives none: QEMU virt's.
pub const DEFAULT_TIMEBASE_HZ: u64 = 10_000_000;

/// Boot facts from the device tree.
#[derive(Clone, Copy, Debug)]
pub struct BootInfo {
    pub ram_base: u64,
    pub ram_size: u64,
    /// `time` CSR ticks per second (`/cpus` `timebase-frequency`).
    pub timebase_hz: u64,
    /// Fault injection for tests (`fail_shell_starts=N` in bootargs): the first N attempts to
    /// start the shell fail. 0 normally.
    pub fail_shell_starts: u32,
}

fn be32(p: usize) -> u32 {
    // SAFETY: callers only pass addresses inside the blob, whose size the header gives.
    u32::from_be_bytes(unsafe { (p as *const [u8; 4]).read_unaligned() })
}

fn cells(p: usize, n: u32) -> u64 {
    (0..n as usize).fold(0u64, |acc, i| (acc << 32) | be32(p + 4 * i) as u64)
}

fn cstr_eq(p: usize, s: &[u8]) -> bool {
    // SAFETY: compares at most s.len()+1 bytes of a NUL-terminated string inside the blob.
    unsafe {
        (0..s.len()).all(|i| *((p + i) as *const u8) == s[i]) && *((p + s.len()) as *const u8) == 0
    }
}

fn cstr_starts(p: usize, s: &[u8]) -> bool {
    // SAFETY: as in `cstr_eq`; stops at the first mismatch (a NUL mismatches any prefix byte).
    unsafe { (0..s.len()).all(|i| *((p + i) as *const u8) == s[i]) }
}

fn cstr_len(p: usize) -> usize {
    let mut n = 0;
    // SAFETY: strings in the blob are NUL-terminated.
    while unsafe { *((p + n) as *const u8) } != 0 {
        n += 1;
    }
    n
}

/// Parses the blob at physical address `dtb`. Panics if it is not a device tree or has no memory node.
pub fn parse(dtb: usize) -> BootInfo {
    assert!(be32(dtb) == FDT_MAGIC, "devicetree: no FDT at {dtb:#x}");
    let structs = dtb + be32(dtb + FDT_OFF_DT_STRUCT) as usize;
    let strings = dtb + be32(dtb + FDT_OFF_DT_STRINGS) as usize;
    let (mut addr_cells, mut size_cells) = (2u32, 1u32);
    let mut info = BootInfo {
        ram_base: 0,
        ram_size: 0,
        timebase_hz: DEFAULT_TIMEBASE_HZ,
        fail_shell_starts: 0,
    };
    let mut depth = 0usize;
    let (mut in_memory, mut in_cpus, mut in_chosen) = (false, false, false);
    let mut p = structs;
    loop {
        let tok = be32(p);
        p += 4;
        match tok {
            FDT_BEGIN_NODE => {
                depth += 1;
                if depth == 2 {
                    in_memory = cstr_starts(p, b"memory");
                    in_cpus = cstr_eq(p, b"cpus");
                    in_chosen = cstr_eq(p, b"chosen");
                }
                p += (cstr_len(p) + 1 + 3) & !3;
            }
            FDT_END_NODE => {
                if depth == 2 {
                    in_memory = false;
                    in_cpus = false;
                    in_chosen = false;
                }
                depth -= 1;
            }
            FDT_PROP => {
                let len = be32(p) as usize;
                let name = strings + be32(p + 4) as usize;
                let val = p + 8;
                if depth == 1 && cstr_eq(name, b"#address-cells") {
                    addr_cells = be32(val);
                } else if depth == 1 && cstr_eq(name, b"#size-cells") {
                    size_cells = be32(val);
                } else if in_memory && depth == 2 && cstr_eq(name, b"reg") && info.ram_size == 0 {
                    info.ram_base = cells(val, addr_cells);
                    info.ram_size = cells(val + 4 * addr_cells as usize, size_cells);
                } else if in_cpus && depth == 2 && cstr_eq(name, b"timebase-frequency") {
                    info.timebase_hz = cells(val, (len / 4) as u32);
                } else if in_chosen && depth == 2 && cstr_eq(name, b"bootargs") {
                    // SAFETY: the property's `len` bytes lie inside the blob.
                    let args = unsafe { core::slice::from_raw_parts(val as *const u8, len) };
                    info.fail_shell_starts =
                        bootargs::number(args, bootargs::FAIL_SHELL_STARTS).unwrap_or(0);
                }
                p = val + ((len + 3) & !3);
            }
            FDT_NOP => {}
            FDT_END => break,
            other => panic!("devicetree: bad token {other:#x} at {p:#x}"),
        }
    }
    assert!(info.ram_size != 0, "devicetree: no memory node");
    info
}
