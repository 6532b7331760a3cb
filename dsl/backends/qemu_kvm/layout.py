"""Where the guest program puts things in guest memory, and the bytes of the tables it builds.

Guest-physical equals linear (identity paging). The regions below are apart from each other by more than KVM's
shadow-MMU prefetch window (8 PTEs = 32 KiB), so a page left cold is not mapped as a side effect of warming a
neighbour. Scenario code must stay below `RESERVED_START`.
"""

from __future__ import annotations

import struct

from dsl.engine.vocab import VECTORS_WITH_ERROR_CODE, GateType

#: Guest memory size; must match MEM_SIZE in tools/qemu-kvm/guest/svmrun.c.
GUEST_MEMORY = 0x400000
PAGE = 0x1000
#: Scenario code, data and everything else the scenario names must lie below this address.
RESERVED_START = 0x40000
#: One handler per vector: HLT (the guest program records the frame), then the return to the interrupted code.
HANDLER_BASE = 0x40000
HANDLER_STRIDE = 0x10
#: The warm-up routine: touches every page that must be mapped before the scenario starts.
WARM_CODE = 0x48000
GDT_BASE = 0x50000
PAGE_DIRECTORY = 0x51000  # protected32: the page directory; long64: the PML4
PAGE_TABLE = 0x52000  # the page table of the first 2 MiB (long64) or 4 MiB (protected32)
PAGE_TABLE_HIGH = 0x53000  # long64: the page table of the second 2 MiB
PDPT = 0x54000
LONG_PAGE_DIRECTORY = 0x55000
#: long64 page-table entries map 2 MiB per table (512 entries of 8 bytes).
LONG_TABLE_SPAN = 0x200000
IDT_BASE = 0x60000
STACK_TOP = 0x80000
STACK_PAGE = STACK_TOP - PAGE
#: Real mode reaches the stack as SS:SP with SS.base = REAL_STACK_BASE.
REAL_STACK_BASE = 0x78000
REAL_PARAGRAPH = 16
VECTORS = 256
#: The architecture pushes an error code for these exception vectors; INT n never does.
ERROR_CODE_VECTORS: tuple[int, ...] = VECTORS_WITH_ERROR_CODE

HLT = b"\xf4"
IRET = b"\xcf"
IRETQ = b"\x48\xcf"
#: add rsp, 8
DROP_ERROR_CODE_64 = b"\x48\x83\xc4\x08"
#: add esp, 4: drop the error code before IRET.
DROP_ERROR_CODE = b"\x83\xc4\x04"
#: mov al, [moffs32] / mov [moffs32], al (in real mode with an address-size prefix).
LOAD_AL = b"\xa0"
STORE_AL = b"\xa2"
ADDRESS_SIZE_PREFIX = b"\x67"

# GDT selectors (protected mode): the scenario's CS (its own base), flat data, flat code for handlers.
SCENARIO_CS = 0x08
FLAT_DS = 0x10
FLAT_CS = 0x18
#: Descriptor attribute bytes: present, DPL 0, code execute/read accessed (0x9B) or data read/write accessed (0x93).
CODE_ACCESS = 0x9B
DATA_ACCESS = 0x93
#: Flags nibble: 4 KiB granularity with 32-bit default size, or with the long-mode (64-bit code) bit.
FLAGS_G_DB = 0xC
FLAGS_G_L = 0xA
#: IDT gate types (32-bit interrupt / trap gate) and the present bit.
GATE_TYPE_BITS = {GateType.INTERRUPT: 0xE, GateType.TRAP: 0xF}
GATE_PRESENT = 0x80
GATE_DPL_SHIFT = 5
#: Page-table entry bits: present, writable, user.
PTE_PRESENT_RW_USER = 0x7


def handler_address(vector: int) -> int:
    return HANDLER_BASE + vector * HANDLER_STRIDE


def handler_bytes(vector: int, *, real_mode: bool, long_mode: bool = False) -> bytes:
    """HLT, then return to the interrupted code (dropping the error code in protected and long mode)."""
    has_error_code = not real_mode and vector in ERROR_CODE_VECTORS
    if long_mode:
        return HLT + (DROP_ERROR_CODE_64 if has_error_code else b"") + IRETQ
    return HLT + (DROP_ERROR_CODE if has_error_code else b"") + IRET


