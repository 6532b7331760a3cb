"""BOUND (`62 /r`) and its #BR: a fault, the one exception intercept besides #BP/#OF that saves next_rip."""

from __future__ import annotations

import pytest

from dsl.engine import CodeBytes, Event, Execute, L1Vmrun, Nesting, Program, Result, Run, Setup, run
from dsl.engine.vocab import CpuMode, EventType, ExitCode, Outcome, PolicyName, Vector

from .builders import ALL_KVM, ARCHITECTURAL, execute_cut_short, inject, obs

#: `bound eax, [ebx]` in 32-bit code (`bound ax, [bp+di]` in 16-bit code): 2 bytes.
BOUND = bytes.fromhex("6203")
UD2 = bytes.fromhex("0f0b")
PROTECTED_32 = CpuMode.PROTECTED_32
BR_EXCEPTION = 0x80000305


def execute(code: bytes, mode: CpuMode, *, in_range: bool = False, policy: PolicyName = PolicyName.KVM_7_1) -> Result:
    setup = Setup(mode=mode, bound_in_range=in_range, code=(CodeBytes(0x1000, code),))
    return run(Program(setup, (Execute(), Run()), policy=policy))


@pytest.mark.parametrize("mode", [CpuMode.REAL, CpuMode.PROTECTED_16, PROTECTED_32, CpuMode.COMPAT_32])
def test_h25_out_of_bounds_raises_br_as_a_fault(mode: CpuMode) -> None:
    """H-25: out of bounds, BOUND raises #BR (vector 5) as a fault: the frame returns to the BOUND itself."""
    result = execute(BOUND, mode)
    assert result.exits == ()
    assert (obs(result, "delivered"), obs(result, "delivered_type")) == (Vector.BR, EventType.EXCEPTION)
    assert obs(result, "return_rip") == 0x1000
    assert obs(result, "delivery_count") == 1
    assert obs(result, "outcome") is Outcome.DELIVERED


def test_h25_in_range_bound_is_an_ordinary_instruction() -> None:
    """H-25: within its bounds BOUND raises nothing; RIP moves past its 2 bytes."""
    result = execute(BOUND, PROTECTED_32, in_range=True)
    assert result.deliveries == ()
    assert obs(result, "outcome") is Outcome.NO_EVENT
    assert obs(result, "final_rip") == 0x1002


def test_h25_bound_is_invalid_in_64_bit_mode() -> None:
    """H-25, H-28: in 64-bit mode `62` is the EVEX prefix: the bytes raise #UD, never #BR."""
    result = execute(BOUND, CpuMode.LONG_64)
    assert obs(result, "delivered") == Vector.UD
    assert all(d.vector != Vector.BR for d in result.deliveries)


@pytest.mark.parametrize("policy", [*ALL_KVM, ARCHITECTURAL])
def test_h25_br_cut_short_is_requeued_as_a_fault(policy: PolicyName) -> None:
    """H-4, H-14, H-25, K-5.19-14, K-6.0-9: #BR is not soft: EXITINTINFO type 3 vector 5, requeued by every KVM
    (kvm-5.19 included) and re-injected with RIP = the BOUND, no soft-event bookkeeping."""
    result = execute_cut_short(BOUND, policy, mode=PROTECTED_32)
    assert obs(result, "exit_int_info") == BR_EXCEPTION
    assert obs(result, "event_inj") == BR_EXCEPTION
    assert obs(result, "soft_int_injected") is False
    assert (obs(result, "delivered"), obs(result, "return_rip")) == (Vector.BR, 0x1000)
    assert obs(result, "outcome") is Outcome.REINJECT


def _l2_executes(code: bytes, intercepted: Vector) -> Result:
    """L1 intercepts `intercepted`; L2 executes `code` at 0x5000 in 32-bit code."""
    setup = Setup(
        mode=PROTECTED_32,
        code=(CodeBytes(0x5000, code),),
        nesting=Nesting(intercepted_exceptions=(intercepted,)),
    )
    return run(Program(setup, (L1Vmrun(rip=0x5000), Execute()), policy=PolicyName.KVM_7_1))


def test_h12_br_intercept_saves_next_rip() -> None:
    """H-12, H-25: the #BR intercept (0x45) saves next_rip = after the BOUND, although #BR is a fault."""
    result = _l2_executes(BOUND, Vector.BR)
    assert (obs(result, "exit_code"), obs(result, "exit_rip")) == (ExitCode.EXCP_BR, 0x5000)
    assert obs(result, "exit_next_rip") == 0x5002
    assert obs(result, "vmcb12_next_rip") == 0x5002


def test_h12_other_exception_intercepts_clear_next_rip() -> None:
    """H-12: by contrast the #UD intercept (0x46) of UD2 leaves next_rip = 0."""
    result = _l2_executes(UD2, Vector.UD)
    assert obs(result, "exit_code") == ExitCode.EXCP_UD
    assert obs(result, "exit_next_rip") == 0


@pytest.mark.parametrize(("mode", "fails"), [(CpuMode.LONG_64, True), (PROTECTED_32, False)])
def test_h8_vmrun_refuses_br_in_64_bit_mode(mode: CpuMode, fails: bool) -> None:
    """H-8: VMRUN fails with VMEXIT_INVALID when EVENTINJ holds #BR and the guest is in 64-bit mode."""
    result = inject(Event(Vector.BR, EventType.EXCEPTION), PolicyName.KVM_7_1, code=BOUND, mode=mode)
    assert obs(result, "event_inj") == BR_EXCEPTION
    if fails:
        assert obs(result, "exit_code") == ExitCode.INVALID
        assert obs(result, "outcome") is Outcome.VMEXIT_INVALID
        assert result.deliveries == ()
    else:
        assert (obs(result, "delivered"), obs(result, "return_rip")) == (Vector.BR, 0x1000)
