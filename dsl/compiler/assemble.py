"""Instruction → bytes for the closed instruction vocabulary of the scenarios (a small explicit table).

Only what the specification's examples and the selftest need: the soft-event instructions (INT3, INTO, INT n,
ICEBP, BOUND), the intercepted ones (OUT, IN, CPUID, HLT, VMMCALL …), and the neighbours the code-modification
examples write (NOP, UD2, MOV, JMP, CALL, BSWAP, STI, MOV SS …). Anything else is written as `bytes …`.
Prefix words are emitted first, verbatim and in order (so `rex.w mov rax, rcx` is 48 48 89 c8).
Encodings: AMD APM vol. 3; the tests decode every form with iced-x86 to check it.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

from dsl.engine.vocab import CpuMode
from dsl.errors import Loc
from dsl.syntax import ast, vocabulary
from dsl.syntax.instructions import prefix_byte

OPERAND_SIZE_PREFIX = 0x66
ADDRESS_SIZE_PREFIX = 0x67
REX_W = 0x48
REX_BASE = 0x40
MODRM_REGISTER = 0b11
BYTE_MAX = 0xFF

# Opcodes (APM vol. 3 appendix A), "+r" forms add the register number's low three bits.
TWO_BYTE_ESCAPE = 0x0F
INT_IMM8 = 0xCD
IN_AL_IMM8 = 0xE4  # +1: AX/EAX; +8: port in DX
OUT_IMM8_AL = 0xE6  # +1: AX/EAX; +8: port in DX
IO_WIDE = 1
IO_DX_PORT = 8
MOV_RM8_R8 = 0x88
MOV_RM_R = 0x89
MOV_SREG_RM = 0x8E
MOV_R8_IMM = 0xB0  # +r
MOV_R_IMM = 0xB8  # +r
PUSH_R = 0x50  # +r
POP_R = 0x58  # +r
BSWAP_R = 0xC8  # 0F C8+r
JMP_REL8 = 0xEB
JMP_REL = 0xE9
CALL_REL = 0xE8
BOUND = 0x62
#: Instruction lengths of the relative branches: opcode + rel8 / rel16 / rel32.
SHORT_BRANCH_LENGTH = 2
NEAR_BRANCH_LENGTH_16 = 3
NEAR_BRANCH_LENGTH_32 = 5
REL8_MIN, REL8_MAX = -128, 127
MASK_16 = 0xFFFF
MASK_32 = 0xFFFF_FFFF
LOW_THREE_BITS = 7

#: Instructions without operands.
NO_OPERANDS: dict[str, bytes] = {
    "int3": b"\xcc",
    "into": b"\xce",
    "icebp": b"\xf1",
    "int1": b"\xf1",
    "nop": b"\x90",
    "ud2": b"\x0f\x0b",
    "hlt": b"\xf4",
    "sti": b"\xfb",
    "cli": b"\xfa",
    "clc": b"\xf8",
    "stc": b"\xf9",
    "cpuid": b"\x0f\xa2",
    "rdtsc": b"\x0f\x31",
    "pause": b"\xf3\x90",
    "vmmcall": b"\x0f\x01\xd9",
    "vmrun": b"\x0f\x01\xd8",
    "vmload": b"\x0f\x01\xda",
    "vmsave": b"\x0f\x01\xdb",
    "stgi": b"\x0f\x01\xdc",
    "clgi": b"\x0f\x01\xdd",
    "iret": b"\xcf",
    "iretd": b"\xcf",
    "iretq": b"\x48\xcf",
    "ret": b"\xc3",
    "leave": b"\xc9",
    "pushf": b"\x9c",
    "popf": b"\x9d",
}

#: Every mnemonic the assembler knows ("did you mean" candidates): the language's list, which this table covers.
MNEMONICS: tuple[str, ...] = vocabulary.MNEMONICS

#: General registers: name → (number, size in bits).
REGISTERS: dict[str, tuple[int, int]] = {}
for _size, _names in (
    (8, ("al", "cl", "dl", "bl", "ah", "ch", "dh", "bh")),
    (16, ("ax", "cx", "dx", "bx", "sp", "bp", "si", "di")),
    (32, ("eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi")),
    (64, ("rax", "rcx", "rdx", "rbx", "rsp", "rbp", "rsi", "rdi")),
):
    for _number, _name in enumerate(_names):
        REGISTERS[_name] = (_number, _size)
for _number in range(8, 16):
    REGISTERS[f"r{_number}"] = (_number, 64)
    REGISTERS[f"r{_number}d"] = (_number, 32)
    REGISTERS[f"r{_number}w"] = (_number, 16)

SEGMENT_REGISTERS = ("es", "cs", "ss", "ds", "fs", "gs")
#: PUSH/POP of a segment register (one-byte forms; fs/gs use 0F xx).
PUSH_SEGMENT = {"es": b"\x06", "cs": b"\x0e", "ss": b"\x16", "ds": b"\x1e", "fs": b"\x0f\xa0", "gs": b"\x0f\xa8"}
POP_SEGMENT = {"es": b"\x07", "ss": b"\x17", "ds": b"\x1f", "fs": b"\x0f\xa1", "gs": b"\x0f\xa9"}


class AssembleError(Exception):
    """An instruction the table cannot encode: `message` says why, `expected` what would work."""

    def __init__(self, loc: Loc, message: str, expected: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.expected = expected


def assemble(code: ast.Code, address: int, mode: CpuMode) -> bytes:
    """The bytes of `code` placed at `address` (branch targets are absolute) in `mode`."""
    if isinstance(code, ast.RawBytes):
        return code.data
    prefixes = bytes(prefix_byte(p.text) for p in code.prefixes)
    body = _encode(code, address + len(prefixes), mode)
    return prefixes + body


def _encode(insn: ast.Instruction, address: int, mode: CpuMode) -> bytes:
    mnemonic = insn.mnemonic.text
    if mnemonic in NO_OPERANDS:
        if insn.operands:
            raise _shape(insn, "takes no operands")
        return NO_OPERANDS[mnemonic]
    if mnemonic not in WITH_OPERANDS:
        raise AssembleError(
            insn.mnemonic.loc, f"unknown mnemonic '{mnemonic}'", "a mnemonic such as int3, into, int 0x80"
        )
    return WITH_OPERANDS[mnemonic](insn, address, mode)


def _shape(insn: ast.Instruction, problem: str) -> AssembleError:
    forms = {
        "int": "int 0x80",
        "out": "out 0x80, al / out dx, eax",
        "in": "in al, 0x80 / in eax, dx",
        "mov": "mov rax, rcx / mov ss, ax / mov eax, 0x10",
        "push": "push rbp / push es",
        "pop": "pop rbp / pop ss",
        "bswap": "bswap esp",
        "jmp": "jmp short 0x1012 / jmp 0x2000",
        "call": "call 0x2000",
        "bound": "bound eax, [ebx]",
    }
    mnemonic = insn.mnemonic.text
    return AssembleError(insn.loc, f"'{mnemonic}' {problem}", forms.get(mnemonic, mnemonic))


def _register(operand: ast.Operand) -> tuple[int, int] | None:
    if isinstance(operand, ast.Register) and operand.name in REGISTERS:
        return REGISTERS[operand.name]
    return None


def _operand_size_prefix(size: int, mode: CpuMode) -> bytes:
    """0x66 when the register size differs from the mode's default operand size; REX.W for 64-bit registers."""
    if size == 64:
        return bytes([REX_W])
    if (size == 16) != (mode.bitness == 16) and size != 8:
        return bytes([OPERAND_SIZE_PREFIX])
    return b""