def real_mode_ivt() -> bytes:
    """The real-mode IVT: vector v at segment HANDLER_BASE/16, offset v*16."""
    segment = HANDLER_BASE // REAL_PARAGRAPH
    return b"".join(struct.pack("<HH", vector * HANDLER_STRIDE, segment) for vector in range(VECTORS))


def descriptor(base: int, limit_pages: int, access: int, flags: int = FLAGS_G_DB) -> bytes:
    """A code/data segment descriptor with 4-KiB granularity and 32-bit default size (or `flags`)."""
    return struct.pack(
        "<HHBBBB",
        limit_pages & 0xFFFF,
        base & 0xFFFF,
        (base >> 16) & 0xFF,
        access,
        (flags << 4) | ((limit_pages >> 16) & 0xF),
        (base >> 24) & 0xFF,
    )


def protected_gdt(cs_base: int, *, long_mode: bool = False) -> bytes:
    full = 0xFFFFF  # limit in pages: 4 GiB
    code_flags = FLAGS_G_L if long_mode else FLAGS_G_DB
    return (
        bytes(8)
        + descriptor(cs_base, full, CODE_ACCESS, code_flags)
        + descriptor(0, full, DATA_ACCESS)
        + descriptor(0, full, CODE_ACCESS, code_flags)
    )


def idt_gate(offset: int, *, present: bool, dpl: int, gate_type: GateType) -> bytes:
    attributes = (GATE_PRESENT if present else 0) | (dpl << GATE_DPL_SHIFT) | GATE_TYPE_BITS[gate_type]
    return struct.pack("<HHBBH", offset & 0xFFFF, FLAT_CS, 0, attributes, offset >> 16)


def long_idt_gate(offset: int, *, present: bool, dpl: int, gate_type: GateType) -> bytes:
    """A 16-byte long-mode gate (IST 0)."""
    attributes = (GATE_PRESENT if present else 0) | (dpl << GATE_DPL_SHIFT) | GATE_TYPE_BITS[gate_type]
    return struct.pack("<HHBBHII", offset & 0xFFFF, FLAT_CS, 0, attributes, (offset >> 16) & 0xFFFF, offset >> 32, 0)


def long_page_tables() -> dict[int, bytes]:
    """PML4 → PDPT → PD → two page tables identity-mapping GUEST_MEMORY with 4-KiB pages."""
    entries = [page * PAGE | PTE_PRESENT_RW_USER for page in range(GUEST_MEMORY // PAGE)]
    per_table = LONG_TABLE_SPAN // PAGE
    return {
        PAGE_DIRECTORY: struct.pack("<Q", PDPT | PTE_PRESENT_RW_USER),
        PDPT: struct.pack("<Q", LONG_PAGE_DIRECTORY | PTE_PRESENT_RW_USER),
        LONG_PAGE_DIRECTORY: struct.pack(
            "<QQ", PAGE_TABLE | PTE_PRESENT_RW_USER, PAGE_TABLE_HIGH | PTE_PRESENT_RW_USER
        ),
        PAGE_TABLE: struct.pack(f"<{per_table}Q", *entries[:per_table]),
        PAGE_TABLE_HIGH: struct.pack(f"<{per_table}Q", *entries[per_table:]),
    }


def identity_page_table(not_present: tuple[int, ...]) -> tuple[bytes, bytes]:
    """A page directory with one page table identity-mapping GUEST_MEMORY; `not_present` pages left out."""
    missing = {address // PAGE for address in not_present}
    entries = [0 if page in missing else page * PAGE | PTE_PRESENT_RW_USER for page in range(GUEST_MEMORY // PAGE)]
    directory = struct.pack("<I", PAGE_TABLE | PTE_PRESENT_RW_USER)
    return directory, struct.pack(f"<{len(entries)}I", *entries)


def warm_routine(reads: tuple[int, ...], writes: tuple[int, ...], *, real_mode: bool, long_mode: bool = False) -> bytes:
    """Touch each page: read one byte, or read it and write it back unchanged; then HLT."""
    prefix = ADDRESS_SIZE_PREFIX if real_mode else b""
    width = "<Q" if long_mode else "<I"  # moffs is 64 bits wide in 64-bit mode
    code = b""
    for address in reads:
        code += prefix + LOAD_AL + struct.pack(width, address)
    for address in writes:
        moffs = struct.pack(width, address)
        code += prefix + LOAD_AL + moffs + prefix + STORE_AL + moffs
    return code + HLT
