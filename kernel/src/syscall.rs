//! System calls: decoding a7/a0..a5 from the trapframe, validating every user pointer through
//! the process's page table (a bad one yields EFAULT, never a kernel fault), and the calls
//! themselves. Numbers and records: `sysabi` (shared with the user programs).

use crate::mm::vm::{self, Fault};
use crate::mm::{self, tracker, AllocError};
use crate::sysabi::*;
use crate::trap::{TrapFrame, REG_A0, REG_A7};
use crate::{archive, console, proc, timer};
use ::tracker::abi::{FreeError, ProcState};
use ::tracker::FreeBy;
use kcore::sysargs;

/// Runs the syscall in `tf` and stores its result in a0.
pub fn dispatch(tf: &mut TrapFrame) {
    let a = |k: usize| tf.regs[REG_A0 + k];
    let (a0, a1, a2, a3) = (a(0), a(1), a(2), a(3));
    let ret: isize = match tf.regs[REG_A7] as usize {
        SYS_WRITE => sys_write(a0, a1),
        SYS_READ => sys_read(a0, a1),
        SYS_EXIT => proc::exit_current(a0 as i32),
        SYS_GETPID => proc::current_pid() as isize,
        SYS_SPAWN => sys_spawn(a0, a1, a2, a3),
        SYS_WAIT => sys_wait(a0, a1, a2),
        SYS_YIELD => {
            proc::yield_now();
            0
        }
        SYS_SLEEP => {
            proc::sleep_until(timer::now().saturating_add(timer::ms_to_ticks(a0)));
            0
        }
        // `sepc` was moved past the `ecall` (4 bytes) already: the call's own pc is 4 back.
        SYS_ALLOC_PAGES => sys_alloc_pages(a0, tf.sepc.wrapping_sub(4)),
        SYS_FREE_PAGES => sys_free_pages(a0, a1),
        SYS_PROCINFO => sys_procinfo(a0, a1),
        SYS_MEMINFO => sys_meminfo(a0),
        SYS_DEBUG => proc::set_exit_report(a0 != 0) as isize,
        SYS_TIME => (timer::rtc_ns() & (i64::MAX as u64)) as isize,
        SYS_UPTIME => timer::uptime_ms() as isize,
        SYS_LIST => sys_list(a0, a1),
        SYS_DUMP_ALLOCS => {
            tracker::dump_allocs();
            0
        }
        SYS_LOCKSTAT => sys_lockstat(a0, a1),
        _ => ENOSYS,
    };
    tf.regs[REG_A0] = ret as u64;
}

fn fault(_: Fault) -> isize {
    EFAULT
}

fn as_bytes<T>(v: &T) -> &[u8] {
    // SAFETY: viewing a plain repr(C) record (no padding with secrets: all fields are integers
    // and the records are zero-initialised) as bytes for copying to user space.
    unsafe { core::slice::from_raw_parts(v as *const T as *const u8, core::mem::size_of::<T>()) }
}

fn sys_write(buf: u64, len: u64) -> isize {
    let root = proc::current_root();
    // Validate the whole range first: a bad pointer prints nothing.
    if let Err(e) = vm::check_user(root, buf, len, false) {
        return fault(e);
    }
    let mut chunk = [0u8; 256];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(chunk.len() as u64) as usize;
        if let Err(e) = vm::copy_in(root, buf + done, &mut chunk[..n]) {
            return fault(e);
        }
        console::write_bytes(&chunk[..n]);
        done += n as u64;
    }
    len as isize
}

fn sys_read(buf: u64, len: u64) -> isize {
    if len == 0 {
        return 0;
    }
    let root = proc::current_root();
    let n = len.min(console::LINE_MAX as u64) as usize;
    // Check the destination before consuming a line.
    if let Err(e) = vm::check_user(root, buf, n as u64, true) {
        return fault(e);
    }
    let mut line = [0u8; console::LINE_MAX];
    loop {
        if let Some(got) = console::take_line(&mut line[..n]) {
            return vm::copy_out(root, buf, &line[..got]).map_or(EFAULT, |_| got as isize);
        }
        proc::sleep_until(timer::now() + timer::ms_to_ticks(10));
    }
}

