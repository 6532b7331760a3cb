"""KVM rules (kvm.md) not already exercised by a worked example, one test per rule."""

from __future__ import annotations

import itertools

import pytest

from dsl.engine import (
    CodeBytes,
    EngineError,
    Event,
    Execute,
    ExitFor,
    Inject,
    L1Vmrun,
    Nesting,
    Program,
    Reenter,
    Result,
    Run,
    SetPage,
    Setup,
    Step,
    run,
)
from dsl.engine.policies import POLICIES, implemented
from dsl.engine.vocab import (
    KVM_RELEASES,
    CpuMode,
    EventType,
    Evidence,
    ExitCode,
    FaultKind,
    HardwareProfile,
    InjectionSource,
    Level,
    Outcome,
    PageTable,
    PolicyName,
    Vector,
)

from .builders import (
    ALL_KVM,
    ARCHITECTURAL,
    BP,
    INT3,
    KVM_5_19,
    KVM_6_0,
    KVM_6_2,
    KVM_6_6,
    KVM_6_19,
    KVM_7_1,
    REINJECTING,
    cut_short,
    execute_cut_short,
    inject,
    obs,
    options,
)

INVALID_BYTES = b"\x0f\x04"  # not an instruction: KVM's decoder fails without an exception (K-5.19-7 step e)


def test_k_5_19_1_cpu_without_nrips_forces_nrips_0() -> None:
    """H-2, K-5.19-1: on a CPU without NRIPS the effective nrips is 0: the skip commits (RIP advanced)."""
    result = execute_cut_short(INT3, KVM_6_0, nrips=True, profile=HardwareProfile.AMD_NO_NRIPS)
    assert obs(result, "rip") == 0x1001


def test_k_5_19_4_32_bit_wrap_defeats_the_linear_comparison() -> None:
    """K-5.19-4, K-6.0-28: CS.base 0xFFFFF000 + EIP 0x1000 is linear 0x0, the comparand 0x1_0000_0000: no re-stuff."""
    setup = Setup(mode=CpuMode.PROTECTED_32, cs_base=0xFFFFF000, code=(CodeBytes(0x0, INT3),))
    result = run(Program(setup, (cut_short(), cut_short(), Execute(), Run()), policy=KVM_6_0))
    assert not any(t.rule == "K-6.0-10" for t in result.trace)
    assert any(t.rule == "K-6.0-28" for t in result.trace)
    assert obs(result, "return_rip") == 0x1001


def test_k_5_19_5_svm_next_rip_is_reset_after_every_vmrun() -> None:
    """K-5.19-5: after an OUT exit, a later nrips=0 injection decodes (svm->next_rip was zeroed)."""
    setup = Setup(rip=0x0FFE, code=(CodeBytes(0x0FFE, b"\xe6\x80\xcc"),))
    from dsl.engine import Inject
    from dsl.engine.vocab import InjectionSource

    program = Program(
        setup, (Execute(), Inject(InjectionSource.USERSPACE, BP), Run()), policy=KVM_6_0, options=options(nrips=False)
    )
    assert any(t.action.value == "decode" for t in run(program).trace)


@pytest.mark.parametrize("policy", ALL_KVM)
def test_k_5_19_6_k_6_0_4_intercept_skip_clears_the_interrupt_shadow(policy: PolicyName) -> None:
    """K-5.19-6, K-6.0-4: STI (IF was 0) then an intercepted CPUID in its shadow: the skip clears the shadow."""
    program = Program(
        Setup(rflags=0x2, code=(CodeBytes(0x1000, b"\xfb\x0f\xa2\x90"),)), (Execute(), Execute(), Run()), policy=policy
    )
    result = run(program)
    assert result.exits[0].exit_code == ExitCode.CPUID
    assert any(t.message == "clear the interrupt shadow" for t in result.trace)
    assert obs(result, "final_rip") == 0x1004


