# Leakscope build and run entry points. Other targets (test, run, inspect) are added below ours.

CARGO       ?= cargo
TARGET      := riscv64gc-unknown-none-elf
PROFILE_DIR := target/$(TARGET)/release
# Where `make kernel` (the Rust kernel) and `make c-kernel` (examples/chapter-c) leave their ELF.
KERNEL_ELF  := build/kernel.elf
C_KERNEL_ELF := build/chapter-c.elf
# The kernel `make qemu`, `make qemu-gdb`, `make run` and `make inspect` boot and read, e.g.
# `make run KERNEL=build/chapter-c.elf`; any ELF that exports the chapter's `alloc_table` will do.
KERNEL      ?= $(KERNEL_ELF)
# What builds $(KERNEL) for `make run`: nothing for a kernel of your own.
KERNEL_BUILD := $(if $(filter $(KERNEL_ELF),$(KERNEL)),kernel,$(if $(filter $(C_KERNEL_ELF),$(KERNEL)),c-kernel,))
QEMU        ?= qemu-system-riscv64
GDB         ?= gdb-multiarch
GDB_PORT    ?= 1234
RAM_SIZE    := 128M
# Guest RAM in a shared file the inspector reads while the guest runs (`--ram`); one per QEMU,
# like the port. scripts/qemu.sh adds the memory backend and removes the file when QEMU ends.
RAM_FILE    ?= /dev/shm/leakscope-$(GDB_PORT).ram
# Harts QEMU starts (the kernel boots them all; the gdbstub shows each as a thread).
SMP         ?= 2
QEMU_FLAGS  := -machine virt -m $(RAM_SIZE) -smp $(SMP) -bios default -nographic -kernel $(KERNEL) \
               -gdb tcp:127.0.0.1:$(GDB_PORT)
RUN_QEMU    := RAM_FILE='$(RAM_FILE)' RAM_SIZE=$(RAM_SIZE) bash scripts/qemu.sh $(QEMU)

.PHONY: setup kernel user c-kernel qemu qemu-gdb gdb

setup:
	bash scripts/setup.sh

# User programs first: the kernel's build.rs packs them from $(PROFILE_DIR).
user: setup
	$(CARGO) build --release --target $(TARGET) -p user

kernel: user
	LEAKSCOPE_USER_DIR=$(CURDIR)/$(PROFILE_DIR) $(CARGO) build --release --target $(TARGET) -p kernel
	mkdir -p build
	cp $(PROFILE_DIR)/kernel $(KERNEL_ELF)

# The C example kernel that follows the chapter (examples/chapter-c): clang and lld.
c-kernel: setup
	$(MAKE) -C examples/chapter-c OUT=$(CURDIR)/$(C_KERNEL_ELF) OBJDIR=$(CURDIR)/build/chapter-c

qemu: setup
	$(RUN_QEMU) $(QEMU_FLAGS)

qemu-gdb: setup
	$(RUN_QEMU) $(QEMU_FLAGS) -S

# gdb with the project's .gdbinit (alloc-dump, alloc-pid N), loaded with -x: auto-load of
# ./.gdbinit is switched off so it is neither refused with a warning nor loaded twice.
# Through the inspector when it serves gdb on SERVE_PORT (make run's TUI does), else straight
# to QEMU. Whether the port listens is read from /proc/net/tcp: a probing connection would
# attach (and halt the guest).
SERVE_PORT  ?= $(shell echo $$(($(GDB_PORT) + 1)))
gdb: setup
	@port=$(GDB_PORT); \
	if awk -v p="$$(printf ':%04X' $(SERVE_PORT))" '$$4 == "0A" && substr($$2, length($$2) - 4) == p { f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null; then \
		port=$(SERVE_PORT); echo "make gdb: through the inspector on port $$port"; \
	else echo "make gdb: straight to QEMU on port $$port (no inspector serving on $(SERVE_PORT))"; fi; \
	$(GDB) -iex 'set auto-load local-gdbinit off' -x .gdbinit $(KERNEL) \
		-ex "target remote 127.0.0.1:$$port"

# ---- inspector, tests, the main job ----
INSPECTOR := target/release/inspector
# QEMU end-to-end tests run in parallel, each QEMU on its own port; keep it to the 2 cores.
TEST_THREADS ?= 2

.PHONY: inspector run inspect test bench lint stress fuzz dump

inspector: setup
	$(CARGO) build --release -p inspector

# The main job: QEMU's console (left) and the live TUI (right) side by side in tmux.
run: $(KERNEL_BUILD) inspector
	LEAKSCOPE_KERNEL_ELF='$(KERNEL)' GDB_PORT=$(GDB_PORT) SERVE_PORT='$(SERVE_PORT)' RAM_FILE='$(RAM_FILE)' RAM_SIZE=$(RAM_SIZE) SMP=$(SMP) bash scripts/run.sh

# The TUI, attached to a QEMU started with `make qemu` in another terminal: through its RAM
# file when there is one (and the inspector takes `--ram`), and its gdbstub.
inspect: inspector
	LEAKSCOPE_KERNEL_ELF='$(KERNEL)' GDB_PORT=$(GDB_PORT) SERVE_PORT='$(SERVE_PORT)' RAM_FILE='$(RAM_FILE)' bash scripts/inspect.sh

# The running guest's memory (make qemu or make run) as a QEMU ELF dump, for
# `inspector snapshot --core` / `tui --core`: DUMP=FILE to choose where (default build/guest.core).
DUMP ?= build/guest.core
dump:
	GDB_PORT=$(GDB_PORT) DUMP='$(DUMP)' GDB=$(GDB) bash scripts/dump.sh

# Every test: host unit tests, fixture tests, and the QEMU end-to-end tests (ignored by a
# plain `cargo test` because they need build/kernel.elf, build/chapter-c.elf and QEMU).
test: kernel c-kernel inspector
	LEAKSCOPE_SMP=$(SMP) $(CARGO) test --workspace --exclude kernel --exclude user -- --include-ignored --test-threads=$(TEST_THREADS)

bench: kernel inspector
	$(CARGO) bench -p tracker
	$(CARGO) bench -p inspector

# Deterministic fuzzing on stable Rust (not part of CI): FUZZ_ITERS inputs per fuzz test, in
# release. Each test prints how many inputs it ran (`fuzz_rsp: N inputs, ...`); the RSP client
# over loopback gets its own smaller share (see inspector/tests/fuzz_rsp.rs).
FUZZ_ITERS ?= 10000000
FUZZ_TESTS := --test fuzz_rsp --test fuzz_elf
fuzz:
	$(CARGO) test --release -p inspector $(FUZZ_TESTS) --no-run
	LEAKSCOPE_FUZZ_ITERS=$(FUZZ_ITERS) $(CARGO) test --release -p inspector $(FUZZ_TESTS) \
		-- --nocapture

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --exclude kernel --exclude user --all-targets -- -D warnings
	LEAKSCOPE_USER_DIR=$(CURDIR)/$(PROFILE_DIR) $(CARGO) clippy --release --target $(TARGET) -p kernel -p user -- -D warnings

# 10,000 process exits in QEMU, then the free-page count must be exactly what it was (not in CI:
# about a minute; `make test` runs the same test with 300 exits).
STRESS_EXITS ?= 10000

stress: kernel
	LEAKSCOPE_STRESS_EXITS=$(STRESS_EXITS) timeout 1800 $(CARGO) test -p inspector --test kernel_stress -- --include-ignored --nocapture