fn sys_spawn(name: u64, name_len: u64, args: u64, args_len: u64) -> isize {
    let root = proc::current_root();
    let (name_len, args_len) = match sysargs::spawn_lens(name_len, args_len) {
        Ok(lens) => lens,
        Err(e) => return e,
    };
    let mut nbuf = [0u8; MAX_NAME_LEN];
    let mut abuf = [0u8; MAX_ARGS_LEN];
    if let Err(e) = vm::copy_in(root, name, &mut nbuf[..name_len]) {
        return fault(e);
    }
    if let Err(e) = vm::copy_in(root, args, &mut abuf[..args_len]) {
        return fault(e);
    }
    let Ok(name) = core::str::from_utf8(&nbuf[..name_len]) else {
        return EINVAL;
    };
    match proc::spawn(name, &abuf[..args_len], proc::current_pid()) {
        Ok(pid) => pid as isize,
        Err(e) => e,
    }
}

fn sys_wait(target: u64, status: u64, flags: u64) -> isize {
    let root = proc::current_root();
    let target = match sysargs::wait_target(target) {
        Ok(t) => t,
        Err(e) => return e,
    };
    if status != 0 && vm::check_user(root, status, 4, true).is_err() {
        return EFAULT;
    }
    match proc::wait(target, flags as usize & WAIT_NOHANG != 0) {
        Ok((0, _)) => 0,
        Ok((pid, code)) => {
            if status != 0 && vm::copy_out(root, status, &code.to_le_bytes()).is_err() {
                return EFAULT;
            }
            pid as isize
        }
        Err(e) => e,
    }
}

fn ram_base() -> u64 {
    tracker::header().ram_base
}

/// User address of the heap page for `pa`.
fn heap_va(pa: u64) -> u64 {
    sysargs::heap_va(pa, ram_base())
}

/// `ecall_pc`: where the program asked (its user site).
fn sys_alloc_pages(npages: u64, ecall_pc: u64) -> isize {
    let npages = match sysargs::alloc_npages(npages) {
        Ok(n) => n,
        Err(e) => return e,
    };
    let pid = proc::current_pid();
    let root = proc::current_root();
    let program = proc::current_program();
    let pa = match mm::alloc_pages_for_user(npages, pid, "alloc_pages", ecall_pc, program) {
        Ok(pa) => pa,
        Err(AllocError::OutOfMemory) => return ENOMEM,
        Err(AllocError::TableFull) => return ETABLEFULL,
    };
    for k in 0..npages {
        if let Err(e) = vm::map(
            root,
            heap_va(pa) + k * PAGE_SIZE,
            pa + k * PAGE_SIZE,
            vm::PTE_R | vm::PTE_W,
            pid,
        ) {
            // A page table page could not be had: undo, so nothing stays allocated.
            for j in 0..k {
                vm::unmap(root, heap_va(pa) + j * PAGE_SIZE);
            }
            mm::free_pages(pa, npages).expect("alloc_pages rollback: entry vanished");
            return match e {
                AllocError::OutOfMemory => ENOMEM,
                AllocError::TableFull => ETABLEFULL,
            };
        }
    }
    heap_va(pa) as isize
}

fn sys_free_pages(va: u64, npages: u64) -> isize {
    let h = tracker::header();
    let pa = match sysargs::heap_free(va, npages, h.ram_base, h.ram_pages) {
        Ok(pa) => pa,
        Err(e) => return e,
    };
    let pid = proc::current_pid();
    let root = proc::current_root();
    // Mapped in this process's heap window: one of its own user allocations (or the middle of
    // one). A page the process owns but that is not mapped there is one the kernel holds for
    // it (stack, page table, …): the tracker refuses it as not_owner, naming the process.
    let mapped = vm::translate(root, va, true) == Some(pa);
    match mm::untrack(pa, npages, FreeBy::Process { pid, mapped }) {
        Ok(_) => {
            for k in 0..npages {
                vm::unmap(root, va + k * PAGE_SIZE)
                    .expect("free_pages: user allocation not mapped");
            }
            mm::release(pa, npages);
            0
        }
        Err(FreeError::Untracked) => EUNTRACKED,
        Err(FreeError::DoubleFree) => EDOUBLEFREE,
        Err(FreeError::WrongSize { .. }) => EWRONGSIZE,
        Err(FreeError::NotOwner { .. }) => ENOTOWNER,
    }
}

