"""Worked examples EX-01 … EX-12 (examples.md § A-C): guest soft events whose delivery is cut short; EX-13 …
EX-18 are in test_examples_completion."""

from __future__ import annotations

import pytest

from dsl.engine import CodeBytes
from dsl.engine.vocab import CpuMode, Evidence, FaultKind, Outcome, PolicyName, SoftIntReading, Vector

from .builders import (
    BEFORE_OPCODE_CHECK,
    INT3,
    INTO,
    KVM_5_19,
    MOV_RAX_RCX,
    OPCODE_CHECK,
    REINJECTING,
    cut_short,
    execute_cut_short,
    obs,
    options,
)

RFLAGS_OF = 0x202 | 0x800


@pytest.mark.parametrize("nrips", [True, False])
def test_ex01_kvm_5_19_retries_the_int3(nrips: bool) -> None:
    """EX-01, K-5.19-12, K-5.19-14, K-5.19-21: the completion does not requeue; the guest re-executes INT3."""
    result = execute_cut_short(INT3, KVM_5_19, nrips=nrips)
    assert obs(result, "exit_code") == 0x4E
    assert obs(result, "exit_int_info") == 0x80000303
    assert obs(result, "exit_next_rip") == 0
    assert obs(result, "exit_rip") == 0x1000
    assert obs(result, "requeued") is False
    assert obs(result, "event_inj") == 0
    assert obs(result, "outcome") is Outcome.RETRY
    assert obs(result, "return_rip") == 0x1001
    assert result.deliveries[0].injected is False


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex01_nrips_look_ahead_skip_reinjects(policy: PolicyName) -> None:
    """EX-01, K-6.0-5, K-6.0-6, K-6.0-14, K-6.0-17, K-6.0-18: look-ahead decode (the decoder clears the queue,
    harmlessly), RIP kept, nr 0x1001, #BP [reinjected]."""
    result = execute_cut_short(INT3, policy, nrips=True)
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "event_inj_err") == 0
    assert obs(result, "next_rip") == 0x1001
    assert obs(result, "rip") == 0x1000
    assert obs(result, "return_rip") == 0x1001
    assert (obs(result, "soft_int_old_rip"), obs(result, "soft_int_next_rip"), obs(result, "soft_int_csbase")) == (
        0x1000,
        0x1001,
        0,
    )
    assert obs(result, "outcome") is Outcome.REINJECT
    assert "kvm_inj_exception: #BP [reinjected]" in result.tracepoints


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex01_nrips0_commits_the_skip(policy: PolicyName) -> None:
    """EX-01, K-6.0-3, K-6.0-16: committing skip: RIP 0x1001, nr 0x1001 (CPU has NRIPS), ret 0x1001."""
    result = execute_cut_short(INT3, policy, nrips=False, rflags=0x202 | 0x10000)
    assert obs(result, "rip") == 0x1001
    assert obs(result, "next_rip") == 0x1001
    assert obs(result, "rf") is False
    assert obs(result, "return_rip") == 0x1001


def test_ex01_cpu_without_nrips_pushes_the_advanced_rip() -> None:
    """EX-01, K-6.0-32: no NRIPS: next_rip untouched, the CPU pushes RIP 0x1001."""
    from dsl.engine.vocab import HardwareProfile

    result = execute_cut_short(INT3, REINJECTING[0], nrips=True, profile=HardwareProfile.AMD_NO_NRIPS)
    assert obs(result, "next_rip") == 0
    assert obs(result, "rip") == 0x1001
    assert obs(result, "return_rip") == 0x1001


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex02_second_exit_restuffs_next_rip(policy: PolicyName) -> None:
    """EX-02, K-5.19-18, K-6.0-10, K-6.0-13, K-6.19-5: re-stuff nr 0x1001; the requeued event goes first,
    re-injected without decoding."""
    result = execute_cut_short(INT3, policy, faults=2)
    decodes = [t for t in result.trace if t.action.value == "decode"]
    assert len(decodes) == 1
    assert any(t.rule == "K-6.0-10" for t in result.trace)
    assert len(result.requeued) == 2
    assert obs(result, "next_rip") == 0x1001
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "outcome") is Outcome.REINJECT


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex02_nrips0_unwinds_then_decodes_again(policy: PolicyName) -> None:
    """EX-02, K-6.0-11: unwind RIP to 0x1000; the next entry decodes and skips again: ret 0x1001."""
    result = execute_cut_short(INT3, policy, nrips=False, faults=2)
    assert any(t.rule == "K-6.0-11" for t in result.trace)
    assert len([t for t in result.trace if t.action.value == "decode"]) == 2
    assert obs(result, "rip") == 0x1001
    assert obs(result, "return_rip") == 0x1001


