"""Worked examples EX-19 … EX-26 (examples.md § E): events injected by KVM (userspace, guest debug)."""

from __future__ import annotations

import pytest

from dsl.engine import CodeBytes, Event, Execute, ExitFor, Inject, Program, Result, Run, Setup, run
from dsl.engine.vocab import (
    EventType,
    Evidence,
    ExitCode,
    HardwareProfile,
    InjectionSource,
    Outcome,
    PolicyName,
    Vector,
)

from .builders import (
    BEFORE_OPCODE_CHECK,
    BP,
    INT3,
    KVM_5_19,
    MOV_RAX_RCX,
    OPCODE_CHECK,
    REINJECTING,
    cut_short,
    inject,
    obs,
    options,
    soft_int,
)


def _guest_debug(
    policy: PolicyName, nrips: bool, cut: bool = False, profile: HardwareProfile = HardwareProfile.AMD_NRIPS
) -> Result:
    """EX-19/20: KVM_GUESTDBG_USE_SW_BP; the guest's CC exits 0x43; userspace re-injects #BP."""
    setup = Setup(code=(CodeBytes(0x1000, INT3),))
    steps = (Execute(), Inject(InjectionSource.USERSPACE, BP), *((cut_short(),) if cut else ()), Run())
    return run(Program(setup, steps, profile, policy, options(nrips=nrips, guest_debug=True)))


@pytest.mark.parametrize("policy", [KVM_5_19, *REINJECTING])
@pytest.mark.parametrize("nrips", [True, False])
def test_ex19_guest_debug_reinjection_returns_after_the_int3(policy: PolicyName, nrips: bool) -> None:
    """EX-19, H-12, H-20, K-5.19-20, K-6.0-5: exit 0x43 with nr 0x1001; the re-injected #BP returns to 0x1001."""
    result = _guest_debug(policy, nrips)
    assert obs(result, "exit_code") == 0x43
    assert obs(result, "exit_next_rip") == 0x1001
    assert obs(result, "exit_int_info") == 0
    assert obs(result, "debug_exits") == 1
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "next_rip") == 0x1001
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "rip") == (0x1000 if nrips else 0x1001)


def test_ex19_kvm_5_19_nrips0_records_the_int3_advance() -> None:
    """EX-19, K-5.19-8: skip by decoding: RIP 0x1001, int3_injected 1, int3_rip 0x1001."""
    result = _guest_debug(KVM_5_19, False)
    assert (obs(result, "int3_injected"), obs(result, "int3_rip")) == (1, 0x1001)


def test_ex19_cpu_without_nrips_pushes_rip() -> None:
    """EX-19: CPU without NRIPS: ret = RIP 0x1001."""
    result = _guest_debug(KVM_5_19, False, profile=HardwareProfile.AMD_NO_NRIPS)
    assert obs(result, "return_rip") == 0x1001


@pytest.mark.parametrize("nrips", [True, False])
def test_ex20_kvm_5_19_second_debug_exit(nrips: bool) -> None:
    """EX-20, K-5.19-14: the re-injected #BP is not requeued; the INT3 re-executes: a second KVM_EXIT_DEBUG."""
    result = _guest_debug(KVM_5_19, nrips, cut=True)
    assert obs(result, "requeued") is False
    assert obs(result, "debug_exits") == 2
    assert result.exits[-1].exit_code == 0x43
    if not nrips:
        assert any(t.rule == "K-5.19-14" and t.action.value == "unwind" for t in result.trace)


@pytest.mark.parametrize("policy", REINJECTING)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex20_reinjected_without_a_second_debug_exit(policy: PolicyName, nrips: bool) -> None:
    """EX-20, K-6.0-10, K-6.0-11, K-6.0-13: re-stuff (or unwind and decode again); ret 0x1001; one debug exit."""
    result = _guest_debug(policy, nrips, cut=True)
    assert obs(result, "requeued") is True
    assert obs(result, "debug_exits") == 1
    assert obs(result, "return_rip") == 0x1001
    assert any(t.rule == ("K-6.0-10" if nrips else "K-6.0-11") for t in result.trace)


def _after_npf(
    policy: PolicyName, code: bytes, nrips: bool, profile: HardwareProfile = HardwareProfile.AMD_NRIPS
) -> Result:
    return inject(BP, policy, code=code, nrips=nrips, before=(ExitFor(ExitCode.NPF),), profile=profile)


