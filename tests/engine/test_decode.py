"""The CPU's decoder: cached by bytes and mode, yet every instruction that names its own address is decoded where it
is (a near branch's target, a RIP-relative operand), so the same bytes at two addresses never share a wrong answer.
"""

from __future__ import annotations

import pytest

from dsl.engine import CodeBytes, Execute, Program, Setup, run
from dsl.engine.decode import MAX_INSN_LENGTH, InsnKind, cpu_decode
from dsl.engine.vocab import PolicyName

CALL_PLUS_0X10 = b"\xe8\x10\x00\x00\x00"
JMP_SHORT_PLUS_0X10 = b"\xeb\x10"
MOV_EAX_RIP_PLUS_0X10 = b"\x8b\x05\x10\x00\x00\x00"
LONG_MODE = 64


def _padded(code: bytes) -> bytes:
    """The bytes the CPU fetches: the instruction and what follows it in memory (zeros)."""
    return code + bytes(MAX_INSN_LENGTH + 1 - len(code))


@pytest.mark.parametrize("address", [0x1000, 0x2000, 0x7FFF_0000])
def test_ex27_a_call_lands_at_its_own_target_wherever_it_is(address: int) -> None:
    """EX-27 (the CALL the guest runs): `E8 10 00 00 00` continues 0x15 bytes further, at every address in turn."""
    program = Program(
        Setup(rip=address, code=(CodeBytes(address, CALL_PLUS_0X10),)), (Execute(),), policy=PolicyName.KVM_6_0
    )
    assert run(program).final_rip == address + 0x15


def test_a_near_branch_is_decoded_at_its_address() -> None:
    """The same `EB 10` at two addresses: each has its own target, and its trace text names that target."""
    first = cpu_decode(_padded(JMP_SHORT_PLUS_0X10), LONG_MODE, 0x1000)
    second = cpu_decode(_padded(JMP_SHORT_PLUS_0X10), LONG_MODE, 0x2000)
    assert (first.kind, first.branch_target) == (InsnKind.JUMP, 0x1012)
    assert (second.kind, second.branch_target) == (InsnKind.JUMP, 0x2012)
    assert "1012" in first.text.upper()
    assert "2012" in second.text.upper()


def test_a_rip_relative_operand_is_shown_at_its_address() -> None:
    """`mov eax, [rip+0x10]` names the absolute address it reads: different text at 0x1000 and at 0x2000."""
    first = cpu_decode(_padded(MOV_EAX_RIP_PLUS_0X10), LONG_MODE, 0x1000)
    second = cpu_decode(_padded(MOV_EAX_RIP_PLUS_0X10), LONG_MODE, 0x2000)
    assert "1016" in first.text.upper()
    assert "2016" in second.text.upper()


def test_an_instruction_that_names_no_address_decodes_the_same_everywhere() -> None:
    """INT3 is INT3 at any address: kind, length, text and bytes are one value."""
    here, there = (cpu_decode(_padded(b"\xcc"), LONG_MODE, address) for address in (0x1000, 0xFFFF_0000))
    assert here == there
    assert (here.kind, here.length, here.text, here.encoding) == (InsnKind.INT3, 1, "int3", "cc")
