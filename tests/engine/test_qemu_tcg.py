"""QEMU TCG's software AMD-V through the qemu-tcg profile: Q-1 … Q-9 (hardware.md § 12), Q-10 … Q-12 (observed)."""

from __future__ import annotations

from dsl.engine import (
    CodeBreakpoint,
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


# -- observed on QEMU 7.2 by the real-KVM backend (Q-10 … Q-12, profiles.py) ---------------------------------------


def test_q10_icebp_is_compiled_out_and_raises_ud() -> None:
    """Q-10: `F1` raises #UD at the ICEBP under TCG; KVM intercepts it and injects #UD (K-UD)."""
    result = guest(b"\xf1", (Execute(), Execute()))
    assert result.exits[0].exit_code == ExitCode.EXCP_UD
    assert (result.deliveries[0].vector, result.deliveries[0].return_rip) == (Vector.UD, 0x1000)


def test_q10_icebp_on_hardware_raises_db() -> None:
    """H-24: on an AMD CPU `F1` raises #DB as a trap (the contrast to Q-10)."""
    result = guest(b"\xf1", (Execute(),), profile=HardwareProfile.AMD_NRIPS)
    assert (result.deliveries[0].vector, result.deliveries[0].return_rip) == (Vector.DB, 0x1001)


def test_q11_lock_int3_is_delivered_as_bp() -> None:
    """Q-11: TCG ignores LOCK on INT3: #BP with the return address after both bytes (hardware: #UD, H-28)."""
    result = guest(b"\xf0\xcc", (Execute(),))
    assert (result.deliveries[0].vector, result.deliveries[0].return_rip) == (Vector.BP, 0x1002)
    hardware = guest(b"\xf0\xcc", (Execute(), Execute()), profile=HardwareProfile.AMD_NRIPS)
    assert hardware.deliveries[0].vector == Vector.UD


def test_q8_injected_nmi_cut_short_reports_eventinj_as_written() -> None:
    """Q-8, K-6.0-8: KVM writes the NMI with vector 0 (0x80000200); TCG copies it into EXITINTINFO unchanged."""
    result = inject(Event(Vector.NMI, EventType.NMI), KVM_6_0, profile=QEMU, after=(cut_short(FaultKind.NPF),))
    assert obs(result, "exit_int_info") == 0x80000200
    hardware = inject(Event(Vector.NMI, EventType.NMI), KVM_6_0, after=(cut_short(FaultKind.NPF),))
    assert obs(hardware, "exit_int_info") == 0x80000202


def test_q12_vmrun_arms_no_dr7_breakpoint() -> None:
    """Q-12: a DR7 instruction breakpoint on the INT3 never fires under TCG; on hardware it faults first (H-37)."""
    setup = Setup(code=(CodeBytes(0x1000, INT3),), breakpoints=(CodeBreakpoint(0, 0x1000),))
    on_qemu = run(Program(setup, (Execute(),), QEMU, KVM_6_0))
    on_amd = run(Program(setup, (Execute(),), HardwareProfile.AMD_NRIPS, KVM_6_0))
    assert on_qemu.deliveries[0].vector == Vector.BP
    assert on_amd.deliveries[0].vector == Vector.DB
