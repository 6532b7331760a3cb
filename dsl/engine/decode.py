"""Instruction decoding with iced-x86: what the CPU executes and what KVM's emulator sees in skip mode.

The two differ on purpose: the CPU enforces validity per mode (INTO is #UD in 64-bit mode, LOCK INT3 is #UD,
more than 15 bytes is #GP, H-23, H-27, H-28), while KVM's decoder only finds the length and the final opcode byte
(K-5.19-7, K-6.19-3): `CE` decodes in 64-bit mode too (K-6.19-7). Results are cached per byte string and mode.
"""

from __future__ import annotations

import functools

import attrs
import iced_x86
from iced_x86 import Code, FlowControl, Mnemonic, OpKind, Register

from dsl.engine.vocab import IdentityEnum

#: An instruction is at most 15 bytes long (H-27).
MAX_INSN_LENGTH = 15
#: Legacy prefixes (H-26): segment overrides, operand/address size, LOCK, REP.
LEGACY_PREFIXES: tuple[int, ...] = (0x26, 0x2E, 0x36, 0x3E, 0x64, 0x65, 0x66, 0x67, 0xF0, 0xF2, 0xF3)
LOCK_PREFIX = 0xF0
#: REX prefixes exist only in 64-bit mode (elsewhere 40-4F are INC/DEC).
REX_FIRST, REX_LAST = 0x40, 0x4F
TWO_BYTE_ESCAPE = 0x0F
THREE_BYTE_ESCAPES: tuple[int, ...] = (0x38, 0x3A)
OPCODE_INT3 = 0xCC
OPCODE_INT_N = 0xCD
OPCODE_INTO = 0xCE
LONG_MODE_BITS = 64


class InsnKind(IdentityEnum):
    """What an instruction means to the model."""

    INT3 = "int3"
    INTO = "into"
    INT_N = "int n"
    ICEBP = "icebp"
    BOUND = "bound"
    UD = "ud"  # an architecturally undefined instruction (#UD)
    TOO_LONG = "too long"  # more than 15 bytes (#GP(0), H-27)
    HLT = "hlt"
    CPUID = "cpuid"
    IO = "io"
    MSR = "msr"
    VMMCALL = "vmmcall"
    STI = "sti"
    MOV_SS = "mov ss"
    JUMP = "jump"
    CALL = "call"
    OTHER = "other"


@attrs.frozen
class Insn:
    """One decoded instruction."""

    kind: InsnKind
    length: int
    text: str  # iced's formatting, for traces
    encoding: str  # its bytes in hex (`cd 80`), for traces
    imm8: int = 0  # INT n's vector
    branch_target: int | None = None  # taken target of JMP / CALL near


@attrs.frozen
class KvmDecode:
    """What KVM's emulator learns in skip mode: the length and the final opcode byte with its imm8 (K-6.19-3)."""

    length: int
    final_opcode: int
    imm8: int | None  # INT n's immediate as a byte; None when the instruction has none
    text: str
    prefixed: bool = False  # legacy or REX prefixes precede the opcode
    escaped: bool = False  # the final opcode byte follows a 0F escape


_KIND_BY_CODE: dict[int, InsnKind] = {
    Code.INT3: InsnKind.INT3,
    Code.INTO: InsnKind.INTO,
    Code.INT_IMM8: InsnKind.INT_N,
    Code.INT1: InsnKind.ICEBP,
    Code.BOUND_R16_M1616: InsnKind.BOUND,
    Code.BOUND_R32_M3232: InsnKind.BOUND,
    Code.UD2: InsnKind.UD,
    Code.UD0: InsnKind.UD,
    Code.UD1_R16_RM16: InsnKind.UD,
    Code.UD1_R32_RM32: InsnKind.UD,
    Code.UD1_R64_RM64: InsnKind.UD,
    Code.HLT: InsnKind.HLT,
    Code.CPUID: InsnKind.CPUID,
    Code.VMMCALL: InsnKind.VMMCALL,
    Code.STI: InsnKind.STI,
    Code.RDMSR: InsnKind.MSR,
    Code.WRMSR: InsnKind.MSR,
    Code.POPW_SS: InsnKind.MOV_SS,
    Code.POPD_SS: InsnKind.MOV_SS,
}
_IO_MNEMONICS: tuple[int, ...] = (
    Mnemonic.IN,
    Mnemonic.OUT,
    Mnemonic.INSB,
    Mnemonic.INSW,
    Mnemonic.INSD,
    Mnemonic.OUTSB,
    Mnemonic.OUTSW,
    Mnemonic.OUTSD,
)
_FORMATTER = iced_x86.Formatter(iced_x86.FormatterSyntax.INTEL)


def _kind(insn: iced_x86.Instruction) -> InsnKind:
    kind = _KIND_BY_CODE.get(insn.code)
    if kind is not None:
        return kind
    if insn.mnemonic in _IO_MNEMONICS:
        return InsnKind.IO
    if insn.mnemonic == Mnemonic.MOV and insn.op0_kind == OpKind.REGISTER and insn.op0_register == Register.SS:
        return InsnKind.MOV_SS
    if insn.flow_control == FlowControl.UNCONDITIONAL_BRANCH and insn.op0_kind in _NEAR_BRANCH_KINDS:
        return InsnKind.JUMP
    if insn.flow_control == FlowControl.CALL and insn.op0_kind in _NEAR_BRANCH_KINDS:
        return InsnKind.CALL
    return InsnKind.OTHER


