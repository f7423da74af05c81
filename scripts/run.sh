#!/usr/bin/env bash
# `make run`: QEMU's serial console (left) and the inspector TUI (right) side by side in tmux.
#
# Expects build/kernel.elf and the release inspector to be built (the Makefile does that).
# Quitting the TUI (q) detaches from the guest and leaves the kernel running in the left pane;
# quitting the tmux session (prefix + d, or `tmux kill-session -t leakscope`) stops QEMU.
#
# Environment: GDB_PORT (default 1234); LEAKSCOPE_SESSION (tmux session name, default
# leakscope); LEAKSCOPE_DETACHED=1 starts the session without attaching (tests use it).
set -euo pipefail
cd "$(dirname "$0")/.."

GDB_PORT=${GDB_PORT:-1234}
SESSION=${LEAKSCOPE_SESSION:-leakscope}
ELF=$PWD/build/kernel.elf
INSPECTOR=$PWD/target/release/inspector
QEMU="qemu-system-riscv64 -machine virt -m 128M -bios default -nographic -kernel $ELF -gdb tcp:127.0.0.1:$GDB_PORT"
TUI="$INSPECTOR tui --elf $ELF --gdb 127.0.0.1:$GDB_PORT"

for f in "$ELF" "$INSPECTOR"; do
  [ -e "$f" ] || { echo "run.sh: $f is missing: run \`make run\` (it builds it)" >&2; exit 1; }
done
if (exec 3<>"/dev/tcp/127.0.0.1/$GDB_PORT") 2>/dev/null; then
  echo "run.sh: port $GDB_PORT is in use (another QEMU?): stop it or run \`make run GDB_PORT=4321\`" >&2
  exit 1
fi

if [ -z "${LEAKSCOPE_DETACHED:-}" ] && ! [ -t 0 ] || ! command -v tmux >/dev/null; then
  echo "run.sh: no terminal or no tmux: starting QEMU alone; attach the TUI with \`make inspect\`" >&2
  exec $QEMU
fi

if tmux has-session -t "$SESSION" 2>/dev/null; then
  echo "run.sh: tmux session '$SESSION' exists already: \`tmux attach -t $SESSION\` or kill it first" >&2
  exit 1
fi
tmux new-session -d -s "$SESSION" -x "${COLUMNS:-200}" -y "${LINES:-50}" "$QEMU"
# The TUI keeps retrying until QEMU's gdbstub answers, so no start-up race to handle here.
tmux split-window -h -t "$SESSION" "$TUI"
tmux select-pane -t "$SESSION:0.0"
tmux set-option -t "$SESSION" mouse on >/dev/null

if [ -n "${LEAKSCOPE_DETACHED:-}" ]; then
  echo "run.sh: started tmux session '$SESSION' (console pane 0.0, TUI pane 0.1)"
elif [ -n "${TMUX:-}" ]; then
  tmux switch-client -t "$SESSION"
else
  exec tmux attach -t "$SESSION"
fi
