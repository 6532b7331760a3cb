"""Hardware rules H-n (hardware.md § 2-11), each checked through the CPU model; QEMU TCG is in test_qemu_tcg."""

from __future__ import annotations

import pytest

from dsl.engine import (
    CodeBreakpoint,
    CodeBytes,
    Event,
    Execute,
    ExitFor,
    IdtGate,
    L1Vmrun,
    Nesting,
    Program,
    Result,
    Run,
    Setup,
    VectoringFault,
    run,
)
from dsl.engine.vocab import (
    CpuMode,
    EventType,
    Evidence,
    ExitCode,
    FaultKind,
    HardwareProfile,
    Level,
    Outcome,
    PolicyName,
    Vector,
)

from .builders import ARCHITECTURAL, INT3, KVM_5_19, KVM_6_0, cut_short, execute_cut_short, inject, obs, options

QEMU = HardwareProfile.QEMU_TCG
NO_NRIPS = HardwareProfile.AMD_NO_NRIPS
CPUID = b"\x0f\xa2"


def guest(
    code: bytes,
    steps: tuple[object, ...],
    *,
    at: int = 0x1000,
    policy: PolicyName = KVM_6_0,
    profile: HardwareProfile = HardwareProfile.AMD_NRIPS,
    **setup: object,
) -> Result:
    program = Program(
        Setup(rip=at, code=(CodeBytes(at, code),), **setup),  # type: ignore[arg-type]
        steps,  # type: ignore[arg-type]
        profile,
        policy,
    )
    return run(program)


# -- encodings and reported types (H-3, H-4) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exit_int_info"),
    [(b"\xcc", 0x80000303), (b"\xce", 0x80000304), (b"\xf1", 0x80000301), (b"\xcd\x03", 0x80000403)],
)
def test_h4_reported_type_of_instruction_events(code: bytes, exit_int_info: int) -> None:
    """H-3, H-4: INT3/INTO/ICEBP are reported as type 3, INT n (even `CD 03`) as type 4."""
    result = guest(code, (cut_short(), Execute()), mode=CpuMode.PROTECTED_32, rflags=0x202 | 0x800)
    assert obs(result, "exit_int_info") == exit_int_info


# -- VMRUN (H-5 … H-10) ----------------------------------------------------------------------------------------------


def test_h5_injected_event_needs_no_instruction() -> None:
    """H-5: VMRUN delivers EVENTINJ before the guest executes anything, whatever the bytes at RIP."""
    result = inject(Event(0x30, EventType.INTR), KVM_6_0, code=b"\x90")
    assert obs(result, "delivered") == 0x30
    assert obs(result, "return_rip") == 0x1000


@pytest.mark.parametrize(
    ("event", "profile", "ret"),
    [
        (Event(0x30, EventType.INTR), HardwareProfile.AMD_NRIPS, 0x1000),
        (Event(Vector.NMI, EventType.NMI), HardwareProfile.AMD_NRIPS, 0x1000),
        (Event(Vector.GP, EventType.EXCEPTION, 0), HardwareProfile.AMD_NRIPS, 0x1000),
        (Event(Vector.BP, EventType.EXCEPTION), HardwareProfile.AMD_NRIPS, 0x4444),
        (Event(0x80, EventType.SOFT), HardwareProfile.AMD_NRIPS, 0x4444),
        (Event(Vector.BP, EventType.EXCEPTION), NO_NRIPS, 0x1000),
    ],
)
def test_h6_return_address_of_an_injected_event(event: Event, profile: HardwareProfile, ret: int) -> None:
    """H-6: soft events push VMCB next_rip on an NRIPS CPU — whatever it holds — everything else pushes RIP."""
    setup = Setup(code=(CodeBytes(0x1000, b"\x90"),), nesting=Nesting())
    raw = {EventType.NMI: 0x80000200}.get(event.type, (0x80000000 | (event.type << 8) | event.vector))
    if event.error_code is not None:
        raw |= 0x800
    steps = (L1Vmrun(event_inj=raw, rip=0x1000, next_rip=0x4444), Run())
    result = run(Program(setup, steps, profile, KVM_6_0))
    assert obs(result, "return_rip") == ret