def test_ex21_kvm_5_19_pushes_a_zero_next_rip() -> None:
    """EX-21, H-6, K-5.19-9: nr 0 after the #NPF exit: ret 0x0."""
    result = _after_npf(KVM_5_19, INT3, True)
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "next_rip") == 0
    assert obs(result, "return_rip") == 0


def test_ex21_kvm_5_19_nrips0() -> None:
    """EX-21, K-5.19-9: decode: RIP 0x1001, nr stale 0 → ret 0x0; CPU without NRIPS: ret 0x1001."""
    result = _after_npf(KVM_5_19, INT3, False)
    assert obs(result, "rip") == 0x1001
    assert obs(result, "return_rip") == 0
    no_nrips = _after_npf(KVM_5_19, INT3, False, HardwareProfile.AMD_NO_NRIPS)
    assert obs(no_nrips, "return_rip") == 0x1001


@pytest.mark.parametrize("policy", REINJECTING)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex21_decode_finds_the_next_rip(policy: PolicyName, nrips: bool) -> None:
    """EX-21, K-6.0-5, K-6.0-6: nr 0 → decode `CC`: nr 0x1001, ret 0x1001."""
    result = _after_npf(policy, INT3, nrips)
    assert obs(result, "next_rip") == 0x1001
    assert obs(result, "rip") == (0x1000 if nrips else 0x1001)
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "outcome") is Outcome.DELIVERED


def _after_out(policy: PolicyName, nrips: bool) -> Result:
    """EX-22: the last exit was an intercepted `E6 80` at 0x0FFE; KVM skipped to 0x1000 and left nr 0x1000."""
    setup = Setup(rip=0x0FFE, code=(CodeBytes(0x0FFE, b"\xe6\x80\xcc"),))
    steps = (Execute(), Inject(InjectionSource.USERSPACE, BP), Run())
    return run(Program(setup, steps, policy=policy, options=options(nrips=nrips)))


def test_ex22_kvm_5_19_pushes_the_stale_next_rip() -> None:
    """EX-22, K-5.19-9: nr stale 0x1000: ret 0x1000 — the handler returns onto the INT3, which runs again."""
    result = _after_out(KVM_5_19, True)
    assert obs(result, "exit_code") == 0x7B
    assert obs(result, "return_rip") == 0x1000
    assert obs(result, "outcome") is Outcome.DUPLICATED


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex22_stale_next_rip_trusted(policy: PolicyName) -> None:
    """EX-22, K-6.0-26 [D], K-6.19-5: the skip trusts the stale nr: advance 0, ret 0x1000, no opcode check."""
    result = _after_out(policy, True)
    assert obs(result, "next_rip") == 0x1000
    assert obs(result, "return_rip") == 0x1000
    assert not any(t.action.value == "decode" for t in result.trace)
    assert obs(result, "evidence") is Evidence.DERIVED
    assert obs(result, "outcome") is Outcome.DUPLICATED


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex22_nrips0_decodes(policy: PolicyName) -> None:
    """EX-22: `nrips=0` ignores the VMCB nr: decode: RIP 0x1001, nr 0x1001, ret 0x1001."""
    result = _after_out(policy, False)
    assert (obs(result, "rip"), obs(result, "next_rip"), obs(result, "return_rip")) == (0x1001, 0x1001, 0x1001)


def test_ex23_kvm_5_19() -> None:
    """EX-23, K-5.19-9: nr 0: ret 0x0; nrips=0: the MOV is skipped, RIP 0x1003, ret 0x0 (0x1003 without NRIPS)."""
    assert obs(_after_npf(KVM_5_19, MOV_RAX_RCX, True), "return_rip") == 0
    nrips0 = _after_npf(KVM_5_19, MOV_RAX_RCX, False)
    assert (obs(nrips0, "rip"), obs(nrips0, "return_rip")) == (0x1003, 0)
    assert obs(_after_npf(KVM_5_19, MOV_RAX_RCX, False, HardwareProfile.AMD_NO_NRIPS), "return_rip") == 0x1003


@pytest.mark.parametrize("policy", BEFORE_OPCODE_CHECK)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex23_mov_is_skipped(policy: PolicyName, nrips: bool) -> None:
    """EX-23, K-6.0-5: decode MOV → next 0x1003; ret 0x1003: the MOV is never executed."""
    result = _after_npf(policy, MOV_RAX_RCX, nrips)
    assert obs(result, "return_rip") == 0x1003


