"""The `virtualbox` policy (other-hypervisors.md § 3): retry INT n; INT3/INTO retried on exception exits and
re-injected without NextRIP after other exits."""

from __future__ import annotations

import pytest

from dsl.engine import CancelEntry, CodeBytes, Execute, IdtGate, L1Vmrun, Program, Result, Run, SaveRestore, Setup, run
from dsl.engine.policies.virtualbox import is_exception_exit
from dsl.engine.program import Step
from dsl.engine.vocab import CpuMode, Evidence, ExitCode, FaultKind, HardwareProfile, Level, Outcome, PolicyName, Vector

from .builders import BP, INT3, INTO, cut_short, execute_cut_short, inject, nesting, obs, options

VBOX = PolicyName.VIRTUALBOX
NO_NRIPS = HardwareProfile.AMD_NO_NRIPS
INT_0X80 = b"\xcd\x80"
HLT = b"\xf4"


def after_npf(code: bytes, profile: HardwareProfile = HardwareProfile.AMD_NRIPS, **kw: object) -> Result:
    """`code` at 0x1000 whose delivery is cut short by an #NPF (npt=1, exit 0x400): a non-exception exit."""
    return execute_cut_short(code, VBOX, fault=FaultKind.NPF, opts=options(npt=True), profile=profile, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("exit_code", "exception"),
    [(ExitCode.EXCP_PF, True), (ExitCode.EXCP_NP, True), (ExitCode.NPF, False), (ExitCode.INTR, False)],
)
def test_exception_exits_are_0x40_to_0x5f(exit_code: ExitCode, exception: bool) -> None:
    """VBOX-1, VBOX-2: which path an exit takes depends on whether it is an exception intercept."""
    assert is_exception_exit(exit_code) is exception


# -- VBOX-1: exception exits re-execute INT3/INTO (and INT n) --------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "mode", "rflags", "info"),
    [(INT3, CpuMode.LONG_64, 0x202, 0x80000303), (INTO, CpuMode.PROTECTED_32, 0xA02, 0x80000304)],
)
def test_ex01_int3_into_after_shadow_pf_are_retried(code: bytes, mode: CpuMode, rflags: int, info: int) -> None:
    """EX-01 story, VBOX-1: a #PF intercept is an exception exit: INT3 / INTO are re-executed (ret 0x1001)."""
    result = execute_cut_short(code, VBOX, mode=mode, rflags=rflags)
    assert obs(result, "exit_int_info") == info
    assert obs(result, "requeued") is False
    assert obs(result, "event_inj") == 0
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "outcome") is Outcome.RETRY
    assert obs(result, "confirmed") is True


def test_ex04_int_0x80_after_shadow_pf_is_retried() -> None:
    """EX-04 story, VBOX-1: INT 0x80 cut short by a #PF intercept is re-executed: ret 0x3002."""
    result = execute_cut_short(INT_0X80, VBOX, at=0x3000, mode=CpuMode.PROTECTED_32)
    assert obs(result, "event_inj") == 0
    assert obs(result, "return_rip") == 0x3002
    assert obs(result, "outcome") is Outcome.RETRY


def test_vbox_1_hardware_exception_is_re_injected() -> None:
    """VBOX-1, H-16: #NP(0x402) raised by INT 0x80, cut short by a #PF intercept, is re-injected with its code."""
    result = execute_cut_short(
        INT_0X80, VBOX, at=0x3000, mode=CpuMode.PROTECTED_32, idt=(IdtGate(0x80, present=False),), during=Vector.NP
    )
    assert obs(result, "event_inj") == 0x80000B0B
    assert obs(result, "event_inj_err") == 0x402
    assert obs(result, "delivered") == Vector.NP
    assert obs(result, "return_rip") == 0x3000
    assert obs(result, "confirmed") is True


# -- VBOX-2: non-exception exits re-execute INT n only -----------------------------------------------------------------


def test_ex04_int_0x80_after_npf_is_retried() -> None:
    """EX-04 story, VBOX-2: type 4 after an #NPF is re-executed, never re-injected."""
    result = after_npf(INT_0X80, at=0x3000, mode=CpuMode.PROTECTED_32)
    assert obs(result, "exit_int_info") == 0x80000480
    assert obs(result, "event_inj") == 0
    assert obs(result, "return_rip") == 0x3002
    assert obs(result, "outcome") is Outcome.RETRY


def test_int3_after_npf_is_re_injected_with_next_rip_0() -> None:
    """VBOX-2, VBOX-3 [I]: #BP after an #NPF is re-injected with no NextRIP written: the CPU pushes 0."""
    result = after_npf(INT3)
    assert obs(result, "exit_next_rip") == 0
    assert obs(result, "requeued_event") == 0x80000303
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "next_rip") == 0
    assert obs(result, "return_rip") == 0
    assert obs(result, "outcome") is Outcome.REINJECT
    assert obs(result, "evidence") is Evidence.INFERRED
    assert obs(result, "confirmed") is False