def test_h6_outside_64_bit_mode_the_low_32_bits_are_pushed() -> None:
    """H-6, H-33: outside 64-bit mode the pushed value is the low 32 bits of next_rip."""
    setup = Setup(mode=CpuMode.PROTECTED_32, nesting=Nesting())
    steps = (L1Vmrun(event_inj=0x80000303, rip=0x1000, next_rip=0x1000), Run())
    assert obs(run(Program(setup, steps, policy=KVM_6_0)), "return_rip") == 0x1000


@pytest.mark.parametrize(
    ("cpl", "dpl", "event", "delivered", "error_code"),
    [
        (3, 0, Event(0x80, EventType.SOFT), Vector.GP, 0x402),
        (3, 3, Event(0x80, EventType.SOFT), 0x80, None),
        (3, 0, Event(Vector.BP, EventType.EXCEPTION), Vector.GP, 0x1A),
        (3, 0, Event(0x80, EventType.INTR), 0x80, None),
        (0, 0, Event(0x80, EventType.SOFT), 0x80, None),
    ],
)
def test_h7_injected_soft_events_check_the_gate_dpl(
    cpl: int, dpl: int, event: Event, delivered: int, error_code: int | None
) -> None:
    """H-7, H-17: type 4 and type 3 vector 3/4 check DPL (#GP vector·8+2); INTR does not."""
    result = inject(event, ARCHITECTURAL, code=b"\xcd\x80", idt=(IdtGate(event.vector, dpl=dpl),), cpl=cpl)
    assert obs(result, "delivered") == delivered
    assert obs(result, "delivered_error_code") == error_code


@pytest.mark.parametrize(
    ("event_inj", "mode"),
    [(0x80000502, CpuMode.LONG_64), (0x80000302, CpuMode.LONG_64), (0x80000305, CpuMode.LONG_64)],
)
def test_h8_vmrun_fails_on_an_invalid_eventinj(event_inj: int, mode: CpuMode) -> None:
    """H-8: reserved type, type 3 with a non-exception vector (2), #BR in 64-bit mode → VMEXIT_INVALID."""
    setup = Setup(mode=mode, nesting=Nesting())
    result = run(Program(setup, (L1Vmrun(event_inj=event_inj, rip=0x1000), Run()), policy=KVM_6_0))
    assert obs(result, "outcome") is Outcome.VMEXIT_INVALID
    assert obs(result, "exit_code") == ExitCode.INVALID
    assert result.vmruns[0].failed is True


def test_h8_br_is_injectable_outside_64_bit_mode() -> None:
    """H-8: #BR is a valid EVENTINJ outside 64-bit mode."""
    setup = Setup(mode=CpuMode.PROTECTED_32, nesting=Nesting())
    result = run(Program(setup, (L1Vmrun(event_inj=0x80000305, rip=0x1000), Run()), policy=KVM_6_0))
    assert obs(result, "delivered") == Vector.BR


def test_h9_eventinj_is_consumed() -> None:
    """H-9: after the VMRUN the event reappears only in EXITINTINFO; the next VMRUN has EVENTINJ 0."""
    result = execute_cut_short(INT3, KVM_6_0, before_run=(ExitFor(ExitCode.INTR),))
    assert [run.event_inj for run in result.vmruns] == [0, 0x80000303, 0]


def test_h10_an_nrips_cpu_pushes_next_rip_even_with_nrips_0() -> None:
    """H-10, K-5.19-2: with kvm_amd nrips=0 on NRIPS hardware the CPU still pushes next_rip (0 here)."""
    result = inject(Event(Vector.BP, EventType.EXCEPTION), KVM_5_19, nrips=False, before=(ExitFor(ExitCode.NPF),))
    assert obs(result, "rip") == 0x1001
    assert obs(result, "return_rip") == 0


def test_h11_architectural_emulates_soft_injection_without_nrips() -> None:
    """H-11: without NRIPS the architectural hypervisor advances RIP itself, and puts it back if cut short."""
    result = execute_cut_short(INT3, ARCHITECTURAL, faults=2, profile=NO_NRIPS)
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "delivery_count") == 1


