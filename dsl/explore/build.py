"""A `Configuration` becomes an engine `Program` (the same data `svmdsl run` lowers a scenario into).

The shapes follow the worked examples: the instruction (or the event) at RIP 0x1000 with a 2-byte MOV after it (so
a skip that goes too far is visible, EX-12), faults armed before the step that raises or injects the event, code and
page changes between the first exit and the re-entry (examples.md § F, § G).
"""

from __future__ import annotations

import attrs

from dsl.engine import events
from dsl.engine.machine import ADDRESS_MASK_32, RFLAGS_OF
from dsl.engine.program import (
    DEFAULT_RFLAGS,
    DEFAULT_RIP,
    CancelEntry,
    CodeBreakpoint,
    CodeBytes,
    Event,
    Execute,
    ExitFor,
    IdtGate,
    Inject,
    L1Vmrun,
    ModifyCode,
    Nesting,
    PolicyOptions,
    Program,
    Reenter,
    Run,
    SaveRestore,
    SetPage,
    Setup,
    Step,
    VectoringFault,
)
from dsl.engine.result import RFLAGS_RF
from dsl.engine.vocab import (
    CpuMode,
    EventType,
    ExitCode,
    FaultKind,
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
from dsl.explore import axes
from dsl.explore.space import Configuration

#: `89 C8` (MOV eAX, eCX): a 2-byte instruction that is valid in every mode and raises nothing. It follows the
#: instruction under test, and stands at RIP when the injected event has no instruction behind it (EX-23).
FOLLOWER = bytes.fromhex("89c8")

#: `E6 80` (OUT 0x80, AL): an intercepted instruction whose exit leaves a next_rip behind (EX-22).
OUT_BYTES = bytes.fromhex("e680")

#: Each instruction's bytes and the event it raises (vector, EVENTINJ type) — README § Encodings.
INSTRUCTION_BYTES: dict[str, bytes] = {
    "int3": bytes.fromhex("cc"),
    "into": bytes.fromhex("ce"),
    "int-0x80": bytes.fromhex("cd80"),
    "int-0x20": bytes.fromhex("cd20"),
    "int-3": bytes.fromhex("cd03"),
    "es-int3": bytes.fromhex("26cc"),
    "cs-int-0x80": bytes.fromhex("2ecd80"),
}
INSTRUCTION_EVENTS: dict[str, tuple[int, EventType]] = {
    "int3": (Vector.BP, EventType.EXCEPTION),
    "into": (Vector.OF, EventType.EXCEPTION),
    "int-0x80": (0x80, EventType.SOFT),
    "int-0x20": (0x20, EventType.SOFT),
    "int-3": (Vector.BP, EventType.SOFT),
    "es-int3": (Vector.BP, EventType.EXCEPTION),
    "cs-int-0x80": (0x80, EventType.SOFT),
}
#: What the code-modification axis writes over the instruction (examples.md § F).
REPLACEMENT_BYTES: dict[str, bytes] = {
    axes.CODE_NOP: bytes.fromhex("90"),
    axes.CODE_CALL: bytes.fromhex("e800000000"),
    axes.CODE_ICEBP: bytes.fromhex("f1"),
}


def linear_rip(config: Configuration) -> int:
    """The linear address of the instruction (H-31: CS.base is ignored in 64-bit mode)."""
    mode = CpuMode(config.mode)
    if mode.ignores_cs_base:
        return DEFAULT_RIP
    return (int(config.cs_base, 16) + DEFAULT_RIP) & ADDRESS_MASK_32  # the 4-GiB wrap


def subject_event(config: Configuration) -> Event:
    """The soft event the configuration is about."""
    vector, event_type = INSTRUCTION_EVENTS[config.instruction]
    return Event(int(vector), event_type)


def build_program(config: Configuration, policy: PolicyName) -> Program:
    """The Program that runs `config` under `policy` (on the configuration's CPU)."""
    return Program(
        setup=_setup(config),
        steps=_steps(config),
        profile=HardwareProfile(config.profile),
        policy=policy,
        options=_options(config),
    )


def _setup(config: Configuration) -> Setup:
    linear = linear_rip(config)
    backed = config.source not in (axes.SOURCE_USERSPACE_UNBACKED, axes.SOURCE_L1_UNBACKED)
    instruction = INSTRUCTION_BYTES[config.instruction] if backed else b""
    rflags = DEFAULT_RFLAGS
    if config.instruction == "into":
        rflags |= RFLAGS_OF
    if config.debug == axes.DEBUG_RF:
        rflags |= RFLAGS_RF
    breakpoints = () if config.debug == axes.DEBUG_NONE else (CodeBreakpoint(0, linear),)
    idt: tuple[IdtGate, ...] = ()
    if config.vectoring == axes.VECTORING_GATE:
        idt = (IdtGate(subject_event(config).vector, present=False),)
    nesting = None
    if config.nested:
        intercepted = (Vector.PF,) if config.vectoring == axes.VECTORING_L1 else ()
        nesting = Nesting(l1_nrips=config.l1_nrips == axes.YES, intercepted_exceptions=intercepted)
    code = CodeBytes(linear, instruction + FOLLOWER)
    rip = DEFAULT_RIP
    if config.previous_exit == axes.PREVIOUS_OUT:
        # EX-22: `E6 80` right before the instruction; its intercept leaves next_rip = 0x1000 in the VMCB.
        rip -= len(OUT_BYTES)
        code = CodeBytes(linear - len(OUT_BYTES), OUT_BYTES + code.data)
    return Setup(
        mode=CpuMode(config.mode),
        cs_base=int(config.cs_base, 16),
        rip=rip,
        rflags=rflags,
        interrupt_shadow=config.shadow == axes.SHADOW_STI,
        breakpoints=breakpoints,
        code=(code,),
        idt=idt,
        nesting=nesting,
    )


def _options(config: Configuration) -> PolicyOptions:
    protection = Protection(config.protection)
    # KVM runs SEV guests only with NPT; the paging axis applies to unprotected guests.
    paging = PagingMode.NPT if protection is not Protection.NONE else PagingMode(config.paging)
    return PolicyOptions(
        nrips=config.nrips == "1",
        paging=paging,
        protection=protection,
        guest_debug_sw_bp=config.source == axes.SOURCE_GUEST_DEBUG,
        soft_int_reading=SoftIntReading(config.reading),
    )


def _vectoring_fault(config: Configuration) -> VectoringFault | None:
    if config.vectoring == axes.VECTORING_HOST:
        host_fault = FaultKind.PF if _options(config).paging is PagingMode.SHADOW else FaultKind.NPF
        return VectoringFault(host_fault, handled_by=Level.L0)
    if config.vectoring == axes.VECTORING_L1:
        return VectoringFault(FaultKind.PF, handled_by=Level.L1)
    if config.vectoring == axes.VECTORING_GUEST:
        return VectoringFault(FaultKind.PF, handled_by=Level.GUEST)
    return None  # none, or the gate: the missing IDT gate raises #NP by itself (set-up)


def _faults(config: Configuration) -> tuple[Step, ...]:
    """The first fault, and the second one when the re-injection is cut short again (EX-02)."""
    fault = _vectoring_fault(config)
    if fault is None:
        return ()
    return (fault, fault) if config.second_exit == axes.SECOND_SAME else (fault,)


def _exits(config: Configuration) -> tuple[Step, ...]:
    """The INTR exit after the re-injection (EX-15): armed once the guest has exited for the first time."""
    return (ExitFor(ExitCode.INTR),) if config.second_exit == axes.SECOND_INTR else ()


def _changes(config: Configuration) -> tuple[Step, ...]:
    """What changes during the exit: the bytes at RIP, the code page in the guest's tables."""
    linear = linear_rip(config)
    changes: tuple[Step, ...] = ()
    if config.code_change in REPLACEMENT_BYTES:
        changes += (ModifyCode(linear, REPLACEMENT_BYTES[config.code_change]),)
    if config.decode == axes.DECODE_UNMAPPED:
        changes += (SetPage(linear, PageTable.GUEST, present=False),)
    return changes


def _cancel(config: Configuration) -> tuple[Step, ...]:
    return (CancelEntry(),) if config.second_exit == axes.SECOND_CANCEL else ()


def _steps(config: Configuration) -> tuple[Step, ...]:
    """Faults are armed first (they cut short the next *delivery*; an intercepted OUT or #BP delivers nothing),
    which is also where the language puts a `vectoring hits` written after `guest executes`."""
    event = subject_event(config)
    faults, exits, changes = _faults(config), _exits(config), _changes(config)
    if config.source == axes.SOURCE_INSTRUCTION:
        return (*faults, Execute(), *exits, *changes, *_cancel(config), Run())
    if config.source == axes.SOURCE_GUEST_DEBUG:
        # The INT3 exits to userspace (#BP intercepted, KVM_EXIT_DEBUG), which re-injects it (EX-19, EX-20).
        reinject = Inject(InjectionSource.GUEST_DEBUG, event)
        return (*faults, Execute(), *exits, *changes, reinject, *_cancel(config), Run())
    if config.source in (axes.SOURCE_USERSPACE, axes.SOURCE_USERSPACE_UNBACKED):
        inject = Inject(InjectionSource.USERSPACE, event)
        previous = (Execute(),) if config.previous_exit == axes.PREVIOUS_OUT else ()
        return (*faults, *previous, *exits, *changes, inject, *_cancel(config), Run())
    vmrun = _l1_vmrun(config, event)
    return (*faults, *exits, *changes, vmrun, *_save_restore(config), *_cancel(config), Run())


def _save_restore(config: Configuration) -> tuple[Step, ...]:
    """EX-44: restored while L1's VMRUN is pending; EX-45: restored after one entry requeued the event."""
    if config.save_restore == axes.SAVE_PENDING:
        return (SaveRestore(),)
    if config.save_restore == axes.SAVE_REQUEUED:
        return (Reenter(), SaveRestore())
    return ()


def _l1_vmrun(config: Configuration, event: Event) -> L1Vmrun:
    """L1's VMRUN: with NRIPS it passes next_rip; without, it advances L2's RIP itself (EX-44)."""
    length = len(INSTRUCTION_BYTES[config.instruction])
    event_inj = events.encode(event.vector, event.type)
    cs_base = int(config.cs_base, 16)
    if config.l1_nrips == axes.YES:
        return L1Vmrun(event_inj=event_inj, rip=DEFAULT_RIP, next_rip=DEFAULT_RIP + length, cs_base=cs_base)
    return L1Vmrun(event_inj=event_inj, rip=DEFAULT_RIP + length, next_rip=0, cs_base=cs_base)


def with_policy(program: Program, policy: PolicyName) -> Program:
    """The same program under another policy."""
    return attrs.evolve(program, policy=policy)
