"""The `xen` policy (other-hypervisors.md § 2): retry soft events cut short, inject with NextRIP = RIP + length."""

from __future__ import annotations

import attrs
import pytest

from dsl.engine import (
    CancelEntry,
    CodeBreakpoint,
    CodeBytes,
    Event,
    Execute,
    IdtGate,
    Inject,
    L1Vmrun,
    PagePresence,
    Program,
    Result,
    Run,
    SaveRestore,
    Setup,
    run,
)
from dsl.engine.policies.xen import needs_reinjection
from dsl.engine.program import Step
from dsl.engine.vocab import (
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

from .builders import BP, INT3, INTO, cut_short, execute_cut_short, nesting, obs, options, soft_int

XEN = PolicyName.XEN
NO_NRIPS = HardwareProfile.AMD_NO_NRIPS
INT_0X80 = b"\xcd\x80"
ICEBP = b"\xf1"
HLT = b"\xf4"
NOP = b"\x90"


def injected(
    event: Event,
    code: bytes,
    *,
    source: InjectionSource = InjectionSource.USERSPACE,
    profile: HardwareProfile = HardwareProfile.AMD_NRIPS,
    at: int = 0x1000,
    mode: CpuMode = CpuMode.LONG_64,
    cpl: int = 0,
    idt: tuple[IdtGate, ...] = (),
    pages: tuple[PagePresence, ...] = (),
    vmcb_next_rip: int = 0,
    after: tuple[Step, ...] = (),
) -> Result:
    """`event` is injected with `code` at RIP `at`, then the host runs the guest."""
    setup = Setup(
        mode=mode, rip=at, cpl=cpl, code=(CodeBytes(at, code),), idt=idt, pages=pages, vmcb_next_rip=vmcb_next_rip
    )
    return run(Program(setup, (Inject(source, event), *after, Run()), profile, XEN))


def debug_inject(code: bytes, **kw: object) -> Result:
    """Guest debugging re-injects #BP: Xen's own #BP path, with the length XEN-5 finds (XEN-2)."""
    return injected(BP, code, source=InjectionSource.GUEST_DEBUG, **kw)  # type: ignore[arg-type]


# -- XEN-1: the retry predicate ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "vector", "reinjected"),
    [
        (EventType.INTR, 0x30, True),
        (EventType.NMI, Vector.NMI, True),
        (EventType.EXCEPTION, Vector.PF, True),
        (EventType.EXCEPTION, Vector.DB, True),
        (EventType.EXCEPTION, Vector.BP, False),
        (EventType.EXCEPTION, Vector.OF, False),
        (EventType.SOFT, 0x80, False),
        (EventType.SOFT, Vector.BP, False),
    ],
)
def test_xen_1_predicate_refuses_software_events(event_type: EventType, vector: int, reinjected: bool) -> None:
    """XEN-1: interrupts, NMIs and hardware exceptions are re-injected; #BP, #OF and INT n never are."""
    assert needs_reinjection(event_type, vector) is reinjected


@pytest.mark.parametrize("profile", [HardwareProfile.AMD_NRIPS, NO_NRIPS])
def test_ex01_int3_cut_short_is_retried(profile: HardwareProfile) -> None:
    """EX-01, XEN-1: EXITINTINFO 0x80000303 is not copied back; the guest re-executes the INT3 (ret 0x1001)."""
    result = execute_cut_short(INT3, XEN, profile=profile)
    assert obs(result, "exit_int_info") == 0x80000303
    assert obs(result, "requeued") is False
    assert obs(result, "event_inj") == 0
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "delivery_count") == 1
    assert obs(result, "outcome") is Outcome.RETRY
    assert obs(result, "confirmed") is True


def test_ex01_retry_fires_the_code_breakpoint_again() -> None:
    """EX-01, XEN-1, H-37: the re-executed INT3 is fetched again, so a DR7 breakpoint on it fires twice."""
    setup = Setup(code=(CodeBytes(0x1000, INT3),), breakpoints=(CodeBreakpoint(0, 0x1000),))
    steps: tuple[Step, ...] = (Execute(), Execute(), cut_short(), Execute(), Run())
    result = run(Program(setup, steps, policy=XEN))
    assert obs(result, "spurious_db") is True
    assert obs(result, "outcome") is Outcome.RETRY


def test_ex03_into_is_retried_and_re_tests_of() -> None:
    """EX-03, XEN-1: INTO cut short by an #NPF is re-executed (OF still 1): ret 0x2001."""
    result = execute_cut_short(
        INTO, XEN, at=0x2000, mode=CpuMode.PROTECTED_32, rflags=0xA02, fault=FaultKind.NPF, opts=options(npt=True)
    )
    assert obs(result, "exit_int_info") == 0x80000304
    assert obs(result, "event_inj") == 0
    assert obs(result, "return_rip") == 0x2001
    assert obs(result, "outcome") is Outcome.RETRY


