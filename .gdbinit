# Leakscope's gdb setup. `make gdb` loads it with -x (gdb's auto-load of ./.gdbinit is not
# relied on). It adds `alloc-dump` and `alloc-pid N` (scripts/gdb/leakscope.py), which print
# the kernel's page tracker table by DWARF, seeing through the Rust wrappers.
set confirm off
set pagination off
# QEMU keeps the multiprocess mode of a client that offered it for every later connection,
# and then refuses a plain `D` (E22): the inspector attached after this gdb could not detach
# and would leave the guest halted. gdb works the same without the feature on one hart.
set remote multiprocess-feature-packet off
source scripts/gdb/leakscope.py