def test_ex02_kvm_5_19_retries_twice() -> None:
    """EX-02: no re-injection exists in kvm-5.19; a second native retry."""
    result = execute_cut_short(INT3, KVM_5_19, faults=2)
    assert len(result.exits) == 2
    assert obs(result, "outcome") is Outcome.RETRY
    assert obs(result, "delivery_count") == 1


@pytest.mark.parametrize("policy", REINJECTING)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex03_into_in_32_bit_code_npf_on_the_idt(policy: PolicyName, nrips: bool) -> None:
    """EX-03, H-4, H-23, K-6.0-14: #OF requeued, decode `CE` → 0x2001 (OF not re-tested), inj 0x80000304."""
    result = execute_cut_short(
        INTO,
        policy,
        at=0x2000,
        mode=CpuMode.PROTECTED_32,
        nrips=nrips,
        rflags=RFLAGS_OF,
        fault=FaultKind.NPF,
        opts=options(nrips=nrips, npt=True),
    )
    assert obs(result, "exit_code") == 0x400
    assert obs(result, "exit_int_info") == 0x80000304
    assert obs(result, "event_inj") == 0x80000304
    assert obs(result, "next_rip") == 0x2001
    assert obs(result, "rip") == (0x2000 if nrips else 0x2001)
    assert obs(result, "return_rip") == 0x2001


def test_ex03_kvm_5_19_reexecutes_into() -> None:
    """EX-03: INTO re-executed (OF re-tested, still 1); ret 0x2001."""
    result = execute_cut_short(INTO, KVM_5_19, at=0x2000, mode=CpuMode.PROTECTED_32, rflags=RFLAGS_OF)
    assert obs(result, "outcome") is Outcome.RETRY
    assert obs(result, "return_rip") == 0x2001
    assert obs(result, "delivered") == Vector.OF


@pytest.mark.parametrize("policy", BEFORE_OPCODE_CHECK)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex04_int_0x80_requeued_as_soft_interrupt(policy: PolicyName, nrips: bool) -> None:
    """EX-04, K-6.0-7, K-6.0-9, K-6.0-18: RQ as soft interrupt, inj 0x80000480, nr 0x3002, ret 0x3002."""
    result = execute_cut_short(b"\xcd\x80", policy, at=0x3000, mode=CpuMode.PROTECTED_32, nrips=nrips)
    assert obs(result, "exit_int_info") == 0x80000480
    assert obs(result, "event_inj") == 0x80000480
    assert obs(result, "next_rip") == 0x3002
    assert obs(result, "rip") == (0x3000 if nrips else 0x3002)
    assert obs(result, "return_rip") == 0x3002
    assert "kvm_inj_virq: Soft/INTn 0x80 [reinjected]" in result.tracepoints


def test_ex04_kvm_5_19_drops_the_soft_interrupt() -> None:
    """EX-04, K-5.19-16: SOFT dropped; INT n re-executed; ret 0x3002."""
    result = execute_cut_short(b"\xcd\x80", KVM_5_19, at=0x3000, mode=CpuMode.PROTECTED_32)
    assert obs(result, "requeued") is False
    assert obs(result, "outcome") is Outcome.RETRY
    assert obs(result, "return_rip") == 0x3002


@pytest.mark.parametrize("policy", OPCODE_CHECK)
def test_ex04_opcode_check_reading_b_drops_int_0x80(policy: PolicyName) -> None:
    """EX-04, K-6.19-4, K-6.19-6 reading B: `CD 80` never matches vector 0x80: drop, retry, ret 0x3002 [I]."""
    result = execute_cut_short(b"\xcd\x80", policy, at=0x3000, mode=CpuMode.PROTECTED_32)
    assert obs(result, "event_inj") == 0
    assert obs(result, "rip") == 0x3000
    assert obs(result, "outcome") is Outcome.DROPPED
    assert obs(result, "return_rip") == 0x3002
    assert obs(result, "evidence") is Evidence.INFERRED
    assert obs(result, "confirmed") is False