# -- #VMEXIT (H-12 … H-20) ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "exit_code", "next_rip"),
    [(CPUID, ExitCode.CPUID, 0x1002), (b"\xf4", ExitCode.HLT, 0x1001), (b"\xe6\x80", ExitCode.IOIO, 0x1002)],
)
def test_h12_next_rip_saved_on_instruction_intercepts(code: bytes, exit_code: int, next_rip: int) -> None:
    """H-12: instruction intercepts save next_rip; KVM then skips to it."""
    result = guest(code, (Execute(),))
    assert obs(result, "exit_code") == exit_code
    assert obs(result, "exit_next_rip") == next_rip
    assert obs(result, "final_rip") == next_rip


@pytest.mark.parametrize("exit_code", [ExitCode.INTR, ExitCode.NMI, ExitCode.NPF])
def test_h12_next_rip_cleared_on_other_exits(exit_code: ExitCode) -> None:
    """H-12: INTR, NMI and #NPF exits clear next_rip (a stale value is gone)."""
    result = guest(b"\x90", (Execute(), ExitFor(exit_code)), vmcb_next_rip=0x7777)
    assert result.exits[-1].next_rip == 0


def test_h12_no_nrips_cpu_never_writes_next_rip() -> None:
    """H-12 (no NRIPS), Q-3: the field is not written on exits."""
    result = guest(CPUID, (Execute(),), profile=NO_NRIPS, vmcb_next_rip=0x7777)
    assert obs(result, "exit_next_rip") == 0x7777


def test_h13_next_rip_is_an_offset_in_cs_not_linear() -> None:
    """H-13: real mode, CS base 0x1000, IP 0x0200: next_rip of a 2-byte CPUID is 0x0202."""
    program = Program(
        Setup(mode=CpuMode.REAL, cs_base=0x1000, rip=0x0200, code=(CodeBytes(0x1200, CPUID),)), (Execute(),)
    )
    assert obs(run(program), "exit_next_rip") == 0x0202


def test_h14_exitintinfo_only_while_vectoring() -> None:
    """H-14: an exit outside delivery has EXITINTINFO.V = 0."""
    assert obs(guest(CPUID, (Execute(),)), "exit_int_info") == 0


def test_h15_rip_at_a_vectoring_exit_is_the_instruction_with_its_prefixes() -> None:
    """H-15: VMCB RIP = the first byte of `26 CC`; next_rip 0."""
    result = guest(b"\x26\xcc", (cut_short(), Execute()))
    assert (obs(result, "exit_rip"), obs(result, "exit_next_rip")) == (0x1000, 0)


def test_h16_secondary_exception_replaces_the_event_and_returns_to_the_instruction() -> None:
    """H-16: INT 0x80 through a non-present gate raises #NP(0x402); handled by the guest, its frame is the INT."""
    result = guest(b"\xcd\x80", (Execute(),), mode=CpuMode.PROTECTED_32, idt=(IdtGate(0x80, present=False),))
    assert obs(result, "delivered") == Vector.NP
    assert obs(result, "delivered_error_code") == 0x402
    assert obs(result, "return_rip") == 0x1000


def test_h16_guest_handled_fault_during_delivery() -> None:
    """H-16: a fault the guest handles during delivery is delivered instead, its frame at the instruction."""
    result = guest(INT3, (VectoringFault(FaultKind.PF, Level.GUEST, error_code=2), Execute()))
    assert obs(result, "delivered") == Vector.PF
    assert obs(result, "return_rip") == 0x1000


def test_h17_external_events_set_ext_in_the_idt_error_code() -> None:
    """H-17: #NP on gate 0x30 for an external interrupt carries 0x30·8 + 2 + 1 (EXT)."""
    result = inject(Event(0x30, EventType.INTR), KVM_6_0, idt=(IdtGate(0x30, present=False),))
    assert obs(result, "delivered_error_code") == 0x30 * 8 + 3


def test_h18_exception_exit_codes() -> None:
    """H-18: exception intercepts are 0x40 + vector."""
    assert [ExitCode.for_exception(v) for v in (Vector.DB, Vector.BP, Vector.UD, Vector.PF)] == [
        0x41,
        0x43,
        0x46,
        0x4E,
    ]


def test_h19_int_n_never_triggers_an_exception_intercept() -> None:
    """H-19: `CD 03` with #BP intercepted (guest debug) is not a #BP intercept exit."""
    program = Program(Setup(code=(CodeBytes(0x1000, b"\xcd\x03"),)), (Execute(),), options=options(guest_debug=True))
    result = run(program)
    assert result.exits == ()
    assert obs(result, "delivered") == Vector.BP