@pytest.mark.parametrize(("policy", "outcome"), [(KVM_5_19, Outcome.DELIVERED), (KVM_6_0, Outcome.LOST)])
def test_k_5_19_7_e_undecodable_bytes(policy: PolicyName, outcome: Outcome) -> None:
    """K-5.19-7 step e: the emulator fails; kvm-5.19 ignores it (#BP still injected), kvm-6.0 drops (K-6.0-6)."""
    result = inject(BP, policy, code=INVALID_BYTES, nrips=False, before=(ExitFor(ExitCode.NPF),))
    assert obs(result, "emulation_failures") == 1
    assert obs(result, "outcome") is outcome


@pytest.mark.parametrize(("policy", "outcome"), [(KVM_6_0, Outcome.NO_EVENT), (KVM_6_2, Outcome.EMULATION_ERROR)])
def test_k_5_19_7_d_k_6_2_4_decode_fault_in_an_ordinary_skip(policy: PolicyName, outcome: Outcome) -> None:
    """K-5.19-7 d: a decode #PF is queued and the skip "succeeds"; K-6.2-4: from kvm-6.2 it is an emulation error."""
    setup = Setup(rip=0x0FFF, code=(CodeBytes(0x0FFF, b"\x90\x0f\xa2"),))
    steps = (Execute(), SetPage(0x1000, PageTable.GUEST, present=False), ExitFor(ExitCode.CPUID))
    result = run(Program(setup, steps, policy=policy, options=options(nrips=False)))
    assert obs(result, "outcome") is outcome
    if policy is KVM_6_0:
        assert obs(result, "pending_exception") == Vector.PF


@pytest.mark.parametrize("policy", ALL_KVM)
def test_k_5_19_11_13_nmi_requeued_and_reinjected(policy: PolicyName) -> None:
    """K-5.19-11, K-5.19-13, K-6.0-8: an NMI cut short is requeued and re-injected as 0x80000200."""
    result = inject(Event(Vector.NMI, EventType.NMI), policy, after=(cut_short(FaultKind.NPF),))
    assert obs(result, "exit_int_info") == 0x80000202
    assert obs(result, "requeued_event") == 0x80000200
    assert obs(result, "event_inj") == 0x80000200
    assert obs(result, "delivered") == Vector.NMI
    assert obs(result, "outcome") is Outcome.REINJECT


@pytest.mark.parametrize("policy", ALL_KVM)
def test_k_5_19_15_intr_requeued_not_soft(policy: PolicyName) -> None:
    """K-5.19-15, K-6.0-9: an external interrupt cut short is requeued with soft = false (0x80000030)."""
    result = inject(Event(0x30, EventType.INTR), policy, after=(cut_short(FaultKind.NPF),))
    assert obs(result, "requeued_event") == 0x80000030
    assert obs(result, "event_inj") == 0x80000030


def test_k_5_19_25_tracepoints_have_no_reinjected_flag() -> None:
    """K-5.19-25: `kvm_inj_exception: #BP (0x0)` without " [reinjected]" (the error code printed as 0 when none)."""
    assert inject(BP, KVM_5_19).tracepoints == ("kvm_inj_exception: #BP (0x0)",)


def test_k_5_19_25_interrupt_number_in_decimal() -> None:
    """K-5.19-25: `kvm_inj_virq(nr)` prints "irq %u" (hex with a kind only from 2d61391270a3, K-6.0-18)."""
    assert inject(Event(0x30, EventType.INTR), KVM_5_19).tracepoints == ("kvm_inj_virq: irq 48",)


def test_k_6_0_1_each_policy_is_the_previous_plus_its_changes() -> None:
    """K-6.0-1 and README § Policy names: every KVM policy subclasses the previous release's."""
    for older, newer in itertools.pairwise(KVM_RELEASES):
        assert isinstance(POLICIES[newer], type(POLICIES[older]))
    assert PolicyName.ARCHITECTURAL in implemented()


def test_k_6_0_2_int3_fields_replaced_by_soft_int() -> None:
    """K-6.0-2: kvm-6.0 records soft_int_* and no longer int3_injected (nrips=0 #BP injection)."""
    result = inject(BP, KVM_6_0, nrips=False, before=(ExitFor(ExitCode.NPF),))
    assert (obs(result, "int3_injected"), obs(result, "soft_int_next_rip")) == (0, 0x1001)


