"""Worked examples EX-39 … EX-46 (examples.md § I): L1 injects into L2."""

from __future__ import annotations

import pytest

from dsl.engine import CodeBytes, L1Vmrun, Nesting, Program, Result, Run, SaveRestore, Setup, run
from dsl.engine.program import Step
from dsl.engine.vocab import CpuMode, ExitCode, FaultKind, Level, Outcome, PolicyName, Vector

from .builders import KVM_5_19, KVM_6_0, KVM_6_19, KVM_7_1, REINJECTING, cut_short, obs, options

UD2 = b"\x0f\x0b"
THREE_BYTE_MOV = b"\x66\x89\xc8"  # MOV AX, CX in 32-bit code


def nested(
    policy: PolicyName,
    steps: tuple[Step, ...],
    *,
    l1_nrips: bool = True,
    code: tuple[CodeBytes, ...] = (),
    mode: CpuMode = CpuMode.LONG_64,
    intercepts: tuple[Vector, ...] = (),
    seed: bool = False,
    l1_shstk: bool = False,
    rip: int = 0,
    cs_base: int = 0,
) -> Result:
    setup = Setup(
        mode=mode,
        rip=rip,
        cs_base=cs_base,
        code=code,
        nesting=Nesting(l1_nrips=l1_nrips, intercepted_exceptions=intercepts, l1_shstk=l1_shstk),
    )
    return run(Program(setup, steps, policy=policy, options=options(seed_as_committed=seed)))


def _ex39(policy: PolicyName, faults: int = 1) -> Result:
    steps: tuple[Step, ...] = (
        L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002, cs_base=0),
        *(cut_short(FaultKind.NPF) for _ in range(faults)),
        Run(),
    )
    return nested(policy, steps, code=(CodeBytes(0x5000, UD2),))


def test_ex39_kvm_5_19_l1_bp_is_lost() -> None:
    """EX-39, K-5.19-22, K-5.19-23: vmcb02 nr not synced; the soft exception is not RQ: lost; L2 runs its UD2."""
    result = _ex39(KVM_5_19)
    assert result.vmruns[0].next_rip == 0
    assert obs(result, "requeued") is False
    assert obs(result, "outcome") is Outcome.LOST
    assert obs(result, "delivered") == Vector.UD


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex39_l1_bp_restuffed_from_vmcb12(policy: PolicyName) -> None:
    """EX-39, K-6.0-19, K-6.0-20, K-6.0-22, K-6.19-5, K-7.1-5: re-stuff nr 0x5002; no decode; ret 0x5002."""
    result = _ex39(policy)
    first = result.vmruns[0]
    assert first.next_rip == 0x5002
    assert (first.soft_int.old_rip, first.soft_int.next_rip, first.soft_int.csbase) == (0x5000, 0x5002, 0)
    assert any(t.rule == "K-6.0-10" for t in result.trace)
    assert not any(t.action.value == "decode" for t in result.trace)
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "return_rip") == 0x5002
    assert obs(result, "outcome") is Outcome.REINJECT


def test_ex40_kvm_5_19_pushes_the_stale_vmcb02_next_rip() -> None:
    """EX-40, H-6, K-5.19-22: no intervening exit: the CPU pushes the stale vmcb02 nr, 0 for a fresh vmcb02."""
    result = nested(KVM_5_19, (L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002), Run()))
    assert obs(result, "return_rip") == 0


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex40_vmcb12_next_rip_is_pushed(policy: PolicyName) -> None:
    """EX-40, K-6.0-19, K-7.1-3: the CPU pushes vmcb12 nr 0x5002."""
    result = nested(policy, (L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002), Run()))
    assert obs(result, "return_rip") == 0x5002
    assert obs(result, "outcome") is Outcome.DELIVERED


def _ex41(policy: PolicyName) -> Result:
    steps = (L1Vmrun(event_inj=0x80000420, rip=0x6000, next_rip=0x6000), cut_short(FaultKind.NPF), Run())
    return nested(policy, steps)