fn state_num(s: ProcState) -> u32 {
    s as u32
}

/// Every kernel spin lock's counters, in lock order.
fn sys_lockstat(buf: u64, max: u64) -> isize {
    let root = proc::current_root();
    let recs = [
        proc::lock_report(),
        tracker::lock_report(),
        mm::lock_report(),
        console::lock_report(),
    ];
    let n = recs.len().min(max as usize).min(MAX_LOCKS);
    let size = core::mem::size_of::<LockStat>();
    for (k, r) in recs[..n].iter().enumerate() {
        if let Err(e) = vm::copy_out(root, buf + (k * size) as u64, as_bytes(r)) {
            return fault(e);
        }
    }
    n as isize
}

fn sys_procinfo(buf: u64, max: u64) -> isize {
    let root = proc::current_root();
    let mut recs = [ProcStat::default(); proc::MAX_PROCS];
    let mut n = 0;
    proc::for_each_proc(|pid, parent, state, name, hart| {
        recs[n] = ProcStat {
            pid,
            parent,
            state: state_num(state),
            hart,
            name,
            allocs: 0,
            pages: 0,
        };
        n += 1;
    });
    tracker::for_each_live(|e| {
        if let Some(r) = recs[..n].iter_mut().find(|r| r.pid == e.owner) {
            r.allocs += 1;
            r.pages += e.npages;
        }
    });
    let n = n.min(max as usize);
    let size = core::mem::size_of::<ProcStat>();
    for (k, r) in recs[..n].iter().enumerate() {
        if let Err(e) = vm::copy_out(root, buf + (k * size) as u64, as_bytes(r)) {
            return fault(e);
        }
    }
    n as isize
}

fn sys_meminfo(buf: u64) -> isize {
    let root = proc::current_root();
    let mut m = MemStat::ZERO;
    let h = tracker::header();
    let (total, free) = mm::page_counts();
    (m.total, m.free, m.used) = (total, free, total - free);
    (m.tracked, m.failed_allocs, m.invalid_frees) =
        (h.tracked_pages, h.failed_allocs, h.invalid_frees);
    (m.reclaimed_allocs, m.reclaimed_pages) = (h.reclaimed_allocs, h.reclaimed_pages);
    let mut n = 1;
    m.owners[0] = OwnerStat {
        pid: 0,
        live: 1,
        name: *b"kernel\0\0\0\0\0\0\0\0\0\0",
        allocs: 0,
        pages: 0,
    };
    proc::for_each_proc(|pid, _, _, name, _| {
        if n < MAX_OWNERS {
            m.owners[n] = OwnerStat {
                pid,
                live: 1,
                name,
                allocs: 0,
                pages: 0,
            };
            n += 1;
        }
    });
    let mut allocs = 0;
    tracker::for_each_live(|e| {
        allocs += 1;
        let k = match m.owners[..n].iter().position(|o| o.pid == e.owner) {
            Some(k) => k,
            None if n < MAX_OWNERS => {
                // Owned by a PID that is no longer a process: a leak the sweep missed.
                m.owners[n] = OwnerStat {
                    pid: e.owner,
                    live: 0,
                    name: *b"<dead>\0\0\0\0\0\0\0\0\0\0",
                    allocs: 0,
                    pages: 0,
                };
                n += 1;
                n - 1
            }
            None => return,
        };
        m.owners[k].allocs += 1;
        m.owners[k].pages += e.npages;
    });
    m.allocs = allocs;
    m.nowners = n as u64;
    vm::copy_out(root, buf, as_bytes(&m)).map_or(EFAULT, |_| 0)
}

fn sys_list(buf: u64, len: u64) -> isize {
    let root = proc::current_root();
    let mut out = [0u8; 512];
    let mut n = 0;
    for (name, _) in archive::programs() {
        let b = name.as_bytes();
        if n + b.len() + 1 > out.len() {
            break;
        }
        out[n..n + b.len()].copy_from_slice(b);
        out[n + b.len()] = b'\n';
        n += b.len() + 1;
    }
    let n = n.min(len as usize);
    vm::copy_out(root, buf, &out[..n]).map_or(EFAULT, |_| n as isize)
}
