#!/usr/bin/env bash
# `make run`: QEMU's serial console (left) and the inspector TUI (right) side by side in tmux.
#
# Expects the kernel ELF and the release inspector to be built (the Makefile does that).
#
# Lifetimes:
# - Quitting the TUI (q) detaches from the guest and closes the right pane; the kernel keeps
#   running in the left pane (reopen the TUI with `make inspect` from another terminal).
# - The session's end stops QEMU: `tmux kill-session -t leakscope`, or detaching (prefix d) /
#   closing the terminal when this script attached it (destroy-unattached). QEMU runs with
#   `exec` in its pane, so the pane's pid is QEMU's and tmux's hang-up reaches it.
# - QEMU quitting (Ctrl-A x) ends the session, TUI included.
# - A pane whose program fails (QEMU cannot start, the inspector rejects the ELF) stays open
#   showing the error (remain-on-exit failed); `tmux kill-session -t leakscope` clears it.
#
# Environment: GDB_PORT (default 1234); LEAKSCOPE_SESSION (tmux session name, default
# leakscope); LEAKSCOPE_KERNEL_ELF (default build/kernel.elf); LEAKSCOPE_INSPECTOR (default
# target/release/inspector); LEAKSCOPE_DETACHED=1 starts the session without attaching and
# without destroy-unattached (tests use it; they kill the session themselves).
set -euo pipefail
cd "$(dirname "$0")/.."

die() { echo "run.sh: $*" >&2; exit 1; }

GDB_PORT=${GDB_PORT:-1234}
SESSION=${LEAKSCOPE_SESSION:-leakscope}
ELF=${LEAKSCOPE_KERNEL_ELF:-build/kernel.elf}
INSPECTOR=${LEAKSCOPE_INSPECTOR:-target/release/inspector}
DETACHED=${LEAKSCOPE_DETACHED:-}

for f in "$ELF" "$INSPECTOR"; do
  [ -e "$f" ] || die "$f is missing: run \`make run\` (it builds it)"
done
# Absolute paths: the panes' commands must not depend on a working directory.
ELF=$(realpath "$ELF")
INSPECTOR=$(realpath "$INSPECTOR")
[[ $GDB_PORT =~ ^[0-9]+$ ]] || die "GDB_PORT=$GDB_PORT is not a port number"

# Is something listening on 127.0.0.1:$1 (or on any address)? Reads /proc/net/tcp{,6} rather
# than connecting: connecting to another QEMU's gdbstub would halt that guest.
port_in_use() {
  local files=() f
  for f in /proc/net/tcp /proc/net/tcp6; do [ -r "$f" ] && files+=("$f"); done
  [ ${#files[@]} -gt 0 ] || return 1
  awk -v p="$(printf ':%04X' "$1")" \
    '$4 == "0A" && substr($2, length($2) - 4) == p { found = 1 } END { exit !found }' "${files[@]}"
}

QEMU_CMD=$(printf '%q ' qemu-system-riscv64 -machine virt -m 128M -bios default -nographic \
  -kernel "$ELF" -gdb "tcp:127.0.0.1:$GDB_PORT")
TUI_CMD=$(printf '%q ' "$INSPECTOR" tui --elf "$ELF" --gdb "127.0.0.1:$GDB_PORT")

if ! command -v tmux >/dev/null; then
  [ -z "$DETACHED" ] || die "tmux is not installed (make setup installs it)"
fi
if [ -z "$DETACHED" ] && { ! [ -t 0 ] || ! [ -t 1 ] || ! command -v tmux >/dev/null; }; then
  port_in_use "$GDB_PORT" && die "port $GDB_PORT is in use (another QEMU?): stop it or run \`make run GDB_PORT=4321\`"
  echo "run.sh: no terminal or no tmux: starting QEMU alone; attach the TUI with \`make inspect\`" >&2
  eval "exec $QEMU_CMD"
fi

if tmux has-session -t "=$SESSION" 2>/dev/null; then
  die "tmux session '$SESSION' exists already: \`tmux attach -t $SESSION\`, or \`tmux kill-session -t $SESSION\` and run again"
fi
if port_in_use "$GDB_PORT"; then
  die "port $GDB_PORT is in use (another QEMU?): stop it or run \`make run GDB_PORT=4321\`"
fi

# Pane ids (%N) rather than SESSION:0.0, which a user's base-index/pane-base-index would move.
# Each option is set in the same tmux command as the pane's creation, so a program that fails
# at once still finds remain-on-exit set.
QEMU_PANE=$(tmux new-session -d -P -F '#{pane_id}' -s "$SESSION" -x "${COLUMNS:-200}" -y "${LINES:-50}" \
  "exec $QEMU_CMD" \; set-option -p remain-on-exit failed)
# From here on a failing step must not leave a half-built session with QEMU running.
trap 'tmux kill-session -t "=$SESSION" 2>/dev/null' ERR
# The TUI keeps retrying until QEMU's gdbstub answers, so no start-up race to handle here.
tmux split-window -h -t "$QEMU_PANE" "exec $TUI_CMD" \; set-option -p remain-on-exit failed
tmux select-pane -t "$QEMU_PANE"
tmux set-option -t "=$SESSION:" mouse on >/dev/null
# QEMU gone (Ctrl-A x) → the session ends, so no TUI is left polling a dead port.
tmux set-hook -t "=$SESSION:" pane-exited \
  "if-shell -F '#{==:#{hook_pane},$QEMU_PANE}' 'kill-session -t \"=$SESSION\"'"

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