def test_ex04_int_0x80_is_retried() -> None:
    """EX-04, XEN-1: INT 0x80 (type 4) is never re-injected; the guest re-executes it: ret 0x3002."""
    result = execute_cut_short(INT_0X80, XEN, at=0x3000, mode=CpuMode.PROTECTED_32)
    assert obs(result, "exit_int_info") == 0x80000480
    assert obs(result, "event_inj") == 0
    assert obs(result, "return_rip") == 0x3002
    assert obs(result, "outcome") is Outcome.RETRY


def test_xen_1_hardware_exception_is_copied_back_verbatim() -> None:
    """XEN-1, H-16: INT 0x80 raises #NP(0x402) whose delivery hits a #PF: EVENTINJ = EXITINTINFO, unchanged."""
    result = execute_cut_short(
        INT_0X80, XEN, at=0x3000, mode=CpuMode.PROTECTED_32, idt=(IdtGate(0x80, present=False),), during=Vector.NP
    )
    assert obs(result, "exit_int_info") == 0x80000B0B
    assert obs(result, "event_inj") == 0x80000B0B
    assert obs(result, "event_inj_err") == 0x402
    assert obs(result, "delivered") == Vector.NP
    assert obs(result, "return_rip") == 0x3000


# -- XEN-2: injection with NextRIP = RIP + length, or RIP advanced ----------------------------------------------------


def test_xen_2_injection_writes_next_rip_with_nrips() -> None:
    """XEN-2: a software exception with NRIPS: NextRIP = RIP + insn_len, RIP unchanged; the CPU pushes 0x1001."""
    result = debug_inject(INT3)
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "rip") == 0x1000
    assert obs(result, "next_rip") == 0x1001
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "outcome") is Outcome.DELIVERED


def test_xen_2_injection_advances_rip_without_nrips() -> None:
    """XEN-2: without NRIPS Xen advances RIP by insn_len itself; the CPU pushes RIP 0x1001."""
    result = debug_inject(INT3, profile=NO_NRIPS)
    assert obs(result, "rip") == 0x1001
    assert obs(result, "next_rip") == 0
    assert obs(result, "return_rip") == 0x1001


@pytest.mark.parametrize("profile", [HardwareProfile.AMD_NRIPS, NO_NRIPS])
def test_xen_2_truncates_to_32_bits_outside_long_mode(profile: HardwareProfile) -> None:
    """XEN-2: outside 64-bit mode RIP and NextRIP are cut to 32 bits: an INT3 at 0xFFFFFFFF returns to 0."""
    result = debug_inject(INT3, profile=profile, at=0xFFFF_FFFF, mode=CpuMode.PROTECTED_32)
    run_ = result.vmruns[0]
    assert (run_.rip, run_.next_rip) == ((0xFFFF_FFFF, 0) if profile is HardwareProfile.AMD_NRIPS else (0, 0))
    assert obs(result, "return_rip") == 0


def test_xen_2_userspace_software_event_has_no_length() -> None:
    """XEN-2 [U]: the toolstack's insn_len is not part of a Program: 0 is assumed and the outcome is unconfirmed."""
    result = injected(soft_int(0x21), NOP)
    assert obs(result, "event_inj") == 0x80000421
    assert obs(result, "next_rip") == 0x1000
    assert obs(result, "return_rip") == 0x1000
    assert obs(result, "evidence") is Evidence.UNVERIFIED
    assert obs(result, "confirmed") is False


def test_xen_2_injected_event_cut_short_without_nrips_is_lost() -> None:
    """XEN-1 + XEN-2 [D]: RIP was advanced for the injection and the #BP is not re-injected: lost at 0x1001."""
    result = debug_inject(INT3, profile=NO_NRIPS, after=(cut_short(),))
    assert obs(result, "exit_int_info") == 0x80000303
    assert obs(result, "requeued") is False
    assert obs(result, "final_rip") == 0x1001
    assert obs(result, "delivery_count") == 0
    assert obs(result, "outcome") is Outcome.LOST
    assert obs(result, "evidence") is Evidence.DERIVED