def test_into_after_npf_is_re_injected_with_next_rip_0() -> None:
    """EX-03 story, VBOX-2, VBOX-3 [I]: #OF after an #NPF on the IDT page: re-injected, ret 0, not 0x2001."""
    result = after_npf(INTO, at=0x2000, mode=CpuMode.PROTECTED_32, rflags=0xA02)
    assert obs(result, "event_inj") == 0x80000304
    assert obs(result, "return_rip") == 0
    assert obs(result, "confirmed") is False


# -- VBOX-3: EVENTINJ only ---------------------------------------------------------------------------------------------


def test_vbox_3_without_nrips_the_int3_is_duplicated() -> None:
    """VBOX-3 [I], H-6: without NRIPS the CPU pushes RIP (the INT3 itself): the handler returns onto it, twice."""
    result = after_npf(INT3, profile=NO_NRIPS)
    assert obs(result, "return_rip") == 0x1000
    assert obs(result, "delivery_count") == 2
    assert obs(result, "outcome") is Outcome.DUPLICATED
    assert obs(result, "confirmed") is False


def test_vbox_3_injected_bp_pushes_whatever_next_rip_holds() -> None:
    """VBOX-3 [I]: a userspace #BP gets no NextRIP either: a stale NextRIP 0x1234 is pushed as is."""
    result = inject(BP, VBOX, vmcb_next_rip=0x1234)
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "next_rip") == 0x1234
    assert obs(result, "return_rip") == 0x1234
    assert obs(result, "confirmed") is False


# -- VBOX-5: instruction lengths ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "how"), [(HardwareProfile.AMD_NRIPS, "NextRIP"), (NO_NRIPS, "IEM: hlt")])
def test_vbox_5_intercepted_instruction_length(profile: HardwareProfile, how: str) -> None:
    """VBOX-5: NextRIP − RIP with NRIPS, otherwise IEM executes the instruction; either way RIP 0x1001."""
    result = run(Program(Setup(code=(CodeBytes(0x1000, HLT),)), (Execute(), Execute()), profile, VBOX))
    assert obs(result, "exit_code") == ExitCode.HLT
    assert result.vmruns[-1].rip == 0x1001
    assert any(t.rule == "VBOX-5" and how in t.message for t in result.trace)


# -- VBOX-6: nested SVM in IEM --------------------------------------------------------------------------------------


def nested(steps: tuple[Step, ...], profile: HardwareProfile = HardwareProfile.AMD_NRIPS, **kw: object) -> Result:
    setup = Setup(rip=0x1000, code=(CodeBytes(0x1000, INT3),), nesting=nesting(**kw))
    return run(Program(setup, steps, profile, VBOX))


def test_ex40_story_l1_next_rip_not_honoured() -> None:
    """EX-40 story, VBOX-6 [I]: L1's NextRIP 0x5002 is not honoured: the CPU pushes vmcb02's NextRIP (0)."""
    result = nested((L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002), Run()))
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "return_rip") == 0
    assert obs(result, "confirmed") is False


def test_vbox_6_reflected_exitintinfo_reports_int3_as_type_3() -> None:
    """VBOX-6, Q-4: on QEMU TCG the CPU reports the L2 INT3 as type 4; IEM synthesises type 3 for L1."""
    steps: tuple[Step, ...] = (L1Vmrun(rip=0x1000), cut_short(FaultKind.PF, by=Level.L1), Execute(), Run())
    result = nested(steps, HardwareProfile.QEMU_TCG, intercepted_exceptions=(Vector.PF,))
    assert obs(result, "exit_int_info") == 0x80000403
    assert obs(result, "vmcb12_exit_int_info") == 0x80000303
    assert obs(result, "outcome") is Outcome.REFLECTED


def test_nested_save_restore_is_not_described_for_virtualbox() -> None:
    """VBOX-6: KVM_SET_NESTED_STATE has no VirtualBox counterpart in the specification: unspecified."""
    result = nested((L1Vmrun(event_inj=0x80000420, rip=0x2002), SaveRestore(), Run()))
    assert obs(result, "outcome") is Outcome.UNSPECIFIED


def test_cancelled_entry_keeps_eventinj_unconfirmed() -> None:
    """VBOX-3: an entry abandoned after injection is not described: EVENTINJ stays; the outcome is unconfirmed."""
    result = inject(BP, VBOX, after=(CancelEntry(),), vmcb_next_rip=0x1001)
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "delivery_count") == 1
    assert obs(result, "confirmed") is False


def test_on_qemu_tcg_int3_looks_like_int_n_and_is_retried_after_npf() -> None:
    """Q-4, VBOX-2: QEMU TCG reports the INT3 as type 4 (0x80000403), so VirtualBox re-executes it after an #NPF."""
    result = after_npf(INT3, profile=HardwareProfile.QEMU_TCG)
    assert obs(result, "exit_int_info") == 0x80000403
    assert obs(result, "requeued") is False
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "outcome") is Outcome.RETRY