def test_ex41_kvm_5_19_int_0x20_lost() -> None:
    """EX-41, K-5.19-16, K-5.19-23: SOFT not RQ: lost (the selftest's int_fired == 1 fails)."""
    assert obs(_ex41(KVM_5_19), "outcome") is Outcome.LOST


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex41_int_0x20_restuffed_with_next_rip_equal_rip(policy: PolicyName) -> None:
    """EX-41, K-6.0-7, K-6.0-10, K-6.0-22, S-10: re-stuff nr 0x6000; inj 0x80000420; frame RIP 0x6000."""
    result = _ex41(policy)
    assert obs(result, "exit_int_info") == 0x80000420
    assert obs(result, "event_inj") == 0x80000420
    assert obs(result, "next_rip") == 0x6000
    assert obs(result, "return_rip") == 0x6000
    assert "kvm_inj_virq: Soft/INTn 0x20 [reinjected]" in result.tracepoints


def _ex42(policy: PolicyName, seed: bool = False) -> Result:
    steps = (
        L1Vmrun(event_inj=0x80000303, rip=0x1000, next_rip=0x1001, cs_base=0x10000),
        cut_short(FaultKind.NPF),
        Run(),
    )
    return nested(policy, steps, mode=CpuMode.PROTECTED_32, code=(CodeBytes(0x11000, THREE_BYTE_MOV),), seed=seed)


def test_ex42_seed_as_committed_uses_the_stale_cs_base() -> None:
    """EX-42, K-6.0-20 variant: csbase 0 → 0x1000 ≠ 0x11000: no re-stuff; decode 3 bytes → ret 0x1003."""
    result = _ex42(KVM_6_0, seed=True)
    assert result.vmruns[0].soft_int.csbase == 0
    assert obs(result, "return_rip") == 0x1003


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex42_vmcb12_cs_base_restuffs(policy: PolicyName) -> None:
    """EX-42, K-6.0-20 (da0b93d65e5b), K-7.1-5: csbase 0x10000; linear 0x11000 matches: re-stuff; ret 0x1001."""
    result = _ex42(policy)
    assert result.vmruns[0].soft_int.csbase == 0x10000
    assert obs(result, "return_rip") == 0x1001


def test_ex42_kvm_5_19_lost() -> None:
    """EX-42: kvm-5.19 loses the event (as EX-39)."""
    assert obs(_ex42(KVM_5_19), "outcome") is Outcome.LOST


def _ex43(policy: PolicyName) -> Result:
    steps = (
        L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002),
        cut_short(FaultKind.PF, by=Level.L1),
        Run(),
    )
    return nested(policy, steps, intercepts=(Vector.PF,))


def test_ex43_kvm_5_19_l1_sees_no_exitintinfo() -> None:
    """EX-43, K-5.19-24: vmcb12 EXITINTINFO 0 — L1 cannot see the in-flight #BP, which is lost; vmcb12 nr 0."""
    result = _ex43(KVM_5_19)
    assert obs(result, "vmcb12_exit_code") == 0x4E
    assert obs(result, "vmcb12_exit_int_info") == 0
    assert obs(result, "vmcb12_next_rip") == 0
    assert obs(result, "outcome") is Outcome.LOST


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex43_l1_sees_the_bp_and_the_restuffed_next_rip(policy: PolicyName) -> None:
    """EX-43, K-6.0-24 [D]: vmcb12 EXITINTINFO 0x80000303; vmcb12 nr 0x5002 (benign deviation); L0's queue empty."""
    result = _ex43(policy)
    assert obs(result, "vmcb12_exit_int_info") == 0x80000303
    assert obs(result, "vmcb12_next_rip") == 0x5002
    assert obs(result, "outcome") is Outcome.REFLECTED
    assert len(result.vmruns) == 1


def _ex44(policy: PolicyName, regs_first: bool = False) -> Result:
    steps = (L1Vmrun(event_inj=0x80000420, rip=0x2002, next_rip=0), SaveRestore(regs_first=regs_first), Run())
    return nested(policy, steps, l1_nrips=False, code=(CodeBytes(0x2002, b"\x90"),))


@pytest.mark.parametrize("regs_first", [False, True])
def test_ex44_kvm_5_19_restore_pushes_zero(regs_first: bool) -> None:
    """EX-44 [D]: vmcb02 nr not synced (0 on a fresh vCPU) → ret 0x0."""
    assert obs(_ex44(KVM_5_19, regs_first), "return_rip") == 0


