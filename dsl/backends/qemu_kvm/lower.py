"""Lower an engine `Program` into the guest program's input (tools/qemu-kvm/guest/svmrun.c), or say why not.

What real KVM can be asked to do here: guest code in real mode, 32-bit protected mode or 64-bit mode (the last
two with identity paging), run once from its first instruction, or an event userspace injects first
(KVM_SET_VCPU_EVENTS, as QEMU does); deliveries cut short by L0's own exits (#NPF under npt=1, intercepted #PF
under npt=0), made real by leaving the stack page (one fault) or the IDT and the stack page (two faults: the CPU
reads the gate before it pushes the frame) unmapped in L0's tables when the guest starts. Everything else in the
`Program` vocabulary is reported as not expressible, with the reason.
"""

from __future__ import annotations

import attrs

from dsl.backends.qemu_kvm import layout
from dsl.engine.machine import ADDRESS_MASK_32
from dsl.engine.program import (
    MAX_PRIVILEGE,
    Event,
    Execute,
    Inject,
    Program,
    Run,
    Setup,
    VectoringFault,
)
from dsl.engine.vocab import (
    CpuMode,
    EventType,
    FaultKind,
    GateType,
    InjectionSource,
    Level,
    PagingMode,
    Protection,
    Vector,
)

#: The fault by which L0 interrupts a delivery under each paging mode.
_L0_FAULT = {PagingMode.NPT: FaultKind.NPF, PagingMode.SHADOW: FaultKind.PF}
#: RFLAGS bits whose effect the guest program does not reproduce: TF (single-step), RF, VM, AC.
_UNSUPPORTED_RFLAGS = (1 << 8) | (1 << 16) | (1 << 17) | (1 << 18)
#: Cold pages per number of L0 faults: the CPU reads the gate first, then pushes the frame.
_COLD_PAGES = {0: (), 1: (layout.STACK_PAGE,), 2: (layout.IDT_BASE, layout.STACK_PAGE)}
#: Userspace exits the guest program allows in one run before giving up.
MAX_EXITS = 16
#: KVM_X86_SHADOW_INT_STI: the guest is in an STI shadow (the set-up's interrupt shadow, H-35).
SHADOW_STI = 2
#: Real-mode CS: a 16-bit segment limit.
REAL_LIMIT = 0xFFFF
#: CR0.PE | CR0.ET, and CR0.PG on top for protected mode with paging.
CR0_REAL = 0x10
CR0_PROTECTED_PAGING = 0x8000_0011
#: Segment attributes as KVM_SET_SREGS takes them: type, S, DPL, DB, L, G.
_REAL_CODE = "b 1 0 0 0 0"
_REAL_DATA = "3 1 0 0 0 0"
_UNREAL_DATA = "3 1 0 0 0 1"  # 4-GiB data limit in real mode: the warm-up routine reads above 1 MiB
_FLAT_CODE = "b 1 0 1 0 1"
_FLAT_DATA = "3 1 0 1 0 1"
_SYSTEM_TR = "b 0 0 0 0 0"
_SYSTEM_LDT = "2 0 0 0 0 0"
_FULL = 0xFFFF_FFFF
_MODES = (CpuMode.REAL, CpuMode.PROTECTED_32, CpuMode.LONG_64)
_LONG_CODE = "b 1 0 0 1 1"
#: CR4.PAE and EFER.LME | EFER.LMA: long mode, entered directly through KVM_SET_SREGS.
CR4_PAE = 0x20
EFER_LONG = 0x500
#: Table entry sizes: IVT entry, descriptor, 32-bit and 64-bit gates; the GDT's entries (null, 3 segments).
_IVT_ENTRY = 4
_DESCRIPTOR = 8
_PROTECTED_GATE = 8
_LONG_GATE = 16
_GDT_ENTRIES = 4
#: Legacy prefixes (APM vol. 3 §1.2): skipped to find the opcode of the scenario's first instruction.
_PREFIXES = frozenset(b"\x66\x67\xf2\xf3\x2e\x36\x3e\x26\x64\x65\xf0")
#: KVM_SET_VCPU_EVENTS slot per event type (K-5.19-19): the exception queue, the interrupt queue (soft or not), NMI.
_EVENT_KINDS = {EventType.EXCEPTION: "exception", EventType.INTR: "irq", EventType.SOFT: "soft", EventType.NMI: "nmi"}
_INT3, _INTO, _INT_N, _LOCK = b"\xcc", b"\xce", b"\xcd", 0xF0
_INT_N_LENGTH = 2
_MAX_INSTRUCTION_LENGTH = 15
#: REX prefixes 0x40-0x4F (64-bit mode only).
_REX, _REX_MASK = 0x40, 0xF0
#: First instructions the backend cannot reproduce faithfully, and why.
_UNREPRODUCIBLE = {
    0x62: "BOUND: its bounds operand in memory is not part of the scenario",
}