@pytest.mark.parametrize("nrips", [True, False])
def test_k_6_0_23_l1_without_nrips(nrips: bool) -> None:
    """K-6.0-23 [D]: old = next = vmcb12 RIP; nrips=1 re-stuffs (advance 0); nrips=0 skips L2's next instruction."""
    setup = Setup(code=(CodeBytes(0x2002, b"\x90"),), nesting=Nesting(l1_nrips=False))
    steps = (L1Vmrun(event_inj=0x80000420, rip=0x2002, next_rip=0), cut_short(FaultKind.NPF), Run())
    result = run(Program(setup, steps, policy=KVM_6_0, options=options(nrips=nrips)))
    assert (result.vmruns[0].soft_int.old_rip, result.vmruns[0].soft_int.next_rip) == (0x2002, 0x2002)
    assert obs(result, "return_rip") == (0x2002 if nrips else 0x2003)
    assert obs(result, "evidence") is Evidence.DERIVED


@pytest.mark.parametrize("policy", REINJECTING)
def test_k_6_0_25_soft_int_consumed_by_one_vmrun(policy: PolicyName) -> None:
    """K-6.0-25: soft_int_injected is consumed by the VMRUN it was set for; the next VMRUN has none."""
    result = execute_cut_short(INT3, policy, before_run=(ExitFor(ExitCode.INTR),))
    assert [run.soft_int.injected for run in result.vmruns] == [False, True, False]


def test_k_6_2_1_hook_renamed() -> None:
    """K-6.2-1: svm_queue_exception becomes svm_inject_exception (no behavioural change)."""
    assert any("svm_queue_exception" in t.message for t in inject(BP, KVM_6_0).trace)
    assert any("svm_inject_exception" in t.message for t in inject(BP, KVM_6_2).trace)


def test_k_6_19_1_2_the_vector_travels_to_the_decoder() -> None:
    """K-6.19-1, K-6.19-2: the opcode check knows the expected vector (INTO → 4)."""
    result = execute_cut_short(b"\xce", KVM_6_19, mode=CpuMode.PROTECTED_32, rflags=0xA02)
    assert any("vector 0x4" in t.message and t.rule == "K-6.19-3" for t in result.trace)


def test_k_7_1_2_interrupt_shadow_synced() -> None:
    """K-7.1-2: after L2 runs, the interrupt shadow is synced into the cached vmcb12."""
    setup = Setup(nesting=Nesting())
    result = run(
        Program(
            setup,
            (L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002), cut_short(FaultKind.NPF), Run()),
            policy=KVM_7_1,
        )
    )
    assert any(t.rule == "K-7.1-2" for t in result.trace)


@pytest.mark.parametrize(("policy", "cleared"), [(KVM_6_0, False), (KVM_7_1, True)])
def test_k_7_1_7_nested_vmexit_clears_nmi_l1_to_l2(policy: PolicyName, cleared: bool) -> None:
    """K-7.1-7 [U]: an NMI from L1 requeued, then an exit reflected to L1: kvm-7.1 clears nmi_l1_to_l2."""
    setup = Setup(nesting=Nesting())
    steps = (
        L1Vmrun(event_inj=0x80000200, rip=0x5000),
        cut_short(FaultKind.NPF),
        cut_short(FaultKind.NPF, by=Level.L1),
        Run(),
    )
    result = run(Program(setup, steps, policy=policy))
    assert any(t.rule == "K-7.1-7" for t in result.trace) is cleared
    if cleared:
        assert obs(result, "confirmed") is False


NMI = Event(Vector.NMI, EventType.NMI)
L1_NPT = Nesting(l1_npt=True)


def _nmi_into_l1_after_reflected_exit(policy: PolicyName, l1_event: int, *more: Step) -> Result:
    """L1 VMRUNs L2 with `l1_event`; its delivery takes an #NPF L1 owns (reflected); userspace then injects an NMI
    and L0 enters L1 itself."""
    steps = (
        L1Vmrun(event_inj=l1_event, rip=0x6000),
        cut_short(FaultKind.NPF, by=Level.L1),
        Run(),
        Inject(InjectionSource.USERSPACE, NMI),
        Reenter(),
        *more,
    )
    setup = Setup(nesting=L1_NPT, rip=0x6000, code=(CodeBytes(0x6000, b"\x0f\x0b"),))
    return run(Program(setup, steps, policy=policy))


