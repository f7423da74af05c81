#!/usr/bin/env bash
# Runs QEMU with the guest's RAM in a shared file, and removes the file when QEMU ends.
#
# Usage: RAM_FILE=PATH [RAM_SIZE=128M] scripts/qemu.sh QEMU [QEMU ARGUMENTS...]
#
# The arguments must give `-machine virt` and `-m $RAM_SIZE`; this script adds
#   -object memory-backend-file,id=ram,size=$RAM_SIZE,mem-path=$RAM_FILE,share=on
#   -machine memory-backend=ram
# (QEMU merges the two -machine options). The file then holds guest-physical RAM from
# 0x8000_0000 at offset 0, and the inspector reads it (`--ram PATH`) while the guest runs
# (docs/tracker-abi.md, "Reading without halting").
#
# Contracts:
# - QEMU does not delete the file. This script does, however QEMU ends: it quits (Ctrl-A x),
#   fails, is killed (even with SIGKILL), or this script gets SIGINT, SIGTERM or SIGHUP or its
#   terminal hangs up (it then stops QEMU with SIGTERM, SIGKILL after 5 s, and waits for it).
#   So QEMU runs as a child, never `exec`ed. Only a SIGKILL of this script itself leaves the file behind: the next
#   start on the same path removes such a leftover.
# - A RAM_FILE that a running process maps (another QEMU on the same GDB_PORT) is never
#   touched: the script refuses to start.
# - Where the file's directory (/dev/shm) is missing or not writable, or RAM_FILE is empty,
#   QEMU runs as before, with private RAM (said on stderr); the gdbstub is then the only way
#   to read the guest.
# - The exit status is QEMU's (128 + N when this script ended on signal N).
set -uo pipefail

die() { echo "qemu.sh: $*" >&2; exit 1; }

[ $# -ge 1 ] || die "usage: RAM_FILE=PATH [RAM_SIZE=128M] $0 QEMU [ARGUMENTS...]"
RAM_FILE=${RAM_FILE:-}
RAM_SIZE=${RAM_SIZE:-128M}

if [ -z "$RAM_FILE" ]; then
  echo "qemu.sh: RAM_FILE is empty: guest RAM stays private to QEMU (the inspector reads through the gdbstub only)" >&2
  exec "$@"
fi
ram_dir=$(dirname -- "$RAM_FILE")
if ! [ -d "$ram_dir" ] || ! [ -w "$ram_dir" ]; then
  echo "qemu.sh: $ram_dir is missing or not writable: starting QEMU without $RAM_FILE (guest RAM private; the inspector reads through the gdbstub only)" >&2
  exec "$@"
fi

# PIDs of the processes that map $1 (those whose maps this user may read).
mapped_by() {
  local maps
  for maps in /proc/[0-9]*/maps; do
    grep -qsF -- " $1" "$maps" 2>/dev/null && { maps=${maps#/proc/}; echo "${maps%/maps}"; }
  done
}
if [ -e "$RAM_FILE" ]; then
  holders=$(mapped_by "$RAM_FILE" | tr '\n' ' ')
  [ -z "$holders" ] || die "$RAM_FILE is in use by pid ${holders% } (another QEMU on this GDB_PORT?): stop it, or run with another GDB_PORT or RAM_FILE"
  # A leftover of a QEMU that could not clean up: its contents are of no use to anyone.
  rm -f -- "$RAM_FILE" || die "cannot remove the stale $RAM_FILE"
fi

qemu_pid=
cleanup() {
  if [ -n "$qemu_pid" ] && kill -0 "$qemu_pid" 2>/dev/null; then
    kill -TERM "$qemu_pid" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$qemu_pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$qemu_pid" 2>/dev/null
    wait "$qemu_pid" 2>/dev/null
  fi
  rm -f -- "$RAM_FILE"
}
trap cleanup EXIT
trap 'exit 129' HUP
trap 'exit 130' INT
trap 'exit 143' TERM

# QEMU's option parser takes ',,' for a literal comma.
mem_path=${RAM_FILE//,/,,}
# In the background so that a signal to this script is handled at once (`wait` returns), with
# the terminal as its standard input (a background job's default would be /dev/null).
"$@" -object "memory-backend-file,id=ram,size=$RAM_SIZE,mem-path=$mem_path,share=on" \
  -machine memory-backend=ram <&0 &
qemu_pid=$!
# Wait for QEMU, in short naps: a trapped signal cuts a nap short. A terminal that hangs up
# sends SIGHUP only to its session leader (make, in `tmux new 'make qemu'`), which would wait
# for QEMU forever: so a standard input that stops being a terminal counts as a hang-up too.
on_tty=; [ -t 0 ] && on_tty=1
while kill -0 "$qemu_pid" 2>/dev/null; do
  if [ -n "$on_tty" ] && ! [ -t 0 ]; then
    echo "qemu.sh: the terminal hung up: stopping QEMU" >&2
    exit 129
  fi
  sleep 0.5 &
  wait $! 2>/dev/null
done
wait "$qemu_pid"
status=$?
qemu_pid=
exit "$status"
