"""The `bhyve` policy (other-hypervisors.md § 4): re-inject every EXITINTINFO verbatim, never write NextRIP."""

from __future__ import annotations

import pytest

from dsl.engine import CodeBytes, Execute, IdtGate, Inject, L1Vmrun, PolicyOptions, Program, Result, Run, Setup, run
from dsl.engine.program import Step
from dsl.engine.vocab import (
    CpuMode,
    Evidence,
    ExitCode,
    FaultKind,
    HardwareProfile,
    InjectionSource,
    Outcome,
    PagingMode,
    PolicyName,
    Vector,
)

from .builders import BP, INT3, INTO, execute_cut_short, inject, nesting, obs, options, soft_int

BHYVE = PolicyName.BHYVE
NPT = options(npt=True)
INT_0X80 = b"\xcd\x80"
HLT = b"\xf4"


def after_npf(code: bytes, **kw: object) -> Result:
    """`code` at 0x1000 whose delivery is cut short by an #NPF (bhyve always uses nested paging)."""
    return execute_cut_short(code, BHYVE, fault=FaultKind.NPF, opts=NPT, **kw)  # type: ignore[arg-type]


# -- what bhyve runs on ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("profile", "paging"),
    [
        (HardwareProfile.AMD_NO_NRIPS, PagingMode.NPT),
        (HardwareProfile.QEMU_TCG, PagingMode.NPT),
        (HardwareProfile.AMD_NRIPS, PagingMode.SHADOW),
    ],
)
def test_vmm_requires_nrip_save_and_nested_paging(profile: HardwareProfile, paging: PagingMode) -> None:
    """BHYVE-1 (svm.c check_svm_features): bhyve loads only on CPUs with NRIP Save and Nested Paging."""
    program = Program(
        Setup(code=(CodeBytes(0x1000, INT3),)), (Execute(),), profile, BHYVE, PolicyOptions(paging=paging)
    )
    assert obs(run(program), "outcome") is Outcome.UNSUPPORTED


def test_bhyve_6_no_nested_svm() -> None:
    """BHYVE-6: nested SVM is not upstream: a nested set-up is refused."""
    setup = Setup(rip=0, nesting=nesting())
    result = run(Program(setup, (L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002), Run()), policy=BHYVE))
    assert obs(result, "outcome") is Outcome.UNSUPPORTED


# -- BHYVE-2: re-injection verbatim ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "mode", "rflags", "info"),
    [
        (INT3, CpuMode.LONG_64, 0x202, 0x80000303),
        (INTO, CpuMode.PROTECTED_32, 0xA02, 0x80000304),
        (INT_0X80, CpuMode.PROTECTED_32, 0x202, 0x80000480),
    ],
)
def test_bhyve_2_every_event_is_re_injected_verbatim(code: bytes, mode: CpuMode, rflags: int, info: int) -> None:
    """BHYVE-2: software events included, EXITINTINFO becomes EVENTINJ unchanged (INT n stays type 4)."""
    result = after_npf(code, mode=mode, rflags=rflags)
    assert obs(result, "exit_int_info") == info
    assert obs(result, "requeued_event") == info
    assert obs(result, "event_inj") == info
    assert obs(result, "outcome") is Outcome.REINJECT


def test_bhyve_2_hardware_exception_keeps_its_error_code() -> None:
    """BHYVE-2, H-16: #NP(0x402) raised by INT 0x80 is re-injected with its error code; no NextRIP issue."""
    result = after_npf(INT_0X80, mode=CpuMode.PROTECTED_32, idt=(IdtGate(0x80, present=False),), during=Vector.NP)
    assert obs(result, "event_inj") == 0x80000B0B
    assert obs(result, "event_inj_err") == 0x402
    assert obs(result, "return_rip") == 0x1000
    assert obs(result, "confirmed") is True


# -- BHYVE-3: NextRIP never written ---------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [INT3, INT_0X80])
def test_bhyve_3_re_injected_soft_event_returns_to_0(code: bytes) -> None:
    """BHYVE-3 [I], H-12: the #NPF cleared NextRIP and bhyve never writes it: the CPU pushes 0."""
    result = after_npf(code)
    assert obs(result, "exit_next_rip") == 0
    assert obs(result, "next_rip") == 0
    assert obs(result, "return_rip") == 0
    assert obs(result, "evidence") is Evidence.INFERRED
    assert obs(result, "confirmed") is False


# -- BHYVE-1, BHYVE-4: instruction lengths and #BP exits --------------------------------------------------------------


def test_bhyve_1_intercepted_instruction_uses_next_rip() -> None:
    """BHYVE-1: inst_length = NextRIP − RIP for an intercepted HLT: RIP 0x1001."""
    result = run(Program(Setup(code=(CodeBytes(0x1000, HLT),)), (Execute(), Execute()), policy=BHYVE, options=NPT))
    assert obs(result, "exit_code") == ExitCode.HLT
    assert result.vmruns[-1].rip == 0x1001
    assert any(t.rule == "BHYVE-1" and "inst_length 1" in t.message for t in result.trace)


def test_bhyve_4_bp_exit_goes_to_userspace_and_re_injection_reuses_next_rip() -> None:
    """BHYVE-4, BHYVE-3 [I]: VM_EXITCODE_BPT with inst_length 1; the re-injected #BP pushes the exit's NextRIP."""
    setup = Setup(code=(CodeBytes(0x1000, INT3),))
    steps: tuple[Step, ...] = (Execute(), Inject(InjectionSource.USERSPACE, BP), Run())
    result = run(Program(setup, steps, policy=BHYVE, options=options(npt=True, guest_debug=True)))
    assert obs(result, "exit_code") == ExitCode.EXCP_BP
    assert obs(result, "debug_exits") == 1
    assert any(t.rule == "BHYVE-4" and "inst_length 1" in t.message for t in result.trace)
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "next_rip") == 0x1001
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "confirmed") is False


def test_userspace_soft_interrupt_is_not_described() -> None:
    """BHYVE-2: bhyve's userspace has no way to inject INT n that the specification describes: unspecified."""
    result = inject(soft_int(0x21), BHYVE, opts=NPT)
    assert obs(result, "outcome") is Outcome.UNSPECIFIED
