# Leakscope build and run entry points. Other targets (test, run, inspect) are added below ours.

CARGO       ?= cargo
TARGET      := riscv64gc-unknown-none-elf
PROFILE_DIR := target/$(TARGET)/release
KERNEL_ELF  := build/kernel.elf
QEMU        ?= qemu-system-riscv64
GDB         ?= gdb-multiarch
GDB_PORT    ?= 1234
QEMU_FLAGS  := -machine virt -m 128M -bios default -nographic -kernel $(KERNEL_ELF) \
               -gdb tcp:127.0.0.1:$(GDB_PORT)

.PHONY: setup kernel user qemu qemu-gdb gdb

setup:
	bash scripts/setup.sh

# User programs first: the kernel's build.rs packs them from $(PROFILE_DIR).
user: setup
	$(CARGO) build --release --target $(TARGET) -p user

kernel: user
	LEAKSCOPE_USER_DIR=$(CURDIR)/$(PROFILE_DIR) $(CARGO) build --release --target $(TARGET) -p kernel
	mkdir -p build
	cp $(PROFILE_DIR)/kernel $(KERNEL_ELF)

qemu: setup
	$(QEMU) $(QEMU_FLAGS)

qemu-gdb: setup
	$(QEMU) $(QEMU_FLAGS) -S

gdb: setup
	$(GDB) $(KERNEL_ELF) -ex 'target remote 127.0.0.1:$(GDB_PORT)'
