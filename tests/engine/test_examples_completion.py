"""Worked examples EX-13 … EX-18 (examples.md § D): completion details — secondary exceptions, INTR exits,
cancelled entries, the interrupt shadow, hardware exceptions."""

from __future__ import annotations

import pytest

from dsl.engine import CodeBytes, IdtGate, Inject, Result
from dsl.engine.vocab import CpuMode, FaultKind, InjectionSource, PolicyName, Vector

from .builders import (
    BP,
    INT3,
    INTO,
    KVM_5_19,
    MOV_RAX_RCX,
    REINJECTING,
    cut_short,
    execute_cut_short,
    inject,
    obs,
    options,
)


def _ex13(policy: PolicyName, nrips: bool) -> Result:
    """EX-13: userspace injects #BP for the INT3 at 0x1000; gate 3 not present; the #NP's delivery is cut short."""
    return inject(
        BP,
        policy,
        nrips=nrips,
        idt=(IdtGate(Vector.BP, present=False),),
        before=(cut_short(during=Vector.NP),),
    )


def test_ex13_kvm_5_19_nrips1_np_frame_is_right() -> None:
    """EX-13, K-5.19-14: RIP never advanced; #NP requeued; frame EIP 0x1000."""
    result = _ex13(KVM_5_19, True)
    assert obs(result, "exit_int_info") == 0x80000B0B
    assert obs(result, "exit_int_info_err") == 0x1A
    assert obs(result, "return_rip") == 0x1000


def test_ex13_kvm_5_19_nrips0_np_frame_is_wrong() -> None:
    """EX-13, K-5.19-14, K-5.19-21: no unwind (vector 11 ≠ 3): #NP frame EIP 0x1001 (wrong)."""
    result = _ex13(KVM_5_19, False)
    assert obs(result, "delivered") == Vector.NP
    assert obs(result, "return_rip") == 0x1001


@pytest.mark.parametrize("policy", REINJECTING)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex13_np_frame_points_at_the_int3(policy: PolicyName, nrips: bool) -> None:
    """EX-13, K-6.0-10, K-6.0-11 (cd9e6da8048c): #NP RQ, inj 0x80000b0b err 0x1a, frame EIP 0x1000."""
    result = _ex13(policy, nrips)
    assert obs(result, "event_inj") == 0x80000B0B
    assert obs(result, "event_inj_err") == 0x1A
    assert obs(result, "return_rip") == 0x1000
    assert obs(result, "delivered_error_code") == 0x1A


@pytest.mark.parametrize("policy", [KVM_5_19, *REINJECTING])
def test_ex14_guest_int_0x80_np_then_pf(policy: PolicyName) -> None:
    """EX-14, H-16, H-17: #NP(0x402) requeued with its error code; frame EIP 0x3000; no soft bookkeeping."""
    result = execute_cut_short(
        b"\xcd\x80",
        policy,
        at=0x3000,
        mode=CpuMode.PROTECTED_32,
        idt=(IdtGate(0x80, present=False),),
        during=Vector.NP,
    )
    assert obs(result, "exit_int_info") == 0x80000B0B
    assert obs(result, "exit_int_info_err") == 0x402
    assert obs(result, "event_inj") == 0x80000B0B
    assert obs(result, "event_inj_err") == 0x402
    assert obs(result, "return_rip") == 0x3000
    assert obs(result, "soft_int_injected") is False
    if policy is not KVM_5_19:
        assert "kvm_inj_exception: #NP (0x402) [reinjected]" in result.tracepoints


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex15_intr_exit_after_the_reinjection(policy: PolicyName) -> None:
    """EX-15, K-6.0-9, K-6.0-12: the #BP was delivered; INTR exit; soft_int consumed; nothing requeued."""
    from dsl.engine import ExitFor
    from dsl.engine.vocab import ExitCode

    result = execute_cut_short(INT3, policy, before_run=(ExitFor(ExitCode.INTR),))
    assert result.exits[1].exit_code == 0x60
    assert result.exits[1].exit_int_info == 0
    assert len(result.requeued) == 1
    assert obs(result, "return_rip") == 0x1001
    assert any(t.rule == "K-6.0-12" for t in result.trace)


