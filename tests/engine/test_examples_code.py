"""Worked examples EX-27 … EX-38 (examples.md § F-H): code modified before the decode, decode failure, SEV."""

from __future__ import annotations

import pytest

from dsl.engine import CodeBytes, Execute, ModifyCode, Program, Result, Run, SetPage, Setup, run
from dsl.engine.rules import DEFERRED_EXCEPTION_RULE
from dsl.engine.vocab import Evidence, FaultKind, HardwareProfile, Outcome, PageTable, PolicyName, Protection, Vector

from .builders import (
    BEFORE_OPCODE_CHECK,
    BP,
    INT3,
    KVM_5_19,
    KVM_6_0,
    KVM_6_2,
    OPCODE_CHECK,
    REINJECTING,
    execute_cut_short,
    inject,
    obs,
    options,
)


def _rewritten(policy: PolicyName, new: bytes, nrips: bool = True, old: bytes = INT3) -> Result:
    """Common set-up of § F: `CC` at 0x1000 cut short; another vCPU rewrites it before KVM decodes."""
    return execute_cut_short(old, policy, nrips=nrips, before_run=(ModifyCode(0x1000, new),))


CALL = b"\xe8\x10\x00\x00\x00"
CPUID = b"\x0f\xa2"


def test_ex27_kvm_5_19_runs_the_new_call() -> None:
    """EX-27: retry: the guest runs the new CALL (correct)."""
    result = _rewritten(KVM_5_19, CALL)
    assert obs(result, "delivery_count") == 0
    assert obs(result, "final_rip") == 0x1015
    assert obs(result, "outcome") is Outcome.RETRY


@pytest.mark.parametrize("policy", BEFORE_OPCODE_CHECK)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex27_text_poke_gets_a_wrong_return_address(policy: PolicyName, nrips: bool) -> None:
    """EX-27, H-41, K-6.0-29: the 5-byte CALL is decoded: nr 0x1005, #BP with ret 0x1005 ("Oops: int3")."""
    result = _rewritten(policy, CALL, nrips)
    assert obs(result, "next_rip") == 0x1005
    assert obs(result, "return_rip") == 0x1005
    assert obs(result, "delivered") == Vector.BP


@pytest.mark.parametrize("policy", OPCODE_CHECK)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex27_opcode_check_drops_and_the_call_runs(policy: PolicyName, nrips: bool) -> None:
    """EX-27, K-6.19-3, K-6.19-4: `E8` does not match vector 3: drop; RIP 0x1000; the guest executes the CALL."""
    result = _rewritten(policy, CALL, nrips)
    assert obs(result, "event_inj") == 0
    assert obs(result, "rip") == 0x1000
    assert obs(result, "final_rip") == 0x1015
    assert obs(result, "outcome") is Outcome.DROPPED


@pytest.mark.parametrize(
    ("policy", "delivered", "final_rip"),
    [(KVM_5_19, None, 0x1001), (KVM_6_0, Vector.BP, 0x1001), (OPCODE_CHECK[0], None, 0x1001)],
)
def test_ex28_int3_replaced_by_nop(policy: PolicyName, delivered: int | None, final_rip: int) -> None:
    """EX-28, K-6.0-29, K-6.19-4: 6.0 delivers a #BP for an INT3 that no longer exists (nr 0x1001)."""
    result = _rewritten(policy, b"\x90")
    assert obs(result, "delivered") == delivered
    assert obs(result, "final_rip") == final_rip
    if delivered is not None:
        assert obs(result, "next_rip") == 0x1001


@pytest.mark.parametrize(
    ("policy", "final_rip", "ret"),
    [(KVM_5_19, 0x1012, None), (KVM_6_0, 0x1002, 0x1002), (OPCODE_CHECK[1], 0x1012, None)],
)
def test_ex29_int3_replaced_by_short_jmp(policy: PolicyName, final_rip: int, ret: int | None) -> None:
    """EX-29: 6.0 returns to 0x1002 (the JMP is skipped); 5.19 and 6.19 take the JMP to 0x1012."""
    result = _rewritten(policy, b"\xeb\x10", old=b"\xcc\x00")
    assert obs(result, "return_rip") == ret
    assert obs(result, "final_rip") == final_rip


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex30_int3_replaced_by_cd03(policy: PolicyName) -> None:
    """EX-30, K-6.0-14, K-6.19-7: #BP re-injected as an exception (0x80000303) with nr 0x1002."""
    result = _rewritten(policy, b"\xcd\x03")
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "next_rip") == 0x1002


def test_ex30_kvm_5_19_runs_int_3_natively() -> None:
    """EX-30: retry: `CD 03` runs natively; vector-3 handler, frame 0x1002."""
    result = _rewritten(KVM_5_19, b"\xcd\x03")
    assert obs(result, "delivered") == Vector.BP
    assert obs(result, "return_rip") == 0x1002