def _rex(w: bool, reg: int, rm: int) -> bytes:
    value = REX_BASE | (8 if w else 0) | (4 if reg >= 8 else 0) | (1 if rm >= 8 else 0)
    return bytes([value]) if value != REX_BASE else b""


def _modrm(mod: int, reg: int, rm: int) -> int:
    return (mod << 6) | ((reg & 7) << 3) | (rm & 7)


def _imm8(insn: ast.Instruction, operand: ast.Operand) -> int:
    if not isinstance(operand, ast.Immediate) or not 0 <= operand.value <= BYTE_MAX:
        raise _shape(insn, "needs an 8-bit immediate (0-0xff)")
    return operand.value


def _int(insn: ast.Instruction, address: int, mode: CpuMode) -> bytes:
    if len(insn.operands) != 1:
        raise _shape(insn, "takes one operand, the vector")
    return bytes([INT_IMM8, _imm8(insn, insn.operands[0])])


def _io(insn: ast.Instruction, port: ast.Operand, data: ast.Operand, mode: CpuMode, base: int) -> bytes:
    """IN/OUT: `base` is the imm8-port form with AL (E4/E6); +1 for AX/EAX; +8 for the DX-port forms."""
    register = _register(data)
    if register is None or register[0] != 0 or register[1] == 64:
        raise _shape(insn, "moves data through al, ax or eax")
    wide = 0 if register[1] == 8 else IO_WIDE
    prefix = _operand_size_prefix(register[1], mode) if wide else b""
    if isinstance(port, ast.Register) and port.name == "dx":
        return prefix + bytes([base + IO_DX_PORT + wide])
    return prefix + bytes([base + wide, _imm8(insn, port)])