def test_h20_bp_intercept_saves_next_rip() -> None:
    """H-20: the #BP intercept from `CC` at 0x1000: exit 0x43, RIP 0x1000, next_rip 0x1001."""
    program = Program(Setup(code=(CodeBytes(0x1000, INT3),)), (Execute(),), options=options(guest_debug=True))
    result = run(program)
    assert (obs(result, "exit_code"), obs(result, "exit_rip"), obs(result, "exit_next_rip")) == (0x43, 0x1000, 0x1001)


# -- instructions (H-21 … H-29) ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "mode", "vector", "ret"),
    [
        (b"\xcc", CpuMode.LONG_64, Vector.BP, 0x1001),
        (b"\xcd\x21", CpuMode.LONG_64, 0x21, 0x1002),
        (b"\xce", CpuMode.PROTECTED_32, Vector.OF, 0x1001),
        (b"\xf1", CpuMode.LONG_64, Vector.DB, 0x1001),
        (b"\x66\xcd\x21", CpuMode.PROTECTED_32, 0x21, 0x1003),
        (b"\x48\xcc", CpuMode.LONG_64, Vector.BP, 0x1002),
        (b"\x2e" * 13 + b"\xcd\x80", CpuMode.LONG_64, 0x80, 0x100F),
    ],
)
def test_h21_to_h27_trap_return_addresses(code: bytes, mode: CpuMode, vector: int, ret: int) -> None:
    """H-21, H-22, H-23, H-24, H-26, H-27: traps return after the instruction, prefixes included (≤ 15 bytes)."""
    result = guest(code, (Execute(),), mode=mode, rflags=0x202 | 0x800)
    assert (obs(result, "delivered"), obs(result, "return_rip")) == (vector, ret)


def test_h23_into_with_of_clear_does_nothing() -> None:
    """H-23: INTO with OF = 0 is a no-op."""
    result = guest(b"\xce\x90", (Execute(),), mode=CpuMode.PROTECTED_32)
    assert result.deliveries == ()
    assert obs(result, "final_rip") == 0x1001


@pytest.mark.parametrize(
    ("code", "mode", "vector"),
    [
        (b"\xce", CpuMode.LONG_64, Vector.UD),
        (b"\xf0\xcc", CpuMode.LONG_64, Vector.UD),
        (b"\x2e" * 14 + b"\xcd\x80", CpuMode.LONG_64, Vector.GP),
    ],
)
def test_h23_h27_h28_invalid_forms_fault(code: bytes, mode: CpuMode, vector: int) -> None:
    """H-23 INTO in 64-bit mode, H-28 LOCK INT3: #UD; H-27 more than 15 bytes: #GP(0); all fault at the instruction.

    KVM intercepts the #UD and injects it (UD_INTERCEPT_RULE): the guest sees the same #UD after one more entry.
    """
    result = guest(code, (Execute(), Execute()), mode=mode, rflags=0x202 | 0x800)
    assert obs(result, "delivered") == vector
    assert obs(result, "return_rip") == 0x1000


# -- modes (H-30 … H-33) ----------------------------------------------------------------------------------------


def test_h31_linear_address_wraps_at_4_gib() -> None:
    """H-31: CS.base 0xFFFFF000 + EIP 0x1000 fetches linear 0x0."""
    program = Program(Setup(mode=CpuMode.PROTECTED_32, cs_base=0xFFFFF000, code=(CodeBytes(0, INT3),)), (Execute(),))
    assert obs(run(program), "delivered") == Vector.BP


def test_h31_cs_base_ignored_in_64_bit_mode() -> None:
    """H-31: in 64-bit mode CS.base is ignored for the fetch."""
    program = Program(Setup(cs_base=0x10000, code=(CodeBytes(0x1000, INT3),)), (Execute(),))
    assert obs(run(program), "delivered") == Vector.BP


