"""The KVM selftest svm_nested_soft_inject_test (selftest.md, S-1 … S-21), step by step under each policy."""

from __future__ import annotations

import pytest

from dsl.engine import CodeBytes, Execute, L1Vmrun, Nesting, Program, Result, Run, Setup, run
from dsl.engine.vocab import ExitCode, FaultKind, Outcome, PolicyName, Vector

from .builders import KVM_5_19, REINJECTING, cut_short, obs, options

A = 0x6000  # l2_guest_code_int: VMMCALL at V = A, UD2 at V + 3, HLT at V + 5 (S-8 … S-15)
V = A
L2_CODE = CodeBytes(A, b"\x0f\x01\xd9" + b"\x0f\x0b" + b"\xf4")
INT_NR = 0x20


def soft_inject_test(policy: PolicyName, nrips: bool = True) -> Result:
    """S-2 … S-15: the soft-interrupt run, each L1 VMRUN's delivery cut short by an L0 #NPF (S-7; the second
    through the untouched idt_alt page, S-3). Guest debug stays off (S-4, the default options); one bounded Run
    stands for the alarm(2) watchdog (S-5)."""
    setup = Setup(
        rip=A,
        code=(L2_CODE,),
        nesting=Nesting(
            l1_nrips=True,
            intercepted_exceptions=(Vector.PF, Vector.UD),
            intercepted_exits=(ExitCode.HLT, ExitCode.VMMCALL),
        ),
    )
    # kvm-5.19 loses both events, so its Run steps already carry L2 on to the exits to L1 (S-20).
    then = () if policy is KVM_5_19 else (Execute(),)
    steps = (
        L1Vmrun(event_inj=0x80000420, rip=A, next_rip=A),  # S-9
        cut_short(FaultKind.NPF),  # S-7: L2's first access, the IDT read
        Run(),  # S-10, S-11
        *then,  # S-12: VMMCALL → exit to L1
        L1Vmrun(event_inj=0x80000303, rip=V + 3, next_rip=V + 5),  # S-13 (idt_alt: another #NPF)
        cut_short(FaultKind.NPF),
        Run(),  # S-14, S-15
        *then,  # HLT → exit to L1
    )
    return run(Program(setup, steps, policy=policy, options=options(nrips=nrips)))


def nmi_test(policy: PolicyName) -> Result:
    """S-16 … S-18: L1 injects an NMI (vector field 0); its delivery takes an L0 #NPF."""
    setup = Setup(rip=A, code=(CodeBytes(A, b"\x0f\x0b"),), nesting=Nesting(intercepted_exceptions=(Vector.UD,)))
    steps = (L1Vmrun(event_inj=0x80000200, rip=A), cut_short(FaultKind.NPF), Run())
    return run(Program(setup, steps, policy=policy))


@pytest.mark.parametrize("policy", REINJECTING)
def test_s10_l0_restuffs_and_reinjects_the_l1_int(policy: PolicyName) -> None:
    """S-9, S-10: vmcb02 nr = A; soft_int old = next = A; #NPF with EXITINTINFO 0x80000420; re-stuff; re-inject."""
    result = soft_inject_test(policy)
    first = result.vmruns[0]
    assert (first.event_inj, first.next_rip) == (0x80000420, A)
    assert (first.soft_int.old_rip, first.soft_int.next_rip) == (A, A)
    assert result.exits[0].exit_code == ExitCode.NPF
    assert result.exits[0].exit_int_info == 0x80000420
    assert result.exits[0].next_rip == 0
    assert result.vmruns[1].event_inj == 0x80000420
    assert result.vmruns[1].next_rip == A
    assert "kvm_inj_virq: Soft/INTn 0x20 [reinjected]" in result.tracepoints


@pytest.mark.parametrize("policy", REINJECTING)
def test_s11_s12_handler_sees_a_then_vmmcall_exits_to_l1(policy: PolicyName) -> None:
    """S-11: the handler's frame RIP equals A; S-12: IRET to A, VMMCALL → exit 0x81 to L1."""
    result = soft_inject_test(policy)
    assert result.deliveries[0].vector == INT_NR
    assert result.deliveries[0].return_rip == A
    assert result.vmcb12_exits[0].exit_code == ExitCode.VMMCALL


