"""Small builders so engine tests read like the spec's examples: code at an address, a cut-short delivery, a run."""

from __future__ import annotations

from collections.abc import Iterable

from dsl.engine import (
    CodeBytes,
    Event,
    Execute,
    IdtGate,
    Inject,
    Nesting,
    PagePresence,
    PolicyOptions,
    Program,
    Result,
    Run,
    Setup,
    Step,
    VectoringFault,
    run,
)
from dsl.engine.vocab import (
    CpuMode,
    EventType,
    FaultKind,
    HardwareProfile,
    InjectionSource,
    Level,
    Observable,
    PagingMode,
    PolicyName,
    Protection,
    SoftIntReading,
    Vector,
)

KVM_5_19 = PolicyName.KVM_5_19
KVM_6_0 = PolicyName.KVM_6_0
KVM_6_2 = PolicyName.KVM_6_2
KVM_6_6 = PolicyName.KVM_6_6
KVM_6_19 = PolicyName.KVM_6_19
KVM_7_1 = PolicyName.KVM_7_1
ARCHITECTURAL = PolicyName.ARCHITECTURAL

#: "kvm-6.0 … kvm-7.1" in the examples' tables.
REINJECTING = (KVM_6_0, KVM_6_2, KVM_6_6, KVM_6_19, KVM_7_1)
#: "kvm-6.0 … kvm-6.6": before the opcode check.
BEFORE_OPCODE_CHECK = (KVM_6_0, KVM_6_2, KVM_6_6)
#: "kvm-6.19, kvm-7.1": with the opcode check.
OPCODE_CHECK = (KVM_6_19, KVM_7_1)
ALL_KVM = (KVM_5_19, *REINJECTING)

INT3 = b"\xcc"
INTO = b"\xce"
MOV_RAX_RCX = b"\x48\x89\xc8"


def options(
    nrips: bool = True,
    npt: bool = False,
    protection: Protection = Protection.NONE,
    reading: SoftIntReading = SoftIntReading.B,
    seed_as_committed: bool = False,
    guest_debug: bool = False,
) -> PolicyOptions:
    return PolicyOptions(
        nrips=nrips,
        paging=PagingMode.NPT if npt else PagingMode.SHADOW,
        protection=protection,
        soft_int_reading=reading,
        seed_as_committed=seed_as_committed,
        guest_debug_sw_bp=guest_debug,
    )


def cut_short(fault: FaultKind = FaultKind.PF, by: Level = Level.L0, during: int | None = None) -> VectoringFault:
    """The next delivery hits a fault intercepted by L0 (default), L1 or handled by the guest."""
    return VectoringFault(fault, by, during=during)


def execute_cut_short(
    code: bytes,
    policy: PolicyName,
    *,
    at: int = 0x1000,
    nrips: bool = True,
    mode: CpuMode = CpuMode.LONG_64,
    cs_base: int = 0,
    faults: int = 1,
    before_run: Iterable[Step] = (),
    more_code: Iterable[CodeBytes] = (),
    profile: HardwareProfile = HardwareProfile.AMD_NRIPS,
    rflags: int = 0x202,
    interrupt_shadow: bool = False,
    idt: Iterable[IdtGate] = (),
    pages: Iterable[PagePresence] = (),
    opts: PolicyOptions | None = None,
    fault: FaultKind = FaultKind.PF,
    during: int | None = None,
) -> Result:
    """A guest soft instruction at `at` whose delivery is cut short `faults` times, then run until settled."""
    steps: list[Step] = [cut_short(fault, during=during) for _ in range(faults)]
    steps += [Execute(), *before_run, Run()]
    setup = Setup(
        mode=mode,
        cs_base=cs_base,
        rip=at,
        rflags=rflags,
        interrupt_shadow=interrupt_shadow,
        code=(CodeBytes(at, code), *more_code),
        idt=tuple(idt),
        pages=tuple(pages),
    )
    return run(Program(setup, tuple(steps), profile, policy, opts or options(nrips=nrips)))


def inject(
    event: Event,
    policy: PolicyName,
    *,
    code: bytes = INT3,
    at: int = 0x1000,
    nrips: bool = True,
    source: InjectionSource = InjectionSource.USERSPACE,
    before: Iterable[Step] = (),
    after: Iterable[Step] = (),
    profile: HardwareProfile = HardwareProfile.AMD_NRIPS,
    gif: bool = True,
    vmcb_next_rip: int = 0,
    idt: Iterable[IdtGate] = (),
    opts: PolicyOptions | None = None,
    mode: CpuMode = CpuMode.LONG_64,
    cpl: int = 0,
) -> Result:
    """Userspace (or guest debug) injects `event` with `code` at RIP `at`, then the host runs the guest."""
    setup = Setup(
        mode=mode, rip=at, gif=gif, cpl=cpl, code=(CodeBytes(at, code),), vmcb_next_rip=vmcb_next_rip, idt=tuple(idt)
    )
    steps = (*before, Inject(source, event), *after, Run())
    return run(Program(setup, steps, profile, policy, opts or options(nrips=nrips)))


BP = Event(Vector.BP, EventType.EXCEPTION)


def soft_int(vector: int) -> Event:
    return Event(vector, EventType.SOFT)


def nesting(l1_nrips: bool = True, **kw: object) -> Nesting:
    return Nesting(l1_nrips=l1_nrips, **kw)  # type: ignore[arg-type]


def obs(result: Result, name: str) -> object:
    """`obs(r, "next_rip")`: the observable spelled as in scenarios."""
    return result.observe(Observable(name))
