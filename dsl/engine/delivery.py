"""Event delivery through the guest IDT: gate checks, secondary exceptions and double faults (H-5, H-7, H-14,
H-16, H-17), armed faults that cut a delivery short with a #VMEXIT, the frame and the handler's IRET."""

from __future__ import annotations

from dsl.engine import events
from dsl.engine.exits import Exit, vmexit
from dsl.engine.machine import RFLAGS_IF, RFLAGS_TF, Frame, InFlight, Machine
from dsl.engine.result import RFLAGS_RF, Action, Delivery
from dsl.engine.vocab import Actor, EventType, ExitCode, GateType, Level, Outcome, PageTable, Vector


def _take_fault(m: Machine, vector: int) -> int | None:
    """Index of the armed vectoring fault that applies to delivering `vector`, if any."""
    for index, fault in enumerate(m.armed_faults):
        if fault.during is None or fault.during == vector:
            return index
    return None


#: Exception classes for the double-fault rules [ARCH]: contributory, and page faults.
_CONTRIBUTORY: tuple[int, ...] = (Vector.DE, Vector.TS, Vector.NP, Vector.SS, Vector.GP)


def _combined(ev: InFlight, vector: int) -> int | None:
    """The exception actually raised when `vector` occurs while delivering `ev` (H-16: "combines it with C under
    the x86 double-fault rules" [ARCH]): #DF for contributory-on-contributory or on #PF, None for a triple fault."""
    if ev.type is not EventType.EXCEPTION or ev.dpl_checked:
        return vector  # interrupts, NMI, INT3/INTO/INT n are benign
    if ev.vector == Vector.DF:
        return None
    if vector in _CONTRIBUTORY and ev.vector in (*_CONTRIBUTORY, Vector.PF):
        return Vector.DF
    if vector == Vector.PF and ev.vector == Vector.PF:
        return Vector.DF
    return vector


def _secondary(ev: InFlight, vector: int, error_code: int | None) -> InFlight:
    """An exception raised while delivering `ev` (H-16): fault-style, its frame returns to where `ev` started."""
    # Positional, in field order (keyword binding costs as much again): vector, type, error_code, return_rip,
    # start_rip, injected, dpl_checked, from_instruction, subject.
    start = ev.start_rip
    return InFlight(vector, EventType.EXCEPTION, error_code, start, start, ev.injected, False, False, ev.subject)


def deliver(m: Machine, ev: InFlight) -> Exit | None:
    """Deliver `ev` through the guest IDT; an armed fault can cut it short with a #VMEXIT (H-5, H-14, H-16)."""
    profile = m.hardware
    first = ev
    if profile.copies_event_slot and not events.is_valid(m.qemu_event_slot):
        m.qemu_event_slot = events.encode(ev.vector, profile.reported_type(ev.type, ev.from_instruction), ev.error_code)
    while True:
        index = _take_fault(m, ev.vector) if m.armed_faults else None
        if index is not None:
            fault = m.armed_faults.pop(index)
            fault_vector = fault.fault.vector
            if fault.handled_by is Level.GUEST and fault_vector is not None:
                m.log(Actor.CPU, Action.FAULT, "H-16", f"{fault.fault.value} while delivering vector {hex(ev.vector)}")
                raised = _raise_during(m, ev, fault_vector, fault.error_code)
                if isinstance(raised, Exit):
                    return raised
                ev = raised
                continue
            reported = first if profile.keeps_first_event else ev
            info = events.encode(
                reported.vector, profile.reported_type(reported.type, reported.from_instruction), reported.error_code
            )
            copied = profile.copies_event_slot and events.is_valid(m.qemu_event_slot) and m.qemu_event_slot != info
            if copied:
                info = m.qemu_event_slot  # EVENTINJ as written, e.g. KVM's NMI with vector 0
            m.vmcb.rip = ev.start_rip
            m.vmcb.rflags &= ~RFLAGS_RF  # H-15 leaves RF open [U]; cleared so a retried INT3 re-arms DR7 (H-37)
            rule = "Q-5" if profile.keeps_first_event and reported is not ev else "H-14"
            if profile.reported_type(reported.type, reported.from_instruction) is not reported.type:
                rule = "Q-4"
            if copied:
                rule = "Q-8"
            return vmexit(
                m,
                Exit(
                    code=fault.fault.exit_code,
                    handled_by=fault.handled_by,
                    exit_int_info=info,
                    exit_int_info_err=reported.error_code or 0,
                    in_flight=reported,
                ),
                rule,
                f"{fault.fault.value} while delivering; EXITINTINFO {events.describe(info)}",
            )
        gate = m.gate(ev.vector)
        problem: tuple[int, str, str] | None = None
        if ev.dpl_checked and m.cpl > gate.dpl:
            problem = (Vector.GP, "H-7", f"CPL {m.cpl} > gate {hex(ev.vector)} DPL {gate.dpl}: #GP")
        elif not gate.present:
            problem = (Vector.NP, "H-17", f"gate {hex(ev.vector)} not present: #NP")
        if problem is not None:
            vector, rule, message = problem
            m.log(Actor.CPU, Action.FAULT, rule, message)
            raised = _raise_during(m, ev, vector, events.idt_error_code(ev.vector, ev.external))
            if isinstance(raised, Exit):
                return raised
            ev = raised
            continue
        _push_frame(m, ev, gate.gate_type)
        if profile.copies_event_slot:
            m.qemu_event_slot &= ~events.VALID  # delivery finished: V cleared, the rest stays
        return None


