#!/usr/bin/env bash
# `make dump`: writes the running guest's memory (`make qemu` or `make run`) to $DUMP (default
# build/guest.core) with QEMU's `dump-guest-memory`, reached through the gdbstub's `monitor`
# command. The guest is halted for the dump (about 0.15 s for 128 MiB) and then runs on.
# Read the dump offline with `inspector snapshot --core $DUMP` or `inspector tui --core $DUMP`.
#
# The gdbstub takes one client at a time: under `make run` the TUI holds it, so the TUI's own
# gdb server (GDB_PORT+1) is tried next.
#
# Environment: GDB_PORT (default 1234), DUMP (default build/guest.core), GDB (default
# gdb-multiarch).
set -euo pipefail
cd "$(dirname "$0")/.."

GDB_PORT=${GDB_PORT:-1234}
DUMP=${DUMP:-build/guest.core}
GDB=${GDB:-gdb-multiarch}
die() { echo "dump.sh: $*" >&2; exit 1; }

command -v "$GDB" >/dev/null || die "$GDB is not installed (make setup installs it)"
mkdir -p "$(dirname "$DUMP")"
OUT=$(realpath -m "$DUMP")
rm -f "$OUT"

# dump_via PORT: attach (halts the guest), dump, detach (resumes it). Bounded: a stub busy with
# another client would keep gdb waiting.
dump_via() {
  timeout 15 "$GDB" -nx -batch -ex 'set confirm off' \
    -ex "target remote 127.0.0.1:$1" \
    -ex "monitor dump-guest-memory $OUT" \
    -ex 'detach' >/dev/null 2>&1 || true
  [ -s "$OUT" ]
}

if dump_via "$GDB_PORT" || dump_via $((GDB_PORT + 1)); then
  echo "dump.sh: wrote $OUT ($(du -h "$OUT" | cut -f1)); read it with:"
  echo "  inspector snapshot --core $DUMP --elf build/kernel.elf"
else
  die "no dump: neither the gdbstub at 127.0.0.1:$GDB_PORT nor a gdb server at port \
$((GDB_PORT + 1)) wrote one. Is QEMU running (make qemu)? If the TUI holds the stub, quit it \
and retry; a copy of the RAM file (cp /dev/shm/leakscope-$GDB_PORT.ram build/guest.ram) is \
read by --core too, but may catch the kernel mid-change"
fi