@pytest.mark.parametrize(
    ("policy", "vector"), [(KVM_5_19, Vector.OF), (KVM_6_0, Vector.BP), (OPCODE_CHECK[0], Vector.OF)]
)
def test_ex31_int3_replaced_by_cd04(policy: PolicyName, vector: int) -> None:
    """EX-31, K-6.19-7: 6.0 runs the #BP handler for an `INT 4` (wrong vector); 6.19 drops, INT 4 runs natively."""
    result = _rewritten(policy, b"\xcd\x04")
    assert obs(result, "delivered") == vector
    assert obs(result, "return_rip") == 0x1002


@pytest.mark.parametrize(
    ("policy", "vector"), [(KVM_5_19, Vector.DB), (KVM_6_0, Vector.BP), (OPCODE_CHECK[1], Vector.DB)]
)
def test_ex32_int3_replaced_by_icebp(policy: PolicyName, vector: int) -> None:
    """EX-32, H-24: 6.0 injects #BP with nr 0x1001; 5.19 and 6.19 execute `F1` → #DB."""
    result = _rewritten(policy, b"\xf1")
    assert obs(result, "delivered") == vector


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex33_bswap_esp_false_positive(policy: PolicyName) -> None:
    """EX-33, K-6.19-7 [D]: `0F CC` has final opcode byte `CC`: even kvm-6.19 injects #BP with nr 0x1002."""
    result = _rewritten(policy, b"\x0f\xcc", old=b"\xcc\x90")
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "next_rip") == 0x1002
    if policy in OPCODE_CHECK:
        assert obs(result, "evidence") is Evidence.DERIVED


@pytest.mark.parametrize("policy", BEFORE_OPCODE_CHECK)
def test_ex34_nrips0_nop_skipped_and_committed(policy: PolicyName) -> None:
    """EX-34, K-6.0-16: RIP 0x1001 committed, RF and shadow cleared, #BP injected (ret 0x1001)."""
    result = execute_cut_short(
        INT3,
        policy,
        nrips=False,
        rflags=0x202 | 0x10000,
        interrupt_shadow=True,
        before_run=(ModifyCode(0x1000, b"\x90"),),
    )
    assert obs(result, "rip") == 0x1001
    assert obs(result, "rf") is False
    assert obs(result, "return_rip") == 0x1001


@pytest.mark.parametrize("policy", OPCODE_CHECK)
def test_ex34_nrips0_opcode_check_touches_nothing(policy: PolicyName) -> None:
    """EX-34, K-6.19-4: RIP stays 0x1000; RF untouched; nothing injected; the NOP executes."""
    result = execute_cut_short(
        INT3,
        policy,
        nrips=False,
        rflags=0x202 | 0x10000,
        before_run=(ModifyCode(0x1000, b"\x90"),),
    )
    run_after = result.vmruns[-1]
    assert run_after.event_inj == 0
    assert run_after.rip == 0x1000
    assert obs(result, "final_rip") == 0x1001


def _unmapped(policy: PolicyName, nrips: bool = True) -> Result:
    """EX-35: before re-entry another vCPU clears the guest PTE of the code page."""
    return execute_cut_short(
        INT3,
        policy,
        nrips=nrips,
        before_run=(SetPage(0x1000, PageTable.GUEST, present=False),),
    )


def test_ex35_kvm_5_19_guest_takes_its_own_pf() -> None:
    """EX-35: retry: the guest re-fetches, takes #PF (CR2 0x1000), maps the page, the INT3 runs."""
    result = _unmapped(KVM_5_19)
    assert [d.vector for d in result.deliveries] == [Vector.PF, Vector.BP]
    assert obs(result, "outcome") is Outcome.RETRY


@pytest.mark.parametrize("nrips", [True, False])
def test_ex35_kvm_6_0_queues_a_pf_mid_injection(nrips: bool) -> None:
    """EX-35, K-6.0-27 (reading B): next = old = 0x1000; #BP injected with ret 0x1000 and a #PF pending [U]."""
    result = _unmapped(KVM_6_0, nrips)
    assert obs(result, "pending_exception") == Vector.PF
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "return_rip") == 0x1000
    assert obs(result, "confirmed") is False


@pytest.mark.parametrize("policy", [KVM_6_2, *REINJECTING[2:]])
def test_ex35_skip_fails_and_the_guest_takes_its_own_pf(policy: PolicyName) -> None:
    """EX-35, K-6.2-2, K-6.2-3: the skip fails → #BP dropped; the guest takes its own #PF, maps it, INT3 runs."""
    result = _unmapped(policy)
    assert obs(result, "event_inj") == 0
    assert obs(result, "emulation_failures") == 1
    assert [d.vector for d in result.deliveries] == [Vector.PF, Vector.BP]
    assert obs(result, "return_rip") == 0x1000  # the #PF frame: the INT3 itself
    assert result.deliveries[1].return_rip == 0x1001
    assert obs(result, "outcome") is Outcome.DROPPED


def _sev(policy: PolicyName, protection: Protection = Protection.SEV) -> Result:
    return execute_cut_short(INT3, policy, opts=options(npt=True, protection=protection), fault=FaultKind.NPF)


def test_ex36_kvm_5_19_sev_retries() -> None:
    """EX-36: retry: the guest re-executes INT3 and receives #BP natively."""
    assert obs(_sev(KVM_5_19), "outcome") is Outcome.RETRY


