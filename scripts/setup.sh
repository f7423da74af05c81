#!/usr/bin/env bash
# Installs what Leakscope needs on a fresh Debian machine, and nothing more.
# Idempotent: each step checks first and says what it does; quick when nothing is missing.
set -euo pipefail

say() { echo "[setup] $*"; }

TARGET=riscv64gc-unknown-none-elf
if ! rustup target list --installed 2>/dev/null | grep -qx "$TARGET"; then
  say "adding Rust target $TARGET"
  rustup target add "$TARGET"
fi
for comp in rustfmt clippy; do
  if ! rustup component list --installed 2>/dev/null | grep -q "^$comp"; then
    say "adding Rust component $comp"
    rustup component add "$comp"
  fi
done

# command -> Debian package
declare -A PKGS=(
  [qemu-system-riscv64]=qemu-system-misc
  [gdb-multiarch]=gdb-multiarch
  [tmux]=tmux
  [gcc]=gcc
  # Tests: the DWARF fixtures assemble big-endian objects with llvm-mc (gcc builds the C source).
  [llvm-mc]=llvm
  # The C example kernel (examples/chapter-c, `make c-kernel`): clang for riscv64, linked by lld.
  [clang]=clang
  [ld.lld]=lld
)
missing=()
for cmd in "${!PKGS[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${PKGS[$cmd]}")
done
# OpenSBI firmware comes with qemu-system-data (a dependency of qemu-system-misc).
if command -v qemu-system-riscv64 >/dev/null 2>&1 && ! ls /usr/share/qemu/opensbi-riscv64-generic-fw_dynamic.* >/dev/null 2>&1; then
  missing+=(opensbi qemu-system-data)
fi
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=""
  [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  say "installing with apt-get: ${missing[*]}"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
say "ok: $(qemu-system-riscv64 --version | head -n1)"
