"""The engine's input: a `Program` is a `Setup`, a tuple of steps, a hardware profile and a hypervisor policy.

Plain immutable data with no syntax concepts (the compiler keeps source locations next to it). Addresses are
guest values: `rip` and `next_rip` are offsets in CS (H-13), code bytes and pages are at linear addresses. The
model identity-maps linear to guest-physical memory; page presence says which page tables lack a mapping.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from dsl.engine.vocab import (
    CpuMode,
    EventType,
    ExitCode,
    FaultKind,
    GateType,
    HardwareProfile,
    InjectionSource,
    Level,
    PageTable,
    PagingMode,
    PolicyName,
    Protection,
    SoftIntReading,
    Vector,
)

#: RFLAGS after reset with IF set: bit 1 is reserved-one, bit 9 is IF (the examples' default, 0x202).
DEFAULT_RFLAGS = 0x202
#: Where the examples put the instruction under test.
DEFAULT_RIP = 0x1000
#: DR0-DR3.
BREAKPOINT_SLOTS = 4
#: An IDT gate's DPL is 0-3.
MAX_PRIVILEGE = 3


def _bytes_tuple(value: bytes | tuple[int, ...] | list[int]) -> bytes:
    return bytes(value)


# Non-generic converters: mypy's attrs plugin cannot type `converter=tuple` (it asks callers for Iterable[_T_co]).
def _vectors(items: Iterable[Vector]) -> tuple[Vector, ...]:
    return tuple(items)


def _exit_codes(items: Iterable[ExitCode]) -> tuple[ExitCode, ...]:
    return tuple(items)


def _breakpoints(items: Iterable[CodeBreakpoint]) -> tuple[CodeBreakpoint, ...]:
    return tuple(items)


def _code(items: Iterable[CodeBytes]) -> tuple[CodeBytes, ...]:
    return tuple(items)


def _pages(items: Iterable[PagePresence]) -> tuple[PagePresence, ...]:
    return tuple(items)


def _gates(items: Iterable[IdtGate]) -> tuple[IdtGate, ...]:
    return tuple(items)


def _steps(items: Iterable[Step]) -> tuple[Step, ...]:
    return tuple(items)


# ---------------------------------------------------------------------------------------------------------------
# Set-up
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen
class CodeBytes:
    """Bytes of guest memory at a linear address (code, usually)."""

    address: int
    data: bytes = attrs.field(converter=_bytes_tuple)


@attrs.frozen
class PagePresence:
    """The 4-KiB page holding `address` is present or not in the guest's or in L0's page tables.

    Pages not listed are present in both. A page missing from the guest tables makes an instruction fetch (and
    KVM's decode, K-5.19-7) fault with #PF; one missing from L0's tables makes the CPU exit (#NPF or intercepted
    #PF) on the first access.
    """

    address: int
    table: PageTable
    present: bool


@attrs.frozen
class IdtGate:
    """An IDT gate for one vector. Vectors not listed have a present interrupt gate with DPL 3."""

    vector: int
    present: bool = True
    dpl: int = MAX_PRIVILEGE
    gate_type: GateType = GateType.INTERRUPT


@attrs.frozen
class CodeBreakpoint:
    """A DR0-DR3 instruction breakpoint enabled in DR7 (execute condition, H-37)."""

    slot: int
    address: int


@attrs.frozen
class Nesting:
    """L0 runs an L1 hypervisor that runs the guest (L2) described by `Setup`.

    The L2 RIP and CS base come from the `L1Vmrun` steps (vmcb12); `Setup.rip` / `Setup.cs_base` are L2's state
    before the first one.
    """

    l1_nrips: bool = True  # CPUID 8000_000A EDX[3] as L1 sees it (K-5.19-3, K-6.0-19)
    intercepted_exceptions: tuple[Vector, ...] = attrs.field(default=(), converter=_vectors)
    intercepted_exits: tuple[ExitCode, ...] = attrs.field(default=(), converter=_exit_codes)
    l1_npt: bool = False  # L1 uses nested paging for L2 (an #NPF may then be L1's)
    l1_shstk: bool = False  # L1's guest CPUID has SHSTK: #CP is a valid vmcb12 EVENTINJ vector (K-7.1-6)


@attrs.frozen
class PolicyOptions:
    """Options of the hypervisor policy (spec README § Options of the KVM policies)."""

    nrips: bool = True  # kvm_amd module parameter; the effective value also needs CPU NRIPS (K-5.19-1)
    paging: PagingMode = PagingMode.SHADOW  # npt=0 (shadow) or npt=1
    protection: Protection = Protection.NONE
    seed_as_committed: bool = False  # kvm-6.0 only: the K-6.0-20 variant without da0b93d65e5b (EX-42)
    soft_int_reading: SoftIntReading = SoftIntReading.B  # K-6.19-6, kvm-6.19 on
    guest_debug_sw_bp: bool = False  # KVM_GUESTDBG_USE_SW_BP: L0 intercepts #BP for userspace (K-5.19-20)


@attrs.frozen
class Setup:
    """What the world looks like before the first step. Defaults are the examples' conventions (examples.md)."""

    mode: CpuMode = CpuMode.LONG_64
    cs_base: int = 0
    rip: int = DEFAULT_RIP
    rflags: int = DEFAULT_RFLAGS
    interrupt_shadow: bool = False
    cpl: int = 0
    gif: bool = True
    breakpoints: tuple[CodeBreakpoint, ...] = attrs.field(default=(), converter=_breakpoints)
    code: tuple[CodeBytes, ...] = attrs.field(default=(), converter=_code)
    pages: tuple[PagePresence, ...] = attrs.field(default=(), converter=_pages)
    idt: tuple[IdtGate, ...] = attrs.field(default=(), converter=_gates)
    vmcb_next_rip: int = 0  # a stale next_rip left in the VMCB by an earlier exit
    nesting: Nesting | None = None
    # BOUND's index lies within its bounds (no #BR). The default is out of bounds: a scenario that executes BOUND
    # is about its #BR (H-25), and the model has no register or memory operand values to compare.
    bound_in_range: bool = False


# ---------------------------------------------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen
class Event:
    """An event in KVM's terms: vector, EVENTINJ type and optional error code (H-3).

    For userspace injection: EXCEPTION fills KVM's exception queue, INTR and SOFT the interrupt queue (soft = SOFT),
    NMI the NMI slot (K-5.19-19).
    """

    vector: int
    type: EventType
    error_code: int | None = None


# ---------------------------------------------------------------------------------------------------------------
# Steps
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen
class Execute:
    """One guest action, `count` times: the guest executes the instruction at RIP on the CPU.

    If L0 is outside the guest it enters first (injection, VMRUN, delivery); when that entry delivered an event or
    ended in an exit, that is the action. Inside an event handler the action is the handler's return (IRET: handlers
    have no code of their own). INT3/INTO/INT n/ICEBP raise their events; DR7 code breakpoints, RF, TF and the
    interrupt shadow apply; an intercepted instruction (OUT, CPUID, HLT, VMMCALL …) exits with `next_rip` set and is
    handled by L0, or by L1 when L1 intercepts it.
    """

    count: int = 1


@attrs.frozen
class Inject:
    """L0 injects an event from userspace (KVM_SET_VCPU_EVENTS) or guest debug, delivered at the next VM entry."""

    source: InjectionSource
    event: Event


@attrs.frozen
class L1Vmrun:
    """L1 writes vmcb12 and executes VMRUN (InjectionSource.L1); L0 prepares vmcb02 and a nested run is pending.

    `event_inj` is the raw low 32 bits of vmcb12 EVENTINJ (0 = no event; invalid encodings are allowed: they
    make the VMRUN fail, H-8, K-7.1-6). None for `rip` / `cs_base` keeps L2's current value.
    """

    event_inj: int = 0
    event_inj_err: int = 0
    rip: int | None = None
    next_rip: int = 0
    cs_base: int | None = None


@attrs.frozen
class VectoringFault:
    """The next delivery attempt (of `during`, if given: e.g. the #NP raised on a non-present gate) is cut short.

    `handled_by` L0: an exit L0 handles itself (#PF under shadow paging, #NPF on its tables), L1: an exit reflected
    to L1 (nested only), GUEST: not intercepted, the guest takes the fault itself (H-16).
    """

    fault: FaultKind
    handled_by: Level = Level.L0
    error_code: int | None = None
    cr2: int | None = None
    during: int | None = None


@attrs.frozen
class ExitFor:
    """The guest exits for a reason that is not a vectoring fault, once any pending delivery has completed.

    INTR / NMI / NPF exits leave `next_rip` = 0 (H-12); an instruction-intercept exit code (CPUID, HLT, IOIO, MSR,
    VMMCALL) means the instruction at RIP was intercepted: `next_rip` = the next instruction and L0 skips it.
    """

    exit_code: ExitCode


@attrs.frozen
class ModifyCode:
    """Another vCPU (or the guest before re-entry) rewrites guest bytes at a linear address (H-41)."""

    address: int
    data: bytes = attrs.field(converter=_bytes_tuple)


@attrs.frozen
class SetPage:
    """A guest or host page-table entry changes (e.g. the code page is unmapped before KVM decodes, EX-35)."""

    address: int
    table: PageTable
    present: bool


@attrs.frozen
class CancelEntry:
    """The next VM entry is abandoned after injection (pending signal or request, K-5.19-17, K-6.0-15)."""


@attrs.frozen
class SaveRestore:
    """KVM_GET_NESTED_STATE and KVM_SET_NESTED_STATE into a fresh vCPU (EX-44, EX-45).

    Whether a nested run is pending is the engine's state at this step (after an `L1Vmrun`, before L2 entered).
    `regs_first`: userspace calls KVM_SET_REGS before KVM_SET_NESTED_STATE.
    """

    regs_first: bool = False


@attrs.frozen
class Reenter:
    """The host re-enters the guest once: injection hooks, VMRUN, delivery, possibly an exit.

    After an exit reflected to L1 the guest L0 enters is L1 itself (vmcb01), e.g. to deliver an NMI userspace
    injected into L1 (K-6.0-8, K-7.1-7); L2 runs again only after an `L1Vmrun` step.
    """


#: Bound on re-entries for `Run` (the selftest's alarm(2), in entries rather than seconds).
DEFAULT_MAX_ENTRIES = 16


@attrs.frozen
class Run:
    """Re-enter and let the guest run until the subject event is settled, at most `max_entries` entries.

    The subject is the first event a guest instruction raised, or the latest one injected. Settled: the guest is
    no longer about to (re-)execute the subject's instruction — so a retry or a duplicate delivery is still seen.
    Run also stops when L1 must act (an exit reflected to it), when userspace must act (KVM_EXIT_DEBUG), or on an
    anomaly (host BUG, VMEXIT_INVALID, emulation error, shutdown). Without a subject it executes the scenario's
    own code and stops at bytes the scenario did not write.
    """

    max_entries: int = DEFAULT_MAX_ENTRIES


Step = (
    Execute
    | Inject
    | L1Vmrun
    | VectoringFault
    | ExitFor
    | ModifyCode
    | SetPage
    | CancelEntry
    | SaveRestore
    | Reenter
    | Run
)

#: Every step class, in documentation order.
STEP_TYPES: tuple[type, ...] = (
    Execute,
    Inject,
    L1Vmrun,
    VectoringFault,
    ExitFor,
    ModifyCode,
    SetPage,
    CancelEntry,
    SaveRestore,
    Reenter,
    Run,
)


# ---------------------------------------------------------------------------------------------------------------
# Program
# ---------------------------------------------------------------------------------------------------------------


@attrs.frozen
class Program:
    """One scenario, ready to run: set-up, steps, the CPU (profile) and the hypervisor (policy)."""

    setup: Setup = Setup()
    steps: tuple[Step, ...] = attrs.field(default=(), converter=_steps)
    profile: HardwareProfile = HardwareProfile.AMD_NRIPS
    policy: PolicyName = PolicyName.KVM_7_1
    options: PolicyOptions = PolicyOptions()