@pytest.mark.parametrize("profile", [HardwareProfile.AMD_NRIPS, NO_NRIPS])
def test_xen_2_hardware_exceptions_go_out_unchanged(profile: HardwareProfile) -> None:
    """XEN-2: a hardware exception is type 3 with its error code, RIP and NextRIP untouched (fault-style)."""
    result = injected(Event(Vector.GP, EventType.EXCEPTION, 0), NOP, profile=profile)
    assert obs(result, "event_inj") == 0x80000B0D
    assert obs(result, "event_inj_err") == 0
    assert obs(result, "rip") == 0x1000
    assert obs(result, "return_rip") == 0x1000


# -- XEN-3: software IDT checks without NRIPS --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("gate", "fault", "error"),
    [(IdtGate(Vector.BP, dpl=0), Vector.GP, 0x1A), (IdtGate(Vector.BP, present=False), Vector.NP, 0x1A)],
)
def test_xen_3_gate_checked_in_software_without_nrips(gate: IdtGate, fault: Vector, error: int) -> None:
    """XEN-3: without NRIPS Xen checks DPL then presence itself and injects #GP/#NP(3·8+2) instead, RIP kept."""
    result = debug_inject(INT3, profile=NO_NRIPS, idt=(gate,), cpl=3)
    assert obs(result, "event_inj") == 0x80000B00 | fault
    assert obs(result, "event_inj_err") == error
    assert obs(result, "delivered") == fault
    assert obs(result, "delivered_error_code") == error
    assert obs(result, "return_rip") == 0x1000
    assert any(t.rule == "XEN-3" and t.action.value == "fault" for t in result.trace)


def test_xen_3_no_software_checks_with_nrips() -> None:
    """XEN-3: with NRIPS the #BP is injected as is; the CPU's own DPL check raises the #GP (H-7)."""
    result = debug_inject(INT3, idt=(IdtGate(Vector.BP, dpl=0),), cpl=3)
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "delivered") == Vector.GP
    assert not any(t.rule == "XEN-3" for t in result.trace)


# -- XEN-4: ICEBP always intercepted -----------------------------------------------------------------------------------


def icebp(profile: HardwareProfile, idt: tuple[IdtGate, ...] = (), cpl: int = 0, policy: PolicyName = XEN) -> Result:
    """The guest executes `F1` at 0x1000 (CPL `cpl`), then the host runs it until the #DB is settled."""
    setup = Setup(cpl=cpl, code=(CodeBytes(0x1000, ICEBP),), idt=idt)
    return run(Program(setup, (Execute(), Run()), profile, policy))


@pytest.mark.parametrize("profile", [HardwareProfile.AMD_NRIPS, NO_NRIPS])
def test_xen_4_icebp_exits_with_0x88_and_next_rip_saved(profile: HardwareProfile) -> None:
    """XEN-4, H-20, H-12: Xen intercepts ICEBP: exit 0x88 before any #DB, next_rip = 0x1001 on an NRIPS CPU."""
    result = icebp(profile)
    assert obs(result, "exit_code") == ExitCode.ICEBP
    assert obs(result, "exit_int_info") == 0
    assert obs(result, "exit_next_rip") == (0x1001 if profile is HardwareProfile.AMD_NRIPS else 0)
    assert not any(d.injected is False for d in result.deliveries)  # the CPU never raised the #DB itself


@pytest.mark.parametrize("profile", [HardwareProfile.AMD_NRIPS, NO_NRIPS])
def test_xen_4_icebp_is_injected_with_rip_advanced(profile: HardwareProfile) -> None:
    """XEN-4, XEN-2: the intercepted ICEBP's #DB is type 3 vector 1 with RIP advanced by Xen: frame RIP 0x1001."""
    result = icebp(profile)
    assert (obs(result, "event_inj"), obs(result, "rip")) == (0x80000301, 0x1001)
    if profile is HardwareProfile.AMD_NRIPS:
        assert obs(result, "next_rip") == 0x1001
    assert (obs(result, "delivered"), obs(result, "return_rip")) == (Vector.DB, 0x1001)
    assert obs(result, "delivery_count") == 1
    assert obs(result, "outcome") is Outcome.DELIVERED
    assert any(t.rule == "XEN-4" for t in result.trace)


def test_xen_4_kvm_does_not_intercept_icebp() -> None:
    """XEN-4 vs H-24: KVM sets no ICEBP intercept: the CPU raises the #DB itself, no exit, frame RIP 0x1001."""
    result = icebp(HardwareProfile.AMD_NRIPS, policy=PolicyName.KVM_7_1)
    assert result.exits == ()
    assert result.deliveries[0].injected is False
    assert (obs(result, "delivered"), obs(result, "return_rip")) == (Vector.DB, 0x1001)