def _out(insn: ast.Instruction, address: int, mode: CpuMode) -> bytes:
    if len(insn.operands) != 2:
        raise _shape(insn, "takes a port and a register")
    return _io(insn, insn.operands[0], insn.operands[1], mode, OUT_IMM8_AL)


def _in(insn: ast.Instruction, address: int, mode: CpuMode) -> bytes:
    if len(insn.operands) != 2:
        raise _shape(insn, "takes a register and a port")
    return _io(insn, insn.operands[1], insn.operands[0], mode, IN_AL_IMM8)


def _mov(insn: ast.Instruction, address: int, mode: CpuMode) -> bytes:
    if len(insn.operands) != 2:
        raise _shape(insn, "takes two operands")
    target, source = insn.operands
    if isinstance(target, ast.Register) and target.name in SEGMENT_REGISTERS:
        register = _register(source)
        if register is None or register[1] == 8:
            raise _shape(insn, "loads a segment register from a 16/32/64-bit register")
        number = SEGMENT_REGISTERS.index(target.name)
        return _rex(False, 0, register[0]) + bytes([MOV_SREG_RM, _modrm(MODRM_REGISTER, number, register[0])])
    destination = _register(target)
    if destination is None:
        raise _shape(insn, "needs a register destination")
    number, size = destination
    if isinstance(source, ast.Immediate):
        return _mov_immediate(insn, number, size, source.value, mode)
    register = _register(source)
    if register is None or register[1] != size:
        raise _shape(insn, "needs two registers of the same size")
    opcode = MOV_RM8_R8 if size == 8 else MOV_RM_R
    prefix = b"" if size in (8, 64) else _operand_size_prefix(size, mode)
    rex = _rex(size == 64, register[0], number)
    return prefix + rex + bytes([opcode, _modrm(MODRM_REGISTER, register[0], number)])


def _mov_immediate(insn: ast.Instruction, number: int, size: int, value: int, mode: CpuMode) -> bytes:
    formats = {8: "<B", 16: "<H", 32: "<I", 64: "<Q"}
    if not 0 <= value < 1 << size:
        raise _shape(insn, f"has an immediate that does not fit in {size} bits")
    opcode = (MOV_R8_IMM if size == 8 else MOV_R_IMM) + (number & LOW_THREE_BITS)
    prefix = b"" if size in (8, 64) else _operand_size_prefix(size, mode)
    return prefix + _rex(size == 64, 0, number) + bytes([opcode]) + struct.pack(formats[size], value)


def _push_pop(insn: ast.Instruction, address: int, mode: CpuMode) -> bytes:
    if len(insn.operands) != 1:
        raise _shape(insn, "takes one register")
    operand = insn.operands[0]
    table = PUSH_SEGMENT if insn.mnemonic.text == "push" else POP_SEGMENT
    if isinstance(operand, ast.Register) and operand.name in table:
        return table[operand.name]
    register = _register(operand)
    if register is None or register[1] == 8:
        raise _shape(insn, "takes a 16/32/64-bit register or a segment register")
    number, size = register
    base = PUSH_R if insn.mnemonic.text == "push" else POP_R
    prefix = _operand_size_prefix(size, mode) if size != 64 else b""
    return prefix + _rex(False, 0, number) + bytes([base + (number & LOW_THREE_BITS)])


def _bswap(insn: ast.Instruction, address: int, mode: CpuMode) -> bytes:
    register = _register(insn.operands[0]) if len(insn.operands) == 1 else None
    if register is None or register[1] not in (32, 64):
        raise _shape(insn, "takes one 32- or 64-bit register")
    number, size = register
    return _rex(size == 64, 0, number) + bytes([TWO_BYTE_ESCAPE, BSWAP_R + (number & LOW_THREE_BITS)])