@pytest.mark.parametrize("policy", OPCODE_CHECK)
def test_ex04_dropped_int_0x80_is_not_traced(policy: PolicyName) -> None:
    """K-6.0-7, K-6.19-4: svm_inject_irq returns before trace_kvm_inj_virq when the skip fails: no kvm_inj_virq."""
    result = execute_cut_short(b"\xcd\x80", policy, at=0x3000, mode=CpuMode.PROTECTED_32)
    assert not [line for line in result.tracepoints if line.startswith("kvm_inj_virq")]


@pytest.mark.parametrize("policy", OPCODE_CHECK)
def test_ex04_opcode_check_reading_a_reinjects_int_0x80(policy: PolicyName) -> None:
    """EX-04, K-6.19-6 reading A: as kvm-6.0, still predicted (the rule is [I])."""
    result = execute_cut_short(
        b"\xcd\x80",
        policy,
        at=0x3000,
        mode=CpuMode.PROTECTED_32,
        opts=options(reading=SoftIntReading.A),
    )
    assert obs(result, "event_inj") == 0x80000480
    assert obs(result, "return_rip") == 0x3002
    assert obs(result, "outcome") is Outcome.REINJECT
    assert obs(result, "evidence") is Evidence.INFERRED


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex05_int3_unchanged_control(policy: PolicyName) -> None:
    """EX-05, K-6.0-14, K-6.19-3: decode `CC`, nr 0x1001, inj 0x80000303, frame RIP 0x1001."""
    result = execute_cut_short(INT3, policy)
    assert (obs(result, "next_rip"), obs(result, "event_inj"), obs(result, "return_rip")) == (
        0x1001,
        0x80000303,
        0x1001,
    )
    assert obs(result, "confirmed") is True


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex06_into_32_bit_unchanged_control(policy: PolicyName) -> None:
    """EX-06, K-6.0-6: nr 0x1001, inj 0x80000304, ret 0x1001."""
    result = execute_cut_short(INTO, policy, mode=CpuMode.PROTECTED_32, rflags=RFLAGS_OF)
    assert (obs(result, "next_rip"), obs(result, "event_inj"), obs(result, "return_rip")) == (
        0x1001,
        0x80000304,
        0x1001,
    )


@pytest.mark.parametrize("policy", BEFORE_OPCODE_CHECK)
def test_ex07_int_0x80_at_0x08048000(policy: PolicyName) -> None:
    """EX-07, K-6.0-7: RIP 0x08048000, nr 0x08048002, inj 0x80000480, ret 0x08048002."""
    result = execute_cut_short(b"\xcd\x80", policy, at=0x08048000, mode=CpuMode.PROTECTED_32)
    assert obs(result, "rip") == 0x08048000
    assert obs(result, "next_rip") == 0x08048002
    assert obs(result, "return_rip") == 0x08048002


def test_ex07_reading_b_refires_a_code_breakpoint() -> None:
    """EX-07, H-37, K-6.19-6 B: the INT 80h is re-executed, so a DR7 breakpoint on it fires again."""
    from dsl.engine import CodeBreakpoint, Program, Run, Setup, run

    from .builders import KVM_6_19

    setup = Setup(
        mode=CpuMode.PROTECTED_32,
        rip=0x08048000,
        code=(CodeBytes(0x08048000, b"\xcd\x80"),),
        breakpoints=(CodeBreakpoint(0, 0x08048000),),
    )
    program = Program(setup, (cut_short(during=0x80), Run()), policy=KVM_6_19)
    result = run(program)
    assert obs(result, "spurious_db") is True
    assert obs(result, "outcome") is Outcome.DROPPED


@pytest.mark.parametrize("policy", BEFORE_OPCODE_CHECK)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex08_prefixed_int_0x80(policy: PolicyName, nrips: bool) -> None:
    """EX-08, H-26: the decoder consumes the `2E` prefix: nr 0x3003, ret 0x3003."""
    result = execute_cut_short(b"\x2e\xcd\x80", policy, at=0x3000, nrips=nrips)
    assert obs(result, "next_rip") == 0x3003
    assert obs(result, "return_rip") == 0x3003