@pytest.mark.parametrize("policy", REINJECTING)
def test_s14_s15_bp_restuffed_and_returns_past_the_ud2(policy: PolicyName) -> None:
    """S-13, S-14, S-15: soft_int old V+3, next V+5; re-stuff; #BP [reinjected]; IRET to V+5; HLT → exit 0x78."""
    result = soft_inject_test(policy)
    bp = [d for d in result.deliveries if d.vector == Vector.BP]
    assert [d.return_rip for d in bp] == [V + 5]
    second_l1_run = next(run for run in result.vmruns if run.event_inj == 0x80000303)
    assert (second_l1_run.soft_int.old_rip, second_l1_run.soft_int.next_rip) == (V + 3, V + 5)
    assert "kvm_inj_exception: #BP [reinjected]" in result.tracepoints
    assert [e.exit_code for e in result.vmcb12_exits] == [ExitCode.VMMCALL, ExitCode.HLT]


def test_s20_kvm_5_19_fails_both_asserts() -> None:
    """S-20: the SOFT event is dropped on the #NPF (int_fired stays 0); the dropped #BP lets L2 run UD2 (#UD exit)."""
    result = soft_inject_test(KVM_5_19)
    assert INT_NR not in [d.vector for d in result.deliveries]
    assert obs(result, "outcome") is Outcome.LOST
    assert result.vmcb12_exits[-1].exit_code == ExitCode.EXCP_UD


@pytest.mark.parametrize("policy", REINJECTING)
def test_s17_l1_to_l2_nmi_leaves_l1_nmi_state_alone(policy: PolicyName) -> None:
    """S-16, S-17, S-18, K-6.0-8: EXITINTINFO 0x80000202; requeued NMI re-injected without masking L1's NMIs."""
    result = nmi_test(policy)
    assert result.exits[0].exit_int_info == 0x80000202
    assert obs(result, "event_inj") == 0x80000200
    assert obs(result, "delivered") == Vector.NMI
    assert obs(result, "l1_nmi_masked") is False


def test_s20_kvm_5_19_nmi_masks_l1() -> None:
    """S-19, S-20, K-5.19-23 [D]: the re-injected L1→L2 NMI marks L1 NMI-blocked, so L1's own self-NMI (S-19)
    stays blocked and the run would hang."""
    assert obs(nmi_test(KVM_5_19), "l1_nmi_masked") is True


@pytest.mark.parametrize("policy", REINJECTING)
def test_s6_s20_nrips0_does_not_offer_nrips_to_l1(policy: PolicyName) -> None:
    """S-6, S-20, K-5.19-3, K-6.0-19: with nrips=0 L1 has no NRIPS: vmcb02 nr = vmcb12 RIP, not vmcb12 nr."""
    setup = Setup(rip=A, code=(L2_CODE,), nesting=Nesting(l1_nrips=True))
    program = Program(
        setup,
        (L1Vmrun(event_inj=0x80000303, rip=V + 3, next_rip=V + 5), Run()),
        policy=policy,
        options=options(nrips=False),
    )
    result = run(program)
    assert result.vmruns[0].next_rip == V + 3


def test_s21_save_restore_reproducer_predicted() -> None:
    """S-21 [D]: the dropped save/restore reproducer would fail under kvm-6.0 … kvm-6.19 and pass under kvm-7.1."""
    from dsl.engine import SaveRestore

    def reproducer(policy: PolicyName) -> Result:
        setup = Setup(rip=A, code=(L2_CODE,), nesting=Nesting(l1_nrips=False))
        steps = (L1Vmrun(event_inj=0x80000420, rip=A + 3, next_rip=0), SaveRestore(), Run())
        return run(Program(setup, steps, policy=policy))

    assert obs(reproducer(PolicyName.KVM_6_19), "return_rip") == 0
    assert obs(reproducer(PolicyName.KVM_7_1), "return_rip") == A + 3