def _ex16(policy: PolicyName, nrips: bool) -> Result:
    from dsl.engine import CancelEntry

    return inject(BP, policy, nrips=nrips, before=(), after=(CancelEntry(),), source=InjectionSource.USERSPACE)


def test_ex16_kvm_5_19_cancel_drops_the_bp() -> None:
    """EX-16, K-5.19-17: the KVM-injected #BP is dropped on cancel (not requeued)."""
    result = _ex16(KVM_5_19, True)
    assert obs(result, "requeued") is False
    assert result.vmruns[0].event_inj == 0


def test_ex16_kvm_5_19_nrips0_cancel_unwinds_the_int3_advance() -> None:
    """EX-16, K-5.19-14, K-5.19-17: dropped; unwind RIP 0x1001 → 0x1000."""
    result = _ex16(KVM_5_19, False)
    assert any(t.rule == "K-5.19-14" and t.action.value == "unwind" for t in result.trace)
    assert result.vmruns[0].rip == 0x1000


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex16_cancel_requeues_and_restuffs(policy: PolicyName) -> None:
    """EX-16, K-6.0-15: RQ; re-stuff nr 0x1001; the next entry re-injects without decoding."""
    result = _ex16(policy, True)
    assert obs(result, "requeued") is True
    assert any(t.rule == "K-6.0-10" for t in result.trace)
    assert len([t for t in result.trace if t.action.value == "decode"]) == 1
    assert obs(result, "return_rip") == 0x1001


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex16_cancel_nrips0_unwinds_and_decodes_again(policy: PolicyName) -> None:
    """EX-16, K-6.0-11, K-6.0-15: unwind 0x1001 → 0x1000; the next entry decodes again."""
    result = _ex16(policy, False)
    assert any(t.rule == "K-6.0-11" for t in result.trace)
    assert len([t for t in result.trace if t.action.value == "decode"]) == 2


@pytest.mark.parametrize("policy", REINJECTING)
@pytest.mark.parametrize(("nrips", "shadow"), [(True, True), (False, False)])
def test_ex17_int3_in_an_sti_shadow(policy: PolicyName, nrips: bool, shadow: bool) -> None:
    """EX-17, H-35, K-6.0-16: the look-ahead skip keeps the shadow bit, the committing skip clears it."""
    result = execute_cut_short(
        b"\xfb\xcc",
        policy,
        at=0x0FFF,
        nrips=nrips,
        rflags=0x2,
        before_run=(),
    )
    from dsl.engine import Execute, Program, Run, Setup, run

    setup = Setup(rip=0x0FFF, rflags=0x2, code=(CodeBytes(0x0FFF, b"\xfb\xcc"),))
    staged = run(
        Program(setup, (Execute(), cut_short(), Execute(), Run()), policy=policy, options=options(nrips=nrips))
    )
    assert result is not None
    assert staged.exits[0].exit_int_info == 0x80000303
    assert obs(staged, "interrupt_shadow") is shadow
    assert obs(staged, "return_rip") == 0x1001


@pytest.mark.parametrize("policy", [KVM_5_19, *REINJECTING])
def test_ex18_hardware_pf_requeued_with_its_error_code(policy: PolicyName) -> None:
    """EX-18, K-5.19-14, K-6.0-9, K-6.0-18: a #PF (err 0x2) cut short by #NPF is re-injected 0x80000b0e, err 0x2;
    the tracepoint prints the error code because it is valid (21d4c575eb4a)."""
    from dsl.engine import Event, Program, Run, Setup, run
    from dsl.engine.vocab import EventType

    setup = Setup(code=(CodeBytes(0x1000, b"\x90"),))
    program = Program(
        setup,
        (
            Inject(InjectionSource.USERSPACE, Event(Vector.PF, EventType.EXCEPTION, 0x2)),
            cut_short(FaultKind.NPF),
            Run(),
        ),
        policy=policy,
    )
    result = run(program)
    assert obs(result, "exit_int_info") == 0x80000B0E
    assert obs(result, "exit_int_info_err") == 0x2
    assert obs(result, "event_inj") == 0x80000B0E
    assert obs(result, "event_inj_err") == 0x2
    if policy is not KVM_5_19:
        assert "kvm_inj_exception: #PF (0x2) [reinjected]" in result.tracepoints
    _ = (INTO, MOV_RAX_RCX)