def test_h32_16_bit_ip_overflow_is_unspecified() -> None:
    """H-32 [U]: an instruction ending past 0xFFFF in 16-bit code: reported as unspecified."""
    program = Program(Setup(mode=CpuMode.REAL, rip=0xFFFF, code=(CodeBytes(0xFFFF, b"\x90"),)), (Execute(),))
    result = run(program)
    assert obs(result, "outcome") is Outcome.UNSPECIFIED
    assert obs(result, "evidence") is Evidence.UNVERIFIED


# -- RFLAGS, shadow, debug (H-34 … H-37) ------------------------------------------------------------------------


def test_h34_fault_frames_carry_rf() -> None:
    """H-34: a fault's pushed RFLAGS has RF set; a trap's does not."""
    fault = guest(b"\x0f\x0b", (Execute(), Execute()), policy=ARCHITECTURAL)  # KVM would intercept the #UD
    trap = guest(INT3, (Execute(), Execute()))
    assert fault.vmruns[-1].rflags & 0x10000 == 0
    assert obs(fault, "final_rip") == 0x1000
    assert obs(trap, "final_rip") == 0x1001


def test_h36_tf_single_steps_after_an_instruction() -> None:
    """H-36: with TF = 1 a #DB trap follows the completed NOP (frame = the next instruction)."""
    result = guest(b"\x90\x90", (Execute(),), rflags=0x302)
    assert (obs(result, "delivered"), obs(result, "return_rip")) == (Vector.DB, 0x1001)


def test_h37_retry_refires_a_code_breakpoint() -> None:
    """H-37, K-5.19-21: kvm-5.19 retries the INT3; the DR7 breakpoint on it fires a second (spurious) #DB."""
    setup = Setup(code=(CodeBytes(0x1000, INT3),), breakpoints=(CodeBreakpoint(0, 0x1000),))
    program = Program(setup, (cut_short(during=Vector.BP), Run()), policy=KVM_5_19)
    result = run(program)
    assert obs(result, "spurious_db") is True
    assert [d.vector for d in result.deliveries] == [Vector.DB, Vector.DB, Vector.BP]
    reinjecting = run(Program(setup, (cut_short(during=Vector.BP), Run()), policy=KVM_6_0))
    assert obs(reinjecting, "spurious_db") is False


def test_h41_code_modified_between_exit_and_decode() -> None:
    """H-41: another vCPU rewrites the bytes; the next decode sees the new bytes (EX-27 family)."""
    from dsl.engine import ModifyCode

    result = execute_cut_short(INT3, KVM_6_0, before_run=(ModifyCode(0x1000, b"\x90"),))
    assert any(t.rule == "H-41" for t in result.trace)


# -- double faults (H-16 "combines … under the x86 double-fault rules") --------------------------------------------


def test_h16_contributory_fault_during_np_is_a_double_fault() -> None:
    """H-16 [ARCH]: INT 0x21 through a non-present gate raises #NP; a #GP while delivering it becomes #DF(0)."""
    steps = (VectoringFault(FaultKind.GP, Level.GUEST, error_code=0, during=Vector.NP), Execute())
    result = guest(b"\xcd\x21", steps, at=0x3000, mode=CpuMode.PROTECTED_32, idt=(IdtGate(0x21, present=False),))
    assert (obs(result, "delivered"), obs(result, "return_rip"), obs(result, "delivered_error_code")) == (
        Vector.DF,
        0x3000,
        0,
    )


def test_h16_fault_while_delivering_a_double_fault_shuts_down() -> None:
    """H-16 [ARCH]: non-present #NP and #DF gates: #NP on #NP is #DF, #NP on #DF is a triple fault (shutdown)."""
    idt = (IdtGate(0x21, present=False), IdtGate(Vector.NP, present=False), IdtGate(Vector.DF, present=False))
    result = guest(b"\xcd\x21", (Execute(),), mode=CpuMode.PROTECTED_32, idt=idt)
    assert obs(result, "outcome") is Outcome.SHUTDOWN
    assert obs(result, "exit_code") == ExitCode.SHUTDOWN


def test_h24_architectural_emulates_icebp_as_a_trap() -> None:
    """H-11, H-24: the architectural policy delivers ICEBP's #DB once, returning after the ICEBP."""
    result = execute_cut_short(b"\xf1", ARCHITECTURAL)
    assert (obs(result, "delivered"), obs(result, "return_rip"), obs(result, "delivery_count")) == (
        Vector.DB,
        0x1001,
        1,
    )
