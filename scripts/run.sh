#!/usr/bin/env bash
# `make run`: QEMU's serial console (left) and the inspector TUI (right) side by side in tmux.
#
# Expects the kernel ELF and the release inspector to be built (the Makefile does that).
#
# Lifetimes:
# - Quitting the TUI (q) detaches from the guest and closes the right pane; the kernel keeps
#   running in the left pane (reopen the TUI with `make inspect` from another terminal).
# - The session's end stops QEMU: `tmux kill-session -t leakscope`, or detaching (prefix d) /
#   closing the terminal when this script attached it (destroy-unattached). The pane's process
#   is scripts/qemu.sh (`exec`ed), QEMU its child: tmux's hang-up reaches the script, which
#   stops QEMU and removes the RAM file.
# - QEMU keeps guest RAM in $RAM_FILE while it runs (scripts/qemu.sh; none where /dev/shm is
#   missing or not writable), and the TUI reads through it (`--ram`, when the inspector takes it)
#   as well as the gdbstub (scripts/inspect.sh).
# - QEMU quitting (Ctrl-A x) ends the session, TUI included, and the RAM file with it.
# - QEMU failing to start: this script prints its error (QEMU's stderr goes to
#   ${TMPDIR:-/tmp}/leakscope-qemu-SESSION.log) and exits 1. The inspector failing (e.g. not
#   an ELF): its pane shows the error until Enter. (Not tmux's remain-on-exit failed: tmux
#   3.3 sometimes keeps a pane that exited with status 0.)
#
# - The TUI serves gdb on SERVE_PORT (default GDB_PORT+1, 1235): `make gdb` attaches your gdb
#   through it (QEMU's gdbstub takes one client, the TUI).
#
# Environment: GDB_PORT (default 1234); SERVE_PORT (default GDB_PORT+1, empty for none); RAM_FILE (default /dev/shm/leakscope-$GDB_PORT.ram,
# empty for none); RAM_SIZE (default 128M); LEAKSCOPE_SESSION (tmux session name, default
# leakscope); LEAKSCOPE_KERNEL_ELF (default build/kernel.elf); LEAKSCOPE_INSPECTOR (default
# target/release/inspector); LEAKSCOPE_DETACHED=1 starts the session without attaching and
# without destroy-unattached (tests use it; they kill the session themselves).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "run.sh: $*" >&2; exit 1; }

GDB_PORT=${GDB_PORT:-1234}
SERVE_PORT=${SERVE_PORT-$((GDB_PORT + 1))}
RAM_FILE=${RAM_FILE-/dev/shm/leakscope-$GDB_PORT.ram}
RAM_SIZE=${RAM_SIZE:-128M}
SESSION=${LEAKSCOPE_SESSION:-leakscope}
ELF=${LEAKSCOPE_KERNEL_ELF:-build/kernel.elf}
INSPECTOR=${LEAKSCOPE_INSPECTOR:-target/release/inspector}
DETACHED=${LEAKSCOPE_DETACHED:-}
QEMU_LOG=${TMPDIR:-/tmp}/leakscope-qemu-$SESSION.log

for f in "$ELF" "$INSPECTOR"; do
  [ -e "$f" ] || die "$f is missing: run \`make run\` (it builds it)"
done
# Absolute paths: the panes' commands must not depend on a working directory.
ELF=$(realpath "$ELF")
INSPECTOR=$(realpath "$INSPECTOR")
[[ $GDB_PORT =~ ^[0-9]+$ ]] || die "GDB_PORT=$GDB_PORT is not a port number"
command -v qemu-system-riscv64 >/dev/null || die "qemu-system-riscv64 is not installed (make setup installs it)"