@attrs.frozen
class GuestCase:
    """One case of the guest program's input: `lines` without the case line, ready to send."""

    case_id: str
    paging: PagingMode
    mode: CpuMode
    lines: tuple[str, ...]

    def text(self) -> str:
        return "".join(f"{line}\n" for line in (f"case {self.case_id}", *self.lines))


@attrs.frozen
class NotExpressible:
    """The backend cannot run this program under real KVM, and why."""

    reason: str


def lower(program: Program, case_id: str) -> GuestCase | NotExpressible:
    """The guest program's input for `program`, or the first reason it cannot be expressed."""
    reason = _refusal(program)
    if reason is not None:
        return NotExpressible(reason)
    setup = program.setup
    faults = sum(isinstance(step, VectoringFault) for step in program.steps)
    cold = _COLD_PAGES[faults]
    lines = [*_memory(setup, cold)]
    lines += _handlers()
    lines += _warm_segments(setup.mode)
    lines.append(f"warm {_warm_rip(setup.mode):x} {layout.STACK_TOP:x}")
    lines += _scenario_segments(setup)
    stack = layout.STACK_TOP - layout.REAL_STACK_BASE if setup.mode is CpuMode.REAL else layout.STACK_TOP
    lines.append(f"regs {setup.rip:x} {stack:x} {setup.rflags:x}")
    if setup.interrupt_shadow:
        lines.append(f"shadow {SHADOW_STI}")
    event = injected_event(program)
    if event is not None:
        error = event.error_code
        lines.append(f"event {_EVENT_KINDS[event.type]} {event.vector} {int(error is not None)} {error or 0:x}")
    lines.append(f"run {MAX_EXITS}")
    return GuestCase(case_id, program.options.paging, setup.mode, tuple(lines))


def _refusal(program: Program) -> str | None:
    setup, options = program.setup, program.options
    if setup.mode not in _MODES:
        return f"guest mode {setup.mode.value}: the backend runs real, protected32 and long64 guests"
    if setup.nesting is not None:
        return "nested scenarios (an L1 hypervisor in the guest program) are not built yet"
    if options.protection is not Protection.NONE:
        return f"{options.protection.value} guests need SEV hardware"
    if options.guest_debug_sw_bp:
        return "KVM_GUESTDBG_USE_SW_BP is not lowered"
    setup_reason = _setup_refusal(setup)
    if setup_reason is not None:
        return setup_reason
    return _steps_refusal(program)


def _setup_refusal(setup: Setup) -> str | None:
    if setup.cpl != 0 or not setup.gif or setup.vmcb_next_rip:
        return "CPL > 0, GIF = 0 or a stale next_rip in the VMCB are not lowered"
    if setup.breakpoints:
        # helper_vmrun (target/i386/tcg/sysemu/svm_helper.c, QEMU 7.2) stores VMCB DR7 into env->dr[7] without
        # arming its breakpoints: a guest's DR7 code breakpoint never fires under TCG (observed: no #DB at all).
        return "DR7 breakpoints: QEMU 7.2's VMRUN does not arm them, so they never fire under TCG"
    if setup.rflags & _UNSUPPORTED_RFLAGS:
        return f"RFLAGS 0x{setup.rflags:x}: TF, RF, VM and AC are not lowered"
    if setup.pages:
        return "page presence in the set-up is not lowered (only L0 faults during delivery are)"
    if setup.mode is CpuMode.REAL:
        if setup.idt:
            return "IDT gates do not exist in real mode"
        if setup.cs_base % layout.REAL_PARAGRAPH or setup.cs_base > REAL_LIMIT * layout.REAL_PARAGRAPH:
            return f"real-mode CS base 0x{setup.cs_base:x} is not a segment number times 16"
        if setup.rip > REAL_LIMIT:
            return f"real-mode IP 0x{setup.rip:x} does not fit 16 bits"
    opcode = _first_opcode(setup)
    if opcode in _UNREPRODUCIBLE:
        return _UNREPRODUCIBLE[opcode]
    for chunk in setup.code:
        if chunk.address + len(chunk.data) + len(layout.HLT) > layout.RESERVED_START:
            return f"code at 0x{chunk.address:x} overlaps the guest program's tables (from 0x{layout.RESERVED_START:x})"
    return None


def _first_opcode(setup: Setup) -> int | None:
    """The opcode byte of the instruction at CS:RIP, after its legacy prefixes (None if no code is there)."""
    found = _opcode_bytes(setup)
    return found[0] if found else None


def _instruction_bytes(setup: Setup) -> bytes:
    linear = setup.rip if setup.mode is CpuMode.LONG_64 else (setup.cs_base + setup.rip) & ADDRESS_MASK_32
    for chunk in setup.code:
        offset = linear - chunk.address
        if 0 <= offset < len(chunk.data):
            return chunk.data[offset:]
    return b""


