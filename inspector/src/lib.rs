//! Leakscope inspector: reads the kernel's page tracker live over a GDB remote stub.
//!
//! Layers, bottom up; each imports only from layers below it (`tests/structure.rs` checks):
//!
//! | layer | owns |
//! | --- | --- |
//! | `riscv`, `rsp` | RISC-V facts (registers, page size); the GDB remote protocol |
//! | `target` | halt, read, resume, breakpoints, steps behind a trait |
//! | `dwarf` | the ELF's symbols, type layouts, lines, parameters, call frames |
//! | `model`, `snapshot` | plain tracker data; the reading protocol that fills it |
//! | `sites` (between them) | allocation sites named from the kernel's and the programs' DWARF |
//! | `record` | recordings: the file format, the recorder, seeking and stepping in a replay |
//! | `source` | where snapshots come from (a live stub, a demo), and what each can do |
//! | `debugger` | breakpoints, stepping, stops; a live source that can also debug |
//! | `serve` | a GDB server in front of the guest: your gdb beside the views, one connection |
//! | `cli`, `tui` | the commands and the terminal UI |

pub mod cli;
pub mod debugger;
pub mod dwarf;
pub mod model;
pub mod record;
pub mod riscv;
pub mod rsp;
pub mod serve;
pub mod sites;
pub mod snapshot;
pub mod source;
pub mod target;
pub mod tui;