_NEAR_BRANCH_KINDS: tuple[int, ...] = (OpKind.NEAR_BRANCH16, OpKind.NEAR_BRANCH32, OpKind.NEAR_BRANCH64)


def cpu_decode(code: bytes, bitness: int, ip: int) -> Insn:
    """Decode as the CPU executes: invalid encodings are #UD, over-long ones #GP (H-27, H-28, H-23).

    Most instructions decode the same at any address: those are cached by bytes and mode alone, so scenarios that
    place the same code at different addresses share the decode. Branches and RIP-relative operands (their target
    and text name an absolute address) are decoded again at `ip`.
    """
    insn, ip_relative = _decode_anywhere(code, bitness)
    return _decode_at(code, bitness, ip) if ip_relative else insn


@functools.lru_cache(maxsize=4096)
def _decode_anywhere(code: bytes, bitness: int) -> tuple[Insn, bool]:
    """The instruction decoded at address 0, and whether it refers to its own address."""
    return _decode(code, bitness, 0)


@functools.lru_cache(maxsize=4096)
def _decode_at(code: bytes, bitness: int, ip: int) -> Insn:
    return _decode(code, bitness, ip)[0]


def _decode(code: bytes, bitness: int, ip: int) -> tuple[Insn, bool]:
    """The instruction decoded at `ip`, and whether it refers to its own address (a near branch's target or a
    RIP-relative memory operand, both shown as absolute addresses)."""
    decoder = iced_x86.Decoder(bitness, code, ip=ip)
    insn = decoder.decode()
    if insn.is_invalid:
        if _too_long(code, bitness):
            too_long = Insn(InsnKind.TOO_LONG, MAX_INSN_LENGTH, "(longer than 15 bytes)", _hex(code, MAX_INSN_LENGTH))
            return too_long, False
        return Insn(InsnKind.UD, insn.len, "(invalid)", _hex(code, insn.len)), False
    kind = _kind(insn)
    target = insn.near_branch_target if kind in (InsnKind.JUMP, InsnKind.CALL) else None
    imm8 = insn.immediate8 if kind is InsnKind.INT_N else 0
    ip_relative = insn.is_ip_rel_memory_operand or any(
        insn.op_kind(operand) in _NEAR_BRANCH_KINDS for operand in range(insn.op_count)
    )
    return Insn(kind, insn.len, _FORMATTER.format(insn), _hex(code, insn.len), imm8, target), ip_relative


def _hex(code: bytes, length: int) -> str:
    return code[:length].hex(" ")


def _too_long(code: bytes, bitness: int) -> bool:
    """Redundant prefixes pushed a valid instruction past 15 bytes (H-27)."""
    prefixes = _prefix_count(code, bitness)
    if prefixes == 0:
        return False
    shorter = iced_x86.Decoder(bitness, code[prefixes - 1 :]).decode()
    return not shorter.is_invalid and prefixes - 1 + shorter.len > MAX_INSN_LENGTH


def _prefix_count(code: bytes, bitness: int) -> int:
    count = 0
    for byte in code:
        if byte in LEGACY_PREFIXES or (bitness == LONG_MODE_BITS and REX_FIRST <= byte <= REX_LAST):
            count += 1
        else:
            break
    return count


@functools.lru_cache(maxsize=4096)
def kvm_decode(code: bytes, bitness: int) -> KvmDecode | None:
    """Decode as KVM's emulator does for EMULTYPE_SKIP; None when it does not know the bytes (K-5.19-7 step e).

    The final opcode byte is the byte after all legacy prefixes and (64-bit) REX, after `0F` (and `0F 38`/`0F 3A`)
    escapes (K-6.19-3). `CE` in 64-bit mode and LOCK on INT3/INT n/INTO decode: validity is checked at execution.
    """
    prefixes = _prefix_count(code, bitness)
    if prefixes >= MAX_INSN_LENGTH or prefixes >= len(code):
        return None
    opcode_at = prefixes
    if code[opcode_at] == TWO_BYTE_ESCAPE and opcode_at + 1 < len(code):
        opcode_at += 1
        if code[opcode_at] in THREE_BYTE_ESCAPES and opcode_at + 1 < len(code):
            opcode_at += 1
    final = code[opcode_at]
    legacy_one_byte = opcode_at == prefixes and final in (OPCODE_INT3, OPCODE_INT_N, OPCODE_INTO)
    if legacy_one_byte:
        # The emulator's decode table knows these in every mode; only their execution checks mode and LOCK.
        has_imm = final == OPCODE_INT_N
        length = prefixes + (2 if has_imm else 1)
        if length > min(len(code), MAX_INSN_LENGTH):
            return None
        imm8 = code[prefixes + 1] if has_imm else None
        return KvmDecode(length, final, imm8, code[:length].hex(" "), prefixed=prefixes > 0)
    insn = iced_x86.Decoder(bitness, code).decode()
    if insn.is_invalid:
        return None
    # An escaped `0F CD` has no immediate: the emulator compares the vector with 0 (K-6.19-7).
    imm8 = 0 if final == OPCODE_INT_N else None
    return KvmDecode(
        insn.len, final, imm8, _FORMATTER.format(insn), prefixed=prefixes > 0, escaped=opcode_at > prefixes
    )