@pytest.mark.parametrize("policy", OPCODE_CHECK)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex23_opcode_check_drops_the_bp(policy: PolicyName, nrips: bool) -> None:
    """EX-23, K-6.19-3, K-6.19-4: `89` ≠ `CC`: #BP dropped, RIP 0x1000, the MOV runs; the event is lost."""
    result = _after_npf(policy, MOV_RAX_RCX, nrips)
    assert obs(result, "event_inj") == 0
    assert obs(result, "rip") == 0x1000
    assert obs(result, "final_rip") == 0x1003
    assert obs(result, "outcome") is Outcome.LOST


@pytest.mark.parametrize(
    ("policy", "ret", "outcome"),
    [
        (KVM_5_19, 0x0, Outcome.DELIVERED),
        (BEFORE_OPCODE_CHECK[0], 0x4003, Outcome.DELIVERED),
        (OPCODE_CHECK[0], None, Outcome.LOST),
        (OPCODE_CHECK[1], None, Outcome.LOST),
    ],
)
def test_ex24_restored_vcpu_bp_over_a_mov(policy: PolicyName, ret: int | None, outcome: Outcome) -> None:
    """EX-24, K-5.19-9, K-6.0-5, K-6.19-4: ret 0x0 / 0x4003 (MOV skipped) / dropped; control: `CC` → 0x4001."""
    result = inject(BP, policy, code=MOV_RAX_RCX, at=0x4000)
    assert obs(result, "return_rip") == ret
    assert obs(result, "outcome") is outcome
    if policy is not KVM_5_19:
        control = inject(BP, policy, code=INT3, at=0x4000)
        assert obs(control, "return_rip") == 0x4001


@pytest.mark.parametrize("nrips", [True, False])
def test_ex25_kvm_5_19_soft_interrupt_injected_as_intr_twice(nrips: bool) -> None:
    """EX-25, K-5.19-10: type INTR (0x80000080), no DPL check, ret 0x3000; then `CD 80` runs again: twice."""
    result = inject(soft_int(0x80), KVM_5_19, code=b"\xcd\x80", at=0x3000, nrips=nrips)
    assert obs(result, "event_inj") == 0x80000080
    assert obs(result, "return_rip") == 0x3000
    assert obs(result, "delivery_count") == 2
    assert obs(result, "outcome") is Outcome.DUPLICATED


@pytest.mark.parametrize("policy", BEFORE_OPCODE_CHECK)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex25_soft_interrupt_injected_as_soft(policy: PolicyName, nrips: bool) -> None:
    """EX-25, K-5.19-19, K-6.0-7: userspace sets interrupt.soft; inj 0x80000480 (SOFT), next 0x3002, ret 0x3002."""
    result = inject(soft_int(0x80), policy, code=b"\xcd\x80", at=0x3000, nrips=nrips)
    assert obs(result, "event_inj") == 0x80000480
    assert obs(result, "next_rip") == 0x3002
    assert obs(result, "return_rip") == 0x3002
    assert obs(result, "outcome") is Outcome.DELIVERED


@pytest.mark.parametrize("policy", OPCODE_CHECK)
def test_ex25_reading_b_drops_then_the_guest_runs_the_int(policy: PolicyName) -> None:
    """EX-25, K-6.19-4, K-6.19-6 B: dropped; RIP 0x3000; the guest executes `CD 80` itself (once, ret 0x3002)."""
    result = inject(soft_int(0x80), policy, code=b"\xcd\x80", at=0x3000)
    assert obs(result, "event_inj") == 0
    assert obs(result, "delivery_count") == 1
    assert obs(result, "return_rip") == 0x3002
    assert obs(result, "outcome") is Outcome.DROPPED
    assert obs(result, "confirmed") is False


def test_ex26_kvm_5_19_bug_on_with_gif_0() -> None:
    """EX-26, K-5.19-10: BUG_ON in the interrupt hook: host kernel oops."""
    result = inject(Event(0x30, EventType.INTR), KVM_5_19, gif=False)
    assert obs(result, "outcome") is Outcome.HOST_BUG
    assert result.vmruns == ()


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex26_no_bug_with_gif_0(policy: PolicyName) -> None:
    """EX-26, K-6.0-7: no BUG; EVENTINJ written."""
    result = inject(Event(0x30, EventType.INTR), policy, gif=False)
    assert obs(result, "outcome") is not Outcome.HOST_BUG
    assert obs(result, "event_inj") == 0x80000030
    assert obs(result, "delivered") == 0x30
    _ = Vector