def test_xen_4_icebp_bypasses_the_dpl_check() -> None:
    """XEN-3, XEN-4: ICEBP counts as a hardware event: a DPL-0 gate at CPL 3 still delivers the #DB."""
    result = icebp(NO_NRIPS, idt=(IdtGate(Vector.DB, dpl=0),), cpl=3)
    assert obs(result, "delivered") == Vector.DB


def test_xen_4_icebp_gate_not_present_gives_np_with_ext() -> None:
    """XEN-3, H-17: a non-present #DB gate: #NP(1·8 + 2 + EXT) = #NP(0xb) injected instead, RIP not advanced."""
    result = icebp(NO_NRIPS, idt=(IdtGate(Vector.DB, present=False),))
    assert (obs(result, "event_inj"), obs(result, "event_inj_err"), obs(result, "rip")) == (0x80000B0B, 0xB, 0x1000)
    assert (obs(result, "delivered"), obs(result, "return_rip")) == (Vector.NP, 0x1000)


# -- XEN-5: instruction length with an opcode check --------------------------------------------------------------------


def test_xen_5_next_rip_minus_rip_is_trusted() -> None:
    """XEN-5: with NRIPS the length is NextRIP − RIP, without a decode (a stale NextRIP 0x1005 gives length 5)."""
    result = debug_inject(INT3, vmcb_next_rip=0x1005)
    assert obs(result, "next_rip") == 0x1005
    assert obs(result, "return_rip") == 0x1005
    assert not any(t.action.value == "decode" and "decode at" in t.message for t in result.trace)


def test_xen_5_implausible_next_rip_falls_back_to_the_decode() -> None:
    """XEN-5: a NextRIP more than 15 bytes away is not a length: Xen decodes the INT3 instead (NextRIP 0x1001)."""
    result = debug_inject(INT3, vmcb_next_rip=0x2000)
    assert obs(result, "next_rip") == 0x1001
    assert obs(result, "return_rip") == 0x1001


@pytest.mark.parametrize("profile", [HardwareProfile.AMD_NRIPS, NO_NRIPS])
def test_xen_5_mismatch_injects_gp(profile: HardwareProfile) -> None:
    """XEN-5: no NextRIP, the decode finds NOP where INT3 was expected: #GP(0) is injected, no #BP."""
    result = debug_inject(NOP, profile=profile)
    assert obs(result, "event_inj") == 0x80000B0D
    assert obs(result, "event_inj_err") == 0
    assert obs(result, "delivered") == Vector.GP
    assert obs(result, "return_rip") == 0x1000
    assert all(d.vector != Vector.BP for d in result.deliveries)


def test_xen_5_fetch_failure_gives_length_0_without_gp() -> None:
    """XEN-5: the decode cannot fetch the code page: length 0, nothing injected (the guest takes its own #PF)."""
    page = PagePresence(0x1000, PageTable.GUEST, present=False)
    result = debug_inject(INT3, profile=NO_NRIPS, pages=(page,))
    assert result.vmruns[0].event_inj == 0
    assert obs(result, "delivered") == Vector.PF
    assert all(d.vector != Vector.GP for d in result.deliveries)


@pytest.mark.parametrize(("profile", "decoded"), [(HardwareProfile.AMD_NRIPS, False), (NO_NRIPS, True)])
def test_xen_5_intercepted_instruction_is_completed(profile: HardwareProfile, decoded: bool) -> None:
    """XEN-5: an intercepted HLT is completed with NextRIP − RIP, or with a decode that finds the HLT."""
    result = run(Program(Setup(code=(CodeBytes(0x1000, HLT),)), (Execute(), Execute()), profile, XEN))
    assert obs(result, "exit_code") == ExitCode.HLT
    assert result.vmruns[-1].rip == 0x1001
    assert any(t.rule == "XEN-5" and "decode at" in t.message for t in result.trace) is decoded


# -- XEN-7: nested SVM -----------------------------------------------------------------------------------------------


def nested(steps: tuple[Step, ...], profile: HardwareProfile = HardwareProfile.AMD_NRIPS, **kw: object) -> Result:
    setup = Setup(rip=0, nesting=nesting(**kw))
    return run(Program(setup, steps, profile, XEN))


def test_xen_7_nested_svm_requires_nrips() -> None:
    """XEN-7: nested SVM needs NRIPS (and DecodeAssists) in L0: not available on a CPU without NRIPS."""
    result = nested((L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002), Run()), NO_NRIPS)
    assert obs(result, "outcome") is Outcome.UNSUPPORTED


