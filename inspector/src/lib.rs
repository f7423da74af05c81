//! Leakscope inspector: reads the kernel's page tracker live over a GDB remote stub.
//!
//! Layers, bottom up: `riscv` (register numbers and names, the typed register set, the page
//! size) and `rsp` (GDB remote protocol transport and codec), `target` (halt, read,
//! resume behind a trait), `dwarf` (ELF symbols, type layouts, line tables), `model` (snapshots
//! decoded by field name, and their differences).

pub mod debugger;
pub mod dwarf;
pub mod model;
pub mod report;
pub mod riscv;
pub mod rsp;
pub mod session;
pub mod snapshot;
pub mod target;
pub mod tui;