def _branch(insn: ast.Instruction, address: int, mode: CpuMode) -> bytes:
    """JMP/CALL to an absolute target: rel8 for `short`, else rel16 (16-bit modes) or rel32."""
    if len(insn.operands) != 1 or not isinstance(insn.operands[0], ast.Immediate):
        raise _shape(insn, "takes a target address")
    target = insn.operands[0]
    if target.modifier == "short":
        if insn.mnemonic.text != "jmp":
            raise _shape(insn, "has no short form")
        displacement = target.value - (address + SHORT_BRANCH_LENGTH)
        if not REL8_MIN <= displacement <= REL8_MAX:
            raise _shape(insn, f"short target {target.value:#x} is out of reach of {address:#x} (±128 bytes)")
        return bytes([JMP_REL8, displacement & BYTE_MAX])
    opcode = JMP_REL if insn.mnemonic.text == "jmp" else CALL_REL
    if mode.bitness == 16:
        return bytes([opcode]) + struct.pack("<H", (target.value - (address + NEAR_BRANCH_LENGTH_16)) & MASK_16)
    return bytes([opcode]) + struct.pack("<I", (target.value - (address + NEAR_BRANCH_LENGTH_32)) & MASK_32)


def _bound(insn: ast.Instruction, address: int, mode: CpuMode) -> bytes:
    if len(insn.operands) != 2:
        raise _shape(insn, "takes a register and a memory operand")
    register = _register(insn.operands[0])
    memory = insn.operands[1]
    if register is None or register[1] not in (16, 32) or not isinstance(memory, ast.Memory):
        raise _shape(insn, "takes a 16/32-bit register and a memory operand")
    prefix = _operand_size_prefix(register[1], mode)
    return prefix + _memory_operand(insn, BOUND, register[0], memory, mode)


def _memory_operand(insn: ast.Instruction, opcode: int, reg: int, memory: ast.Memory, mode: CpuMode) -> bytes:
    """opcode + ModRM (+ SIB) (+ displacement) for 32/64-bit addressing (0x67 in 16-bit modes)."""
    registers = [r for r in (memory.base, memory.index) if r is not None]
    sizes = {REGISTERS[r][1] for r in registers if r in REGISTERS}
    if len(sizes) > 1 or any(r not in REGISTERS or REGISTERS[r][1] not in (32, 64) for r in registers):
        raise _shape(insn, "addresses memory with 32- or 64-bit registers")
    prefix = bytes([ADDRESS_SIZE_PREFIX]) if mode.bitness == 16 or (mode.bitness == 64 and sizes == {32}) else b""
    base = REGISTERS[memory.base][0] if memory.base else None
    index = REGISTERS[memory.index][0] if memory.index else None
    scales = {1: 0, 2: 1, 4: 2, 8: 3}
    if memory.scale not in scales or index == 4:
        raise _shape(insn, "scales an index by 1, 2, 4 or 8 (and esp cannot be an index)")
    disp = memory.displacement
    if base is None:
        mod, disp_bytes = 0, struct.pack("<i", disp)
    elif disp == 0 and base & 7 != 5:
        mod, disp_bytes = 0, b""
    elif -128 <= disp <= 127:
        mod, disp_bytes = 1, struct.pack("<b", disp)
    else:
        mod, disp_bytes = 2, struct.pack("<i", disp)
    rex = _rex(False, reg, base or 0)
    if index is None and base is not None and base & 7 != 4:
        return prefix + rex + bytes([opcode, _modrm(mod, reg, base)]) + disp_bytes
    sib_base = 5 if base is None else base & 7
    sib_index = 4 if index is None else index & 7
    sib = (scales[memory.scale] << 6) | (sib_index << 3) | sib_base
    return prefix + rex + bytes([opcode, _modrm(mod, reg, 4), sib]) + disp_bytes


#: Instructions with operands, each handled by one of the functions above.
WITH_OPERANDS: dict[str, Callable[[ast.Instruction, int, CpuMode], bytes]] = {
    "int": _int,
    "out": _out,
    "in": _in,
    "mov": _mov,
    "push": _push_pop,
    "pop": _push_pop,
    "bswap": _bswap,
    "jmp": _branch,
    "call": _branch,
    "bound": _bound,
}
