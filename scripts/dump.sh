#!/usr/bin/env bash
# `make dump`: writes the running guest's memory (`make qemu` or `make run`) to $DUMP (default
# build/guest.core) with QEMU's `dump-guest-memory`, reached through the gdbstub's `monitor`
# command. The guest is halted for the dump (about 0.15 s for 128 MiB) and then runs on.
# Read the dump offline with `inspector snapshot --core $DUMP` or `inspector tui --core $DUMP`.
#
# The gdbstub takes one client at a time: under `make run` the TUI holds it and serves gdb on
# GDB_PORT+1, so when something listens there, that server is tried first (a busy stub would
# keep gdb waiting until its timeout), then the stub; otherwise the stub first.
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
  # The architecture is set by hand: this gdb has no ELF, and a stub's description might not
  # name it (QEMU's does, and the inspector's server passes QEMU's on).
  timeout 15 "$GDB" -nx -batch -ex 'set confirm off' \
    -ex 'set architecture riscv:rv64' \
    -ex "target remote 127.0.0.1:$1" \
    -ex "monitor dump-guest-memory $OUT" \
    -ex 'detach' >/dev/null 2>&1 || true
  [ -s "$OUT" ]
}

SERVE_PORT=$((GDB_PORT + 1))
# bash's /dev/tcp: does anything accept on the server's port? (The inspector's server drops a
# client that says nothing.)
if (exec 3<>"/dev/tcp/127.0.0.1/$SERVE_PORT") 2>/dev/null; then
  ORDER="$SERVE_PORT $GDB_PORT"
else
  ORDER="$GDB_PORT $SERVE_PORT"
fi
dumped=false
for port in $ORDER; do
  if dump_via "$port"; then dumped=true; break; fi
done
if $dumped; then
  echo "dump.sh: wrote $OUT ($(du -h "$OUT" | cut -f1)); read it with:"
  echo "  inspector snapshot --core $DUMP --elf build/kernel.elf"
else
  die "no dump: neither the gdbstub at 127.0.0.1:$GDB_PORT nor a gdb server at port \
$((GDB_PORT + 1)) wrote one. Is QEMU running (make qemu)? If the TUI holds the stub, quit it \
and retry; a copy of the RAM file (cp /dev/shm/leakscope-$GDB_PORT.ram build/guest.ram) is \
read by --core too, but may catch the kernel mid-change"
fi