def _opcode_bytes(setup: Setup) -> bytes:
    rest = _instruction_bytes(setup)
    skipped = next((index for index, byte in enumerate(rest) if byte not in _PREFIXES), len(rest))
    if setup.mode is CpuMode.LONG_64:
        while skipped < len(rest) and rest[skipped] & _REX_MASK == _REX:
            skipped += 1
    return rest[skipped:]


def soft_vector(setup: Setup) -> int | None:
    """The vector the scenario's first instruction raises as a soft event (CC: #BP, CE: #OF, CD ib: ib), if any."""
    found = _opcode_bytes(setup)
    prefixes = _instruction_bytes(setup)[: -len(found) or None] if found else b""
    if _LOCK in prefixes:
        return None  # LOCK makes it #UD (H-28)
    if len(prefixes) + _INT_N_LENGTH > _MAX_INSTRUCTION_LENGTH and found[:1] == _INT_N:
        return None  # longer than 15 bytes: #GP(0) before anything vectors (H-27)
    if found[:1] == _INTO and setup.mode is CpuMode.LONG_64:
        return None  # INTO is invalid in 64-bit mode: #UD
    if found[:1] == _INT3:
        return Vector.BP
    if found[:1] == _INTO:
        return Vector.OF
    if found[:1] == _INT_N and len(found) > 1:
        return found[1]
    return None


def injected_event(program: Program) -> Event | None:
    """The event userspace injects before the guest first runs (a leading `Inject` step), if any."""
    first = program.steps[0] if program.steps else None
    return first.event if isinstance(first, Inject) else None


def _subject(program: Program) -> int | None:
    event = injected_event(program)
    return event.vector if event is not None else soft_vector(program.setup)


def _steps_refusal(program: Program) -> str | None:
    steps = program.steps
    injection = steps[0] if steps and isinstance(steps[0], Inject) else None
    if injection is not None:
        if injection.source is not InjectionSource.USERSPACE:
            return f"an injection from {injection.source.value} is not lowered (only userspace's, first)"
        steps = steps[1:]
    expected_fault = _L0_FAULT[program.options.paging]
    faults = 0
    while faults < len(steps) and isinstance(steps[faults], VectoringFault):
        step = steps[faults]
        assert isinstance(step, VectoringFault)
        if step.fault is not expected_fault or step.handled_by is not Level.L0:
            handled = f"{step.fault.value} handled by {step.handled_by.value}"
            return f"vectoring {handled}: only L0's own {expected_fault.value} is lowered"
        during_subject = step.during is None or step.during == _subject(program)
        if step.error_code is not None or step.cr2 is not None or not during_subject:
            return "a vectoring fault with an error code, CR2 or during another event than the subject is not lowered"
        faults += 1
    if faults not in _COLD_PAGES:
        return f"{faults} faults in one delivery: at most {len(_COLD_PAGES) - 1} (IDT and stack page)"
    rest = steps[faults:]
    if injection is not None:
        if rest != (Run(),):
            names = ", ".join(type(step).__name__ for step in program.steps)
            return f"steps {names}: after a userspace injection the backend runs 'faults…, run'"
        return None
    if rest not in ((Execute(1), Run()), (Execute(1),)) or (faults and rest != (Execute(1), Run())):
        names = ", ".join(type(step).__name__ for step in steps)
        return f"steps {names}: the backend runs 'faults…, guest executes, run' from the first instruction"
    return None


def _memory(setup: Setup, cold: tuple[int, ...]) -> list[str]:
    mode = setup.mode
    real, long_mode = mode is CpuMode.REAL, mode is CpuMode.LONG_64
    image: dict[int, bytes] = {}
    for chunk in setup.code:
        image[chunk.address] = chunk.data
    for chunk in setup.code:
        end = chunk.address + len(chunk.data)
        if not any(other.address <= end < other.address + len(other.data) for other in setup.code):
            image[end] = layout.HLT  # the scenario's code ends: the guest program stops at this HLT
    image[layout.HANDLER_BASE] = b"".join(
        layout.handler_bytes(vector, real_mode=real, long_mode=long_mode).ljust(layout.HANDLER_STRIDE, layout.HLT)
        for vector in range(layout.VECTORS)
    )
    if real:
        image[layout.IDT_BASE] = layout.real_mode_ivt()
    else:
        image[layout.GDT_BASE] = layout.protected_gdt(setup.cs_base, long_mode=long_mode)
        image[layout.IDT_BASE] = _idt(setup)
        if long_mode:
            image.update(layout.long_page_tables())
        else:
            directory, table = layout.identity_page_table(())
            image[layout.PAGE_DIRECTORY] = directory
            image[layout.PAGE_TABLE] = table
    warm_reads = tuple(sorted(_warm_pages(setup) - set(cold) - {layout.STACK_PAGE}))
    warm_writes = () if layout.STACK_PAGE in cold else (layout.STACK_PAGE,)
    image[layout.WARM_CODE] = layout.warm_routine(warm_reads, warm_writes, real_mode=real, long_mode=long_mode)
    return [f"mem {address:x} {data.hex()}" for address, data in sorted(image.items())]