@pytest.mark.parametrize("policy", REINJECTING[:-1])
@pytest.mark.parametrize("regs_first", [False, True])
def test_ex44_restore_uses_the_stale_save_rip(policy: PolicyName, regs_first: bool) -> None:
    """EX-44, K-6.0-19, K-6.0-21: vmcb02 nr := stale save.rip 0x0 → ret 0x0; soft_int old/next 0x0."""
    result = _ex44(policy, regs_first)
    assert obs(result, "return_rip") == 0
    assert (obs(result, "soft_int_old_rip"), obs(result, "soft_int_next_rip")) == (0, 0)


@pytest.mark.parametrize("regs_first", [False, True])
def test_ex44_kvm_7_1_stuffs_the_live_l2_rip(regs_first: bool) -> None:
    """EX-44, K-7.1-3, K-7.1-4, K-7.1-5: nr := current L2 RIP 0x2002 right before VMRUN → ret 0x2002."""
    result = _ex44(KVM_7_1, regs_first)
    assert obs(result, "next_rip") == 0x2002
    assert (obs(result, "soft_int_old_rip"), obs(result, "soft_int_next_rip")) == (0x2002, 0x2002)
    assert obs(result, "return_rip") == 0x2002


def _ex45(policy: PolicyName) -> Result:
    """L1 (no NRIPS) injected INT 0x20 at L2 RIP 0x2002; an L0 #NPF requeued it; then save/restore, no run pending."""
    from dsl.engine import Reenter

    steps = (
        L1Vmrun(event_inj=0x80000420, rip=0x2002, next_rip=0),
        cut_short(FaultKind.NPF),
        Reenter(),
        SaveRestore(),
        Run(),
    )
    return nested(policy, steps, l1_nrips=False, code=(CodeBytes(0x2002, b"\x90"),))


@pytest.mark.parametrize("policy", REINJECTING[:3])
def test_ex45_restore_decodes_the_next_instruction(policy: PolicyName) -> None:
    """EX-45 [D], K-6.0-5, K-6.0-21: nr rebuilt from a stale RIP (0): decode at 0x2002 → ret 0x2002 + 1."""
    result = _ex45(policy)
    assert result.exits[0].exit_int_info == 0x80000420
    assert obs(result, "return_rip") == 0x2003


def test_ex45_kvm_6_19_loses_the_event() -> None:
    """EX-45 [D], K-6.19-4: the decoded NOP does not match vector 0x20: the event is lost."""
    result = _ex45(KVM_6_19)
    assert obs(result, "outcome") is Outcome.LOST


def test_ex45_kvm_7_1_uses_the_synced_next_rip() -> None:
    """EX-45, K-7.1-1, K-7.1-3: the synced NextRIP 0x2002 is restored and used without decoding: ret 0x2002."""
    result = _ex45(KVM_7_1)
    assert obs(result, "return_rip") == 0x2002
    assert not any(t.action.value == "decode" for t in result.trace)


@pytest.mark.parametrize("policy", [KVM_5_19, *REINJECTING[:-1]])
def test_ex46_cp_passed_to_hardware(policy: PolicyName) -> None:
    """EX-46: before kvm-7.1 the #CP EVENTINJ is passed to vmcb02 and CET-capable hardware delivers it."""
    result = nested(policy, (L1Vmrun(event_inj=0x80000315, rip=0x1000), Run()))
    assert obs(result, "delivered") == Vector.CP


def test_ex46_kvm_7_1_rejects_cp_without_shstk() -> None:
    """EX-46, H-8, K-7.1-6: the nested VMRUN fails the consistency check: L1 gets VMEXIT_INVALID."""
    result = nested(KVM_7_1, (L1Vmrun(event_inj=0x80000315, rip=0x1000), Run()))
    assert obs(result, "vmcb12_exit_code") == ExitCode.INVALID
    assert obs(result, "outcome") is Outcome.VMEXIT_INVALID
    assert result.vmruns == ()
    accepted = nested(KVM_7_1, (L1Vmrun(event_inj=0x80000315, rip=0x1000), Run()), l1_shstk=True)
    assert obs(accepted, "delivered") == Vector.CP