def test_ex08_kvm_5_19_and_reading_b() -> None:
    """EX-08: kvm-5.19 retries (ret 0x3003); kvm-6.19 reading B drops and retries (RIP 0x3000)."""
    from .builders import KVM_6_19

    assert obs(execute_cut_short(b"\x2e\xcd\x80", KVM_5_19, at=0x3000), "return_rip") == 0x3003
    dropped = execute_cut_short(b"\x2e\xcd\x80", KVM_6_19, at=0x3000)
    assert obs(dropped, "outcome") is Outcome.DROPPED
    assert obs(dropped, "rip") == 0x3000


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex09_cd03_is_a_soft_interrupt_not_bp(policy: PolicyName) -> None:
    """EX-09, H-4, K-6.0-7: `CD 03` reported 0x80000403, re-injected as a soft interrupt, ret 0x1002."""
    result = execute_cut_short(b"\xcd\x03", policy)
    assert obs(result, "exit_int_info") == 0x80000403
    assert obs(result, "event_inj") == 0x80000403
    assert obs(result, "next_rip") == 0x1002
    assert obs(result, "return_rip") == 0x1002
    assert "kvm_inj_virq: Soft/INTn 0x3 [reinjected]" in result.tracepoints


@pytest.mark.parametrize("policy", REINJECTING)
@pytest.mark.parametrize("nrips", [True, False])
def test_ex10_ex11_prefixed_int3(policy: PolicyName, nrips: bool) -> None:
    """EX-10, EX-11, H-26, K-6.19-7: `26 CC` decodes as 2 bytes: nr 0x1002, ret 0x1002."""
    result = execute_cut_short(b"\x26\xcc", policy, nrips=nrips)
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "next_rip") == 0x1002
    assert obs(result, "return_rip") == 0x1002


def test_ex10_kvm_5_19_retry_returns_after_the_prefix() -> None:
    """EX-10: retry; ret 0x1002."""
    result = execute_cut_short(b"\x26\xcc", KVM_5_19)
    assert obs(result, "outcome") is Outcome.RETRY
    assert obs(result, "return_rip") == 0x1002


@pytest.mark.parametrize("policy", REINJECTING)
def test_ex12_nonzero_cs_base_in_64_bit_mode_nrips1_only_decodes_again(policy: PolicyName) -> None:
    """EX-12, H-31, K-5.19-4, K-6.0-28: no re-stuff (0x1000 vs 0x11000); decode again; ret 0x1001 [D]."""
    result = execute_cut_short(INT3, policy, cs_base=0x10000, faults=2, more_code=(CodeBytes(0x1001, MOV_RAX_RCX),))
    assert not any(t.rule == "K-6.0-10" for t in result.trace)
    assert len([t for t in result.trace if t.action.value == "decode"]) == 2
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "evidence") is Evidence.DERIVED


@pytest.mark.parametrize("policy", BEFORE_OPCODE_CHECK)
def test_ex12_nrips0_skips_twice(policy: PolicyName) -> None:
    """EX-12, K-6.0-28: no unwind; the re-injection skips again: RIP 0x1004, nr 0x1004, ret 0x1004."""
    result = execute_cut_short(
        INT3,
        policy,
        nrips=False,
        cs_base=0x10000,
        faults=2,
        more_code=(CodeBytes(0x1001, MOV_RAX_RCX),),
    )
    assert obs(result, "rip") == 0x1004
    assert obs(result, "next_rip") == 0x1004
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "return_rip") == 0x1004


@pytest.mark.parametrize("policy", OPCODE_CHECK)
def test_ex12_nrips0_opcode_check_loses_the_bp(policy: PolicyName) -> None:
    """EX-12, K-6.19-4: decode `48 89 C8` at 0x1001: `89` ≠ `CC` → drop; #BP lost; the MOV runs."""
    result = execute_cut_short(
        INT3,
        policy,
        nrips=False,
        cs_base=0x10000,
        faults=2,
        more_code=(CodeBytes(0x1001, MOV_RAX_RCX),),
    )
    assert obs(result, "outcome") is Outcome.LOST
    assert obs(result, "delivery_count") == 0
    assert obs(result, "final_rip") == 0x1001  # the guest continues at the MOV