@pytest.mark.parametrize("policy", [KVM_6_0, KVM_6_2])
def test_ex36_sev_bogus_ud(policy: PolicyName) -> None:
    """EX-36, K-6.0-30: no bytes → #UD queued, skip falsely succeeds: inj 0x80000303, nr 0x1000, #UD pending."""
    result = _sev(policy)
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "next_rip") == 0x1000
    assert obs(result, "pending_exception") == Vector.UD


@pytest.mark.parametrize("policy", [KVM_6_0, KVM_6_2])
def test_ex36_sev_guest_observes_ud_at_int3(policy: PolicyName) -> None:
    """EX-36, K-6.0-30: the #BP goes in with return address 0x1000 while #UD is pending; the pending #UD is
    injected at the next entry and the guest takes #UD with frame RIP 0x1000 (the INT3)."""
    result = _sev(policy)
    delivered = [(d.vector, d.return_rip, d.injected) for d in result.deliveries]
    assert delivered[:2] == [(Vector.BP, 0x1000, True), (Vector.UD, 0x1000, True)]
    assert [run.event_inj for run in result.vmruns if run.event_inj] == [0x80000303, 0x80000306]
    assert obs(result, "event_inj") == 0x80000303  # the focus stays on the #BP's injection


@pytest.mark.parametrize("policy", [KVM_6_0, KVM_6_2])
def test_ex36_sev_interleaving_is_unverified(policy: PolicyName) -> None:
    """EX-36, K-6.0-30: "the guest observes a #UD at the INT3" is [V]; the order of the two deliveries is not
    stated anywhere, so the run is "predicted, unconfirmed"."""
    result = _sev(policy)
    assert DEFERRED_EXCEPTION_RULE in result.outcome_rules
    assert result.evidence is Evidence.UNVERIFIED
    assert not result.confirmed


def test_sev_intercepted_instruction_skip_injects_ud_at_next_entry() -> None:
    """K-5.19-7 step a, K-6.0-30: an SEV skip of an intercepted instruction with nrips=0 queues #UD, which the next
    entry injects through the ordinary pending path (no deferred re-entry: nothing else was being injected)."""
    setup = Setup(rip=0x1000, code=(CodeBytes(0x1000, CPUID),))
    program = Program(
        setup, (Execute(), Run()), HardwareProfile.AMD_NRIPS, KVM_6_0, options(nrips=False, protection=Protection.SEV)
    )
    result = run(program)
    assert [d.vector for d in result.deliveries][:1] == [Vector.UD]
    assert DEFERRED_EXCEPTION_RULE not in result.outcome_rules


@pytest.mark.parametrize("policy", REINJECTING[2:])
def test_ex36_sev_skip_fails(policy: PolicyName) -> None:
    """EX-36, K-6.6-1, K-6.6-2: UNHANDLEABLE: #BP dropped, no #UD; the guest re-executes INT3 (frame 0x1001)."""
    result = _sev(policy)
    assert obs(result, "pending_exception") is None
    assert obs(result, "event_inj") == 0
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "delivered") == Vector.BP


@pytest.mark.parametrize(
    ("policy", "outcome"),
    [(KVM_5_19, Outcome.DELIVERED), (KVM_6_2, Outcome.DELIVERED), (REINJECTING[2], Outcome.UNSUPPORTED)],
)
@pytest.mark.parametrize("protection", [Protection.SEV, Protection.SEV_ES, Protection.SEV_SNP])
def test_ex37_sev_requires_nrips_from_6_6(policy: PolicyName, outcome: Outcome, protection: Protection) -> None:
    """EX-37, K-5.19-1, K-6.6-4: with nrips=0, SEV-family VMs cannot be created from kvm-6.6 on."""
    result = inject(BP, policy, opts=options(nrips=False, protection=protection))
    if outcome is Outcome.UNSUPPORTED:
        assert obs(result, "outcome") is Outcome.UNSUPPORTED
        assert result.vmruns == ()
    else:
        assert obs(result, "outcome") is not Outcome.UNSUPPORTED


@pytest.mark.parametrize("policy", REINJECTING)
@pytest.mark.parametrize("protection", [Protection.SEV_ES, Protection.SEV_SNP])
def test_ex38_sev_es_outcome_unspecified(policy: PolicyName, protection: Protection) -> None:
    """EX-38, K-6.0-31, K-6.6-5: RQ; no decode; old = next = cached RIP; what the CPU pushes is unspecified [U]."""
    result = _sev(policy, protection)
    assert obs(result, "requeued") is True
    assert not any(t.action.value == "decode" for t in result.trace)
    assert obs(result, "soft_int_old_rip") == obs(result, "soft_int_next_rip") == 0x1000
    assert obs(result, "return_rip") is None
    assert obs(result, "outcome") is Outcome.UNSPECIFIED
    assert obs(result, "evidence") is Evidence.UNVERIFIED


def test_ex38_kvm_5_19_sev_es_retries() -> None:
    """EX-38: kvm-5.19 retries."""
    assert obs(_sev(KVM_5_19, Protection.SEV_ES), "outcome") is Outcome.RETRY