def _raise_during(m: Machine, ev: InFlight, vector: int, error_code: int | None) -> InFlight | Exit:
    """The exception raised while delivering `ev`, combined per the double-fault rules; a triple fault shuts down."""
    combined = _combined(ev, vector)
    if combined is None:
        m.set_anomaly(Outcome.SHUTDOWN)
        return vmexit(m, Exit(ExitCode.SHUTDOWN, Level.L0), "ARCH", "fault while delivering #DF: triple fault")
    if combined != vector:
        m.log(Actor.CPU, Action.FAULT, "H-16", f"vector {hex(vector)} while delivering {hex(ev.vector)}: #DF")
        return _secondary(ev, Vector.DF, 0)
    return _secondary(ev, vector, error_code)


def _push_frame(m: Machine, ev: InFlight, gate_type: GateType) -> None:
    vmcb = m.vmcb
    fault_class = ev.return_rip is not None and ev.return_rip == ev.start_rip and not ev.injected
    pushed = vmcb.rflags | RFLAGS_RF if fault_class else vmcb.rflags  # H-34
    m.deliveries.append(Delivery(ev.vector, ev.type, ev.return_rip, ev.error_code, ev.injected))
    if ev.subject and m.subject is not None:
        m.subject.deliveries += 1
    m.frames.append(Frame(ev.vector, ev.return_rip, pushed, ev.maps_page))
    cleared = RFLAGS_TF | RFLAGS_RF | (RFLAGS_IF if gate_type is GateType.INTERRUPT else 0)  # H-36
    change = m.put(vmcb, "rip", m.handler_address(ev.vector), "guest.")
    vmcb.rflags &= ~cleared
    shown = "unspecified" if ev.return_rip is None else f"{hex(ev.return_rip)}"
    name = events.VECTOR_NAMES[ev.vector]
    source = "injected" if ev.injected else "raised by the guest"
    m.log(
        Actor.CPU,
        Action.DELIVER,
        "H-5" if ev.injected else "H-33",
        f"deliver {name} ({source}), frame return address {shown}",
        change,
    )


def iret(m: Machine) -> None:
    """The innermost handler returns: RIP and RFLAGS from its frame (a #PF handler first maps the page)."""
    frame = m.frames.pop()
    vmcb = m.vmcb
    if frame.maps_page is not None:
        m.missing[PageTable.GUEST].discard(frame.maps_page)
    target = frame.return_rip if frame.return_rip is not None else vmcb.rip
    change = m.put(vmcb, "rip", target, "guest.")
    vmcb.rflags = frame.rflags
    m.log(Actor.GUEST, Action.IRET, "", f"handler for vector {hex(frame.vector)} returns to {hex(target)}", change)
