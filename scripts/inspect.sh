#!/usr/bin/env bash
# `make inspect`, and the TUI pane of `make run`: the inspector's TUI on a running QEMU, through
# its gdbstub and, when QEMU keeps guest RAM in a file (scripts/qemu.sh) and the inspector takes
# `--ram`, through that file too. It also serves gdb on SERVE_PORT (`--serve`), so your gdb
# attaches through the TUI (`make gdb`) while the TUI holds QEMU's one gdbstub connection.
#
# Environment: GDB_PORT (default 1234); RAM_FILE (default /dev/shm/leakscope-$GDB_PORT.ram,
# empty for none); SERVE_PORT (default GDB_PORT+1, empty for none); LEAKSCOPE_KERNEL_ELF (default build/kernel.elf); LEAKSCOPE_INSPECTOR
# (default target/release/inspector). The inspector replaces this script (its exit status is
# the inspector's).
set -euo pipefail
cd "$(dirname "$0")/.."

GDB_PORT=${GDB_PORT:-1234}
RAM_FILE=${RAM_FILE-/dev/shm/leakscope-$GDB_PORT.ram}
ELF=${LEAKSCOPE_KERNEL_ELF:-build/kernel.elf}
INSPECTOR=${LEAKSCOPE_INSPECTOR:-target/release/inspector}

args=(tui --elf "$ELF")
# Older inspectors have no --ram: give it only to one that lists it.
if [ -n "$RAM_FILE" ] && "$INSPECTOR" tui --help 2>/dev/null | grep -qE -- '--ram([^-[:alnum:]]|$)'; then
  if [ -e "$RAM_FILE" ]; then
    args+=(--ram "$RAM_FILE")
  else
    echo "inspect.sh: no $RAM_FILE (QEMU not started by \`make qemu\`/\`make run\`, or without /dev/shm): reading through the gdbstub only" >&2
  fi
fi
args+=(--gdb "127.0.0.1:$GDB_PORT")
SERVE_PORT=${SERVE_PORT-$((GDB_PORT + 1))}
if [ -n "$SERVE_PORT" ] && "$INSPECTOR" tui --help 2>/dev/null | grep -qE -- '--serve([^-[:alnum:]]|$)'; then
  args+=(--serve "127.0.0.1:$SERVE_PORT")
fi
exec "$INSPECTOR" "${args[@]}"