@pytest.mark.parametrize(
    ("policy", "masked"),
    [
        (KVM_5_19, True),
        (KVM_6_0, False),
        (KVM_6_2, False),
        (KVM_6_6, False),
        (KVM_6_19, False),
        (KVM_7_1, True),
        (ARCHITECTURAL, True),
    ],
)
def test_k_7_1_7_stale_nmi_l1_to_l2_skips_l1_nmi_mask(policy: PolicyName, masked: bool) -> None:
    """K-7.1-7, K-6.0-8, K-6.0-25: an L1→L2 NMI cut short by an #NPF reflected to L1 leaves nmi_l1_to_l2 set
    before kvm-7.1, so the NMI L0 then injects into L1 neither masks L1's NMIs nor intercepts IRET. kvm-5.19 has no
    flag (K-5.19-11 masks); kvm-7.1 clears it on the nested #VMEXIT."""
    result = _nmi_into_l1_after_reflected_exit(policy, 0x80000200)
    assert obs(result, "vmcb12_exit_int_info") in (0x80000200, 0x80000202)  # NMI; KVM rebuilds vector field 0
    assert result.deliveries[-1].vector == Vector.NMI
    assert obs(result, "l1_nmi_masked") is masked


@pytest.mark.parametrize("policy", [KVM_6_0, KVM_7_1])
def test_k_6_0_8_nmi_into_l1_masks_when_l2_had_no_nmi(policy: PolicyName) -> None:
    """K-6.0-8: without an L1→L2 NMI, an NMI L0 injects into L1 masks L1's NMIs and intercepts IRET."""
    result = _nmi_into_l1_after_reflected_exit(policy, 0x80000303)  # L1 gave L2 a #BP, not an NMI
    assert obs(result, "l1_nmi_masked") is True
    assert any(t.rule == "K-6.0-8" and "masked" in t.message for t in result.trace)


def test_k_7_1_7_stale_flag_is_reported_unconfirmed() -> None:
    """K-7.1-7 [U]: the consequence of the stale flag rests on an unverified merge: "predicted, unconfirmed"."""
    result = _nmi_into_l1_after_reflected_exit(KVM_6_0, 0x80000200)
    assert any(t.rule == "K-7.1-7" for t in result.trace)
    assert result.evidence is Evidence.UNVERIFIED


def test_l1_runs_after_l0_entered_it_and_may_vmrun_l2_again() -> None:
    """K-5.19-24: after L0 entered L1 (L1 runs on vmcb01), L1's next VMRUN runs L2 again."""
    again = L1Vmrun(event_inj=0, rip=0x6000)
    result = _nmi_into_l1_after_reflected_exit(KVM_7_1, 0x80000200, again, Run())
    assert result.vmruns[-1].nested is True
    assert result.vmruns[-1].rip == 0x6000


def test_l2_instruction_after_reflected_exit_needs_l1_vmrun() -> None:
    """K-5.19-24: after an exit reflected to L1 the guest (L2) runs only after L1's VMRUN: a clear error."""
    steps = (L1Vmrun(event_inj=0x80000200, rip=0x6000), cut_short(FaultKind.NPF, by=Level.L1), Run(), Execute())
    setup = Setup(nesting=L1_NPT, rip=0x6000, code=(CodeBytes(0x6000, b"\x0f\x0b"),))
    with pytest.raises(EngineError, match="an L1 VMRUN step first"):
        run(Program(setup, steps, policy=KVM_6_0))


def test_k_7_1_9_reading_b_keeps_cpus_without_nrips() -> None:
    """K-7.1-9 (reading B): kvm-7.1 still runs on a CPU without NRIPS and still tests nrips."""
    result = execute_cut_short(INT3, KVM_7_1, profile=HardwareProfile.AMD_NO_NRIPS)
    assert obs(result, "return_rip") == 0x1001


def _unused(result: Result) -> None:
    _ = result