# Is something listening on port $1 (any address)? Reads /proc/net/tcp{,6} rather than
# connecting: a connection to another QEMU's gdbstub would halt that guest.
port_in_use() {
  local files=() f
  for f in /proc/net/tcp /proc/net/tcp6; do [ -r "$f" ] && files+=("$f"); done
  [ ${#files[@]} -gt 0 ] || return 1
  awk -v p="$(printf ':%04X' "$1")" \
    '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' "${files[@]}"
}
port_busy_msg="port $GDB_PORT is in use (another QEMU?): stop it or run \`make run GDB_PORT=4321\`"

QEMU_CMD=$(printf '%q ' env RAM_FILE="$RAM_FILE" RAM_SIZE="$RAM_SIZE" bash "$PWD/scripts/qemu.sh" \
  qemu-system-riscv64 -machine virt -m "$RAM_SIZE" -smp "${SMP:-2}" -bios default -nographic \
  -kernel "$ELF" -gdb "tcp:127.0.0.1:$GDB_PORT")
TUI_CMD=$(printf '%q ' env GDB_PORT="$GDB_PORT" SERVE_PORT="$SERVE_PORT" RAM_FILE="$RAM_FILE" LEAKSCOPE_KERNEL_ELF="$ELF" \
  LEAKSCOPE_INSPECTOR="$INSPECTOR" bash "$PWD/scripts/inspect.sh")

if ! command -v tmux >/dev/null; then
  [ -z "$DETACHED" ] || die "tmux is not installed (make setup installs it)"
fi
if [ -z "$DETACHED" ] && { ! [ -t 0 ] || ! [ -t 1 ] || ! command -v tmux >/dev/null; }; then
  port_in_use "$GDB_PORT" && die "$port_busy_msg"
  echo "run.sh: no terminal or no tmux: starting QEMU alone; attach the TUI with \`make inspect\`" >&2
  eval "exec $QEMU_CMD"
fi

if tmux has-session -t "=$SESSION" 2>/dev/null; then
  die "tmux session '$SESSION' exists already: \`tmux attach -t $SESSION\`, or \`tmux kill-session -t $SESSION\` and run again"
fi
port_in_use "$GDB_PORT" && die "$port_busy_msg"
if [ -n "$SERVE_PORT" ] && port_in_use "$SERVE_PORT"; then
  die "port $SERVE_PORT (for your gdb, through the TUI) is in use: run \`make run SERVE_PORT=4322\` (or SERVE_PORT= for none)"
fi
if [ -n "$SERVE_PORT" ]; then
  echo "run.sh: your gdb attaches through the TUI: \`make gdb\` (target remote 127.0.0.1:$SERVE_PORT)"
fi

# Pane ids (%N) rather than SESSION:0.0, which a user's base-index/pane-base-index would move.
# Commands as separate arguments: tmux runs them without the user's default-shell (fish, ...).
QEMU_PANE=$(tmux new-session -d -P -F '#{pane_id}' -s "$SESSION" -x "${COLUMNS:-200}" -y "${LINES:-50}" \
  bash -c "exec $QEMU_CMD 2>$(printf '%q' "$QEMU_LOG")")
# From here on a failing step must not leave a half-built session with QEMU running.
trap 'tmux kill-session -t "=$SESSION" 2>/dev/null' ERR
# QEMU gone (Ctrl-A x, or a start-up error) → the session ends, TUI included.
tmux set-hook -t "=$SESSION:" pane-exited \
  "if-shell -F '#{==:#{hook_pane},$QEMU_PANE}' 'kill-session -t \"=$SESSION\"'"

# QEMU listens on its gdbstub port before the guest runs: wait for that (or its death).
for _ in $(seq 100); do
  port_in_use "$GDB_PORT" && break
  if ! tmux has-session -t "=$SESSION" 2>/dev/null; then
    die "QEMU did not start:
$(cat "$QEMU_LOG" 2>/dev/null)"
  fi
  sleep 0.1
done
if ! port_in_use "$GDB_PORT"; then
  tmux kill-session -t "=$SESSION" 2>/dev/null || true
  die "QEMU has not opened port $GDB_PORT after 10 s (its stderr: $QEMU_LOG)"
fi

# The TUI pane closes when the TUI quits cleanly (q); on an error it shows it until Enter.
tmux split-window -h -t "$QEMU_PANE" bash -c "$TUI_CMD || { echo \"run.sh: the inspector exited with status \$?; Enter closes this pane\"; read -r _; }"
tmux select-pane -t "$QEMU_PANE"
tmux set-option -t "=$SESSION:" mouse on >/dev/null
trap - ERR

if [ -n "$DETACHED" ]; then
  echo "run.sh: started tmux session '$SESSION' (console pane $QEMU_PANE, TUI on its right)"
elif [ -n "${TMUX:-}" ]; then
  # Inside tmux already: switch this client; the session lives until killed.
  echo "run.sh: switching to tmux session '$SESSION'; end it with \`tmux kill-session -t $SESSION\`"
  tmux switch-client -t "=$SESSION"
else
  # The last client detaching (prefix d, closed terminal) ends the session and so QEMU.
  # Set once attached: an unattached session with it on would be destroyed at once.
  exec tmux attach -t "=$SESSION" \; set-option destroy-unattached on
fi