def _handlers() -> list[str]:
    return [f"handler {layout.handler_address(vector):x} {vector}" for vector in range(layout.VECTORS)]


def _warm_pages(setup: Setup) -> set[int]:
    pages = {chunk.address - chunk.address % layout.PAGE for chunk in setup.code}
    pages |= {layout.HANDLER_BASE, layout.IDT_BASE}
    if setup.mode is CpuMode.PROTECTED_32:
        pages |= {layout.GDT_BASE, layout.PAGE_DIRECTORY, layout.PAGE_TABLE}
    elif setup.mode is CpuMode.LONG_64:
        pages |= {layout.GDT_BASE, layout.PAGE_DIRECTORY, layout.PDPT, layout.LONG_PAGE_DIRECTORY}
        pages |= {layout.PAGE_TABLE, layout.PAGE_TABLE_HIGH}
    return pages


def _idt(setup: Setup) -> bytes:
    gates = {gate.vector: gate for gate in setup.idt}
    encode = layout.long_idt_gate if setup.mode is CpuMode.LONG_64 else layout.idt_gate
    table = b""
    for vector in range(layout.VECTORS):
        gate = gates.get(vector)
        table += encode(
            layout.handler_address(vector),
            present=gate.present if gate else True,
            dpl=gate.dpl if gate else MAX_PRIVILEGE,
            gate_type=gate.gate_type if gate else GateType.INTERRUPT,
        )
    return table


def _segment(name: str, selector: int, base: int, limit: int, attributes: str) -> str:
    return f"seg {name} {selector:x} {base:x} {limit:x} {attributes}"


def _common_segments(mode: CpuMode) -> list[str]:
    lines = [_segment("tr", 0, 0, REAL_LIMIT, _SYSTEM_TR), _segment("ldt", 0, 0, REAL_LIMIT, _SYSTEM_LDT)]
    if mode is CpuMode.REAL:
        lines += [_segment(name, 0, 0, _FULL, _UNREAL_DATA) for name in ("ds", "es", "fs", "gs")]
        stack_selector = layout.REAL_STACK_BASE // layout.REAL_PARAGRAPH
        lines.append(_segment("ss", stack_selector, layout.REAL_STACK_BASE, REAL_LIMIT, _REAL_DATA))
        lines.append(f"table idt {layout.IDT_BASE:x} {layout.VECTORS * _IVT_ENTRY - 1:x}")
        return lines
    gate_size = _LONG_GATE if mode is CpuMode.LONG_64 else _PROTECTED_GATE
    lines += [_segment(name, layout.FLAT_DS, 0, _FULL, _FLAT_DATA) for name in ("ds", "es", "fs", "gs", "ss")]
    lines.append(f"table gdt {layout.GDT_BASE:x} {_GDT_ENTRIES * _DESCRIPTOR - 1:x}")
    lines.append(f"table idt {layout.IDT_BASE:x} {layout.VECTORS * gate_size - 1:x}")
    return lines


def _control(mode: CpuMode) -> str:
    if mode is CpuMode.REAL:
        return f"cr {CR0_REAL:x} 0 0 0"
    if mode is CpuMode.LONG_64:
        return f"cr {CR0_PROTECTED_PAGING:x} {layout.PAGE_DIRECTORY:x} {CR4_PAE:x} {EFER_LONG:x}"
    return f"cr {CR0_PROTECTED_PAGING:x} {layout.PAGE_DIRECTORY:x} 0 0"


def _code_segment(mode: CpuMode, selector: int, base: int) -> str:
    if mode is CpuMode.REAL:
        return _segment("cs", base // layout.REAL_PARAGRAPH, base, REAL_LIMIT, _REAL_CODE)
    attributes = _LONG_CODE if mode is CpuMode.LONG_64 else _FLAT_CODE
    return _segment("cs", selector, base, _FULL, attributes)


def _warm_segments(mode: CpuMode) -> list[str]:
    code = _code_segment(mode, layout.FLAT_CS, layout.WARM_CODE if mode is CpuMode.REAL else 0)
    return [*_common_segments(mode), code, _control(mode)]


def _warm_rip(mode: CpuMode) -> int:
    return 0 if mode is CpuMode.REAL else layout.WARM_CODE


def _scenario_segments(setup: Setup) -> list[str]:
    return [_code_segment(setup.mode, layout.SCENARIO_CS, setup.cs_base), _control(setup.mode)]
