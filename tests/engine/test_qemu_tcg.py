"""QEMU TCG's software AMD-V, rules Q-1 … Q-9 (hardware.md § 12), checked through the qemu-tcg profile."""

from __future__ import annotations

from dsl.engine import (
    CodeBytes,
    Event,
    Execute,
    ExitFor,
    IdtGate,
    Inject,
    Program,
    Result,
    Setup,
    VectoringFault,
    run,
)
from dsl.engine.vocab import (
    EventType,
    ExitCode,
    FaultKind,
    HardwareProfile,
    InjectionSource,
    Level,
    Vector,
)

from .builders import ARCHITECTURAL, INT3, KVM_6_0, cut_short, execute_cut_short, inject, obs

QEMU = HardwareProfile.QEMU_TCG
CPUID = b"\x0f\xa2"


def guest(code: bytes, steps: tuple[object, ...], *, profile: HardwareProfile = QEMU) -> Result:
    program = Program(Setup(code=(CodeBytes(0x1000, code),)), steps, profile, KVM_6_0)  # type: ignore[arg-type]
    return run(program)


# -- QEMU TCG (Q-1 … Q-9) ------------------------------------------------------------------------------------


def test_q1_q2_qemu_has_no_nrips_and_pushes_rip() -> None:
    """Q-1, Q-2, K-5.19-1: effective nrips 0 (committing skip); VMRUN pushes the advanced RIP."""
    result = execute_cut_short(INT3, KVM_6_0, profile=QEMU)
    assert obs(result, "rip") == 0x1001
    assert obs(result, "return_rip") == 0x1001


def test_q2_type3_injection_is_fault_style_without_dpl_check() -> None:
    """Q-2: QEMU delivers an injected #BP without the DPL check (hardware would raise #GP at CPL 3)."""
    result = inject(
        Event(Vector.BP, EventType.EXCEPTION), ARCHITECTURAL, idt=(IdtGate(Vector.BP, dpl=0),), cpl=3, profile=QEMU
    )
    assert obs(result, "delivered") == Vector.BP


def test_q3_exits_never_write_next_rip() -> None:
    """Q-3: an intercepted CPUID leaves next_rip alone."""
    assert obs(guest(CPUID, (Execute(),), profile=QEMU), "exit_next_rip") == 0


def test_q4_int3_reported_as_soft_and_requeued_as_interrupt() -> None:
    """Q-4 [I]: INT3 reported 0x80000403; KVM requeues a soft interrupt (Soft/INTn 0x3); same return address."""
    result = execute_cut_short(INT3, KVM_6_0, profile=QEMU)
    assert obs(result, "exit_int_info") == 0x80000403
    assert "kvm_inj_virq: Soft/INTn 0x3 [reinjected]" in result.tracepoints
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "confirmed") is False


def test_q5_exitintinfo_keeps_the_first_event() -> None:
    """Q-5: a guest #PF during the INT3's delivery, then an intercepted #PF: QEMU reports the INT3, AMD the #PF."""
    steps = (
        VectoringFault(FaultKind.PF, Level.GUEST, error_code=2, during=Vector.BP),
        VectoringFault(FaultKind.PF, Level.L0, during=Vector.PF),
        Execute(),
    )
    assert obs(guest(INT3, steps, profile=QEMU), "exit_int_info") == 0x80000403
    assert obs(guest(INT3, steps, profile=HardwareProfile.AMD_NRIPS), "exit_int_info") == 0x80000B0E


def test_q6_stale_bits_with_v_clear() -> None:
    """Q-6, Q-8: after a completed INT3 delivery an INTR exit reports 0x00000403 (V = 0)."""
    result = guest(INT3, (Execute(), ExitFor(ExitCode.INTR)), profile=QEMU)
    assert obs(result, "exit_int_info") == 0x00000403


def test_q7_injected_event_cut_short_is_reported() -> None:
    """Q-7: an injected #PF whose delivery exits is reported (0x80000b0e)."""
    result = inject(
        Event(Vector.PF, EventType.EXCEPTION, 2), KVM_6_0, profile=QEMU, before=(), after=(cut_short(FaultKind.NPF),)
    )
    assert obs(result, "exit_int_info") == 0x80000B0E


def test_q9_only_no_nrips_paths_run_on_qemu() -> None:
    """Q-9 [I]: on qemu-tcg an INT n re-injection takes the nrips=0 path (unwind on a second exit)."""
    result = execute_cut_short(b"\xcd\x80", KVM_6_0, profile=QEMU, faults=2)
    assert any(t.rule == "K-6.0-11" for t in result.trace)
    assert obs(result, "return_rip") == 0x1002
    _ = (InjectionSource, Inject)
