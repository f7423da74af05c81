"""Leakscope gdb helpers: `alloc-dump` and `alloc-pid N` print the kernel's page tracker table.

Loaded by the project's .gdbinit (`make gdb` passes it with -x). Nothing here hard-codes an
offset or a size: the table's layout comes from the ELF's DWARF through gdb's types, and the
Rust wrappers around the statics (TrackerCell<T> -> UnsafeCell<T> -> T) are seen through.

The statics are `#[no_mangle]` but namespaced in DWARF (kernel::mm::tracker::alloc_table):
they are looked up in the namespace of the tracker's exported functions and checked against
their ELF symbol's address.
"""

import gdb

TABLE = "alloc_table"
HEADER = "alloc_tracker"
# Functions defined next to the tracker statics: their compile units hold the statics' DWARF.
ANCHORS = ("track_alloc", "free_all_tracked_for_pid", "dump_allocs")


def _msym_address(name):
    """Address of the ELF symbol `name`, or None. Evaluated in C syntax whatever the current
    frame's language (Rust frames do not parse C casts)."""
    language = gdb.parameter("language")
    gdb.execute("set language c", to_string=True)
    try:
        return int(gdb.parse_and_eval("(unsigned long)&'%s'" % name))
    except gdb.error:
        return None
    finally:
        gdb.execute("set language %s" % language, to_string=True)


def find_static(name):
    """The gdb.Symbol of the static whose ELF symbol is `name` (namespaced or not): the plain
    name, else the name in the namespace of the tracker's exported functions (which DWARF
    gives, e.g. kernel::mm::tracker::track_alloc -> kernel::mm::tracker::alloc_table)."""
    sym = gdb.lookup_global_symbol(name)
    if sym is not None:
        return sym
    addr = _msym_address(name)
    for anchor in ANCHORS:
        pc = _msym_address(anchor)
        if pc is None:
            continue
        try:
            func = gdb.block_for_pc(pc).function
        except RuntimeError:
            func = None
        if func is None or "::" not in func.name:
            continue
        namespace = func.name.rsplit("::", 1)[0]
        sym = gdb.lookup_global_symbol(namespace + "::" + name) or gdb.lookup_static_symbol(
            namespace + "::" + name
        )
        if sym is None:
            continue
        if addr is None or int(sym.value().address) == addr:
            return sym
    raise gdb.GdbError(
        "no debug info for %s: is build/kernel.elf loaded (make gdb) and built with DWARF?" % name
    )


def unwrap_type(t):
    """See through typedefs and single-field wrapper structs; returns (type, byte offset)."""
    offset = 0
    t = t.strip_typedefs()
    while t.code in (gdb.TYPE_CODE_STRUCT, gdb.TYPE_CODE_UNION) and len(t.fields()) == 1:
        f = t.fields()[0]
        offset += f.bitpos // 8
        t = f.type.strip_typedefs()
    return t, offset


def field_map(t):
    """name -> (byte offset, gdb.Type) for the fields of struct type `t`."""
    return {f.name: (f.bitpos // 8, f.type.strip_typedefs()) for f in t.fields() if f.name}


def read_uint(mem, off, size):
    return int.from_bytes(bytes(mem[off : off + size]), "little")


class PhysicalMemory:
    """Switches QEMU's gdbstub to physical addresses while reading (the kernel identity-maps
    RAM, so kernel addresses are physical ones); harmless on other stubs."""

    def __enter__(self):
        self.on = False
        try:
            gdb.execute("maintenance packet Qqemu.PhyMemMode:1", to_string=True)
            self.on = True
        except gdb.error:
            pass
        return self

    def __exit__(self, *exc):
        if self.on:
            try:
                gdb.execute("maintenance packet Qqemu.PhyMemMode:0", to_string=True)
            except gdb.error:
                pass
        return False


def read_entries():
    """[(slot, pa, npages, owner, tag)] of the used slots of alloc_table."""
    inferior = gdb.selected_inferior()
    sym = find_static(TABLE)
    array_t, inner = unwrap_type(sym.type)
    if array_t.code != gdb.TYPE_CODE_ARRAY:
        raise gdb.GdbError("%s is not an array after unwrapping (%s)" % (TABLE, array_t))
    entry_t = array_t.target().strip_typedefs()
    esize = entry_t.sizeof
    count = array_t.sizeof // esize
    fields = field_map(entry_t)
    for need in ("used", "pa", "npages", "owner", "tag"):
        if need not in fields:
            raise gdb.GdbError("%s entries have no field %s" % (TABLE, need))
    tag_t, tag_inner = unwrap_type(fields["tag"][1])
    tag_fields = field_map(tag_t)
    base = int(sym.value().address) + inner
    with PhysicalMemory():
        # Only slots below the header's high-water mark have ever been used.
        try:
            hsym = find_static(HEADER)
            h_t, h_inner = unwrap_type(hsym.type)
            hf = field_map(h_t)
            if "high_water" in hf:
                off, ft = hf["high_water"]
                hbytes = inferior.read_memory(int(hsym.value().address) + h_inner + off, ft.sizeof)
                count = min(count, read_uint(hbytes, 0, ft.sizeof))
        except gdb.GdbError:
            pass
        mem = inferior.read_memory(base, count * esize) if count else b""
        out = []
        for slot in range(count):
            rec = slot * esize

            def get(name):
                off, ft = fields[name]
                return read_uint(mem, rec + off, ft.sizeof)

            if get("used") == 0:
                continue
            toff = rec + fields["tag"][0] + tag_inner
            ptr_off, ptr_t = tag_fields["data_ptr"]
            len_off, len_t = tag_fields["length"]
            ptr = read_uint(mem, toff + ptr_off, ptr_t.sizeof)
            length = read_uint(mem, toff + len_off, len_t.sizeof)
            tag = ""
            if ptr and length:
                tag = bytes(inferior.read_memory(ptr, min(length, 256))).decode("utf-8", "replace")
            out.append((slot, get("pa"), get("npages"), get("owner"), tag))
    return out


def print_entries(entries, title):
    gdb.write("== %s: %d used ==\n" % (title, len(entries)))
    for slot, pa, npages, owner, tag in entries:
        gdb.write("slot=%d pa=%#x npages=%d owner=%d tag=%s\n" % (slot, pa, npages, owner, tag))


class AllocDump(gdb.Command):
    """alloc-dump: every used entry of the kernel's alloc_table (slot, pa, npages, owner, tag)."""

    def __init__(self):
        super().__init__("alloc-dump", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        print_entries(read_entries(), TABLE)


class AllocPid(gdb.Command):
    """alloc-pid N: the used entries of alloc_table owned by process N."""

    def __init__(self):
        super().__init__("alloc-pid", gdb.COMMAND_DATA)

    def invoke(self, arg, from_tty):
        try:
            pid = int(gdb.parse_and_eval(arg)) if arg.strip() else None
        except gdb.error:
            pid = None
        if pid is None:
            raise gdb.GdbError("usage: alloc-pid N")
        print_entries([e for e in read_entries() if e[3] == pid], "%s owner=%d" % (TABLE, pid))


AllocDump()
AllocPid()