def test_ex40_l1_next_rip_is_not_copied() -> None:
    """EX-40 story, XEN-7 [I]: vmcb12 EVENTINJ is copied, its NextRIP 0x5002 is not: the CPU pushes vmcb02's 0."""
    result = nested((L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002), Run()))
    assert obs(result, "event_inj") == 0x80000303
    assert obs(result, "next_rip") == 0
    assert obs(result, "return_rip") == 0
    assert obs(result, "confirmed") is False


def test_ex41_l1_int_n_cut_short_by_l0_is_lost() -> None:
    """EX-41 story, XEN-1, XEN-7 [I]: an L0 #NPF during L1's INT 0x20: type 4 is not re-injected: lost."""
    result = nested((L1Vmrun(event_inj=0x80000420, rip=0x6000, next_rip=0x6000), cut_short(FaultKind.NPF), Run()))
    assert obs(result, "exit_int_info") == 0x80000420
    assert obs(result, "requeued") is False
    assert obs(result, "outcome") is Outcome.LOST
    assert obs(result, "evidence") is Evidence.INFERRED


def test_ex43_reflected_exit_hands_exitintinfo_to_l1() -> None:
    """EX-43 story, XEN-7: L1 intercepts the #PF: vmcb12 EXITINTINFO = the #BP, NextRIP = vmcb02's (0)."""
    steps = (L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002), cut_short(FaultKind.PF, by=Level.L1), Run())
    result = nested(steps, intercepted_exceptions=(Vector.PF,))
    assert obs(result, "vmcb12_exit_code") == ExitCode.EXCP_PF
    assert obs(result, "vmcb12_exit_int_info") == 0x80000303
    assert obs(result, "vmcb12_next_rip") == 0
    assert obs(result, "outcome") is Outcome.REFLECTED


def test_nested_save_restore_is_not_described_for_xen() -> None:
    """XEN-7: KVM_SET_NESTED_STATE has no Xen counterpart in the specification: unspecified, not invented."""
    result = nested((L1Vmrun(event_inj=0x80000420, rip=0x2002), SaveRestore(), Run()))
    assert obs(result, "outcome") is Outcome.UNSPECIFIED


# -- not described: an abandoned entry ------------------------------------------------------------------------------


def test_cancelled_entry_keeps_eventinj_unconfirmed() -> None:
    """XEN-2 [U]: an entry abandoned after injection is not described: EVENTINJ stays and is delivered next time."""
    result = debug_inject(INT3, after=(CancelEntry(),))
    assert obs(result, "return_rip") == 0x1001
    assert obs(result, "delivery_count") == 1
    assert obs(result, "confirmed") is False


# -- XEN-8: the XTF swint-emulation matrix, executed natively -------------------------------------------------------

#: XTF's software events; ICEBP goes through Xen's intercept (XEN-4).
SWINTS: dict[str, tuple[bytes, Vector]] = {
    "int3": (INT3, Vector.BP),
    "icebp": (ICEBP, Vector.DB),
    "int $3": (b"\xcd\x03", Vector.BP),
    "into": (INTO, Vector.OF),
    "int $1": (b"\xcd\x01", Vector.DB),
}


@pytest.mark.parametrize("name", sorted(SWINTS))
@pytest.mark.parametrize("prefix", [b"", b"\x67"], ids=["plain", "addr32-prefix"])
@pytest.mark.parametrize("cpl", [0, 3])
@pytest.mark.parametrize("gate", ["present", "not present", "dpl 0"])
def test_xen_8_swint_matrix(name: str, prefix: bytes, cpl: int, gate: str) -> None:
    """XEN-8, H-7, H-17, H-26: vector, error code and the exact trap / fault RIP the guest sees under Xen."""
    code, vector = SWINTS[name]
    at, length = 0x2000, len(prefix) + len(code)
    gates = {"present": IdtGate(vector), "not present": IdtGate(vector, present=False), "dpl 0": IdtGate(vector, dpl=0)}
    setup = Setup(mode=CpuMode.PROTECTED_32, rip=at, cpl=cpl, rflags=0xA02, code=(CodeBytes(at, prefix + code),))
    result = run(Program(attrs.evolve(setup, idt=(gates[gate],)), (Execute(), Run()), policy=XEN))
    idt_error = vector * 8 + 2
    if gate == "not present":
        external = 1 if name == "icebp" else 0  # ICEBP's #DB counts as an external event (H-17, XEN-3)
        expected = (Vector.NP, idt_error + external, at)
    elif gate == "dpl 0" and cpl == 3 and name != "icebp":  # ICEBP has no DPL check (H-24, XEN-3)
        expected = (Vector.GP, idt_error, at)
    else:
        expected = (vector, None, at + length)
    assert (obs(result, "delivered"), obs(result, "delivered_error_code"), obs(result, "return_rip")) == expected
