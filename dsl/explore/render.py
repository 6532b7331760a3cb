"""Engine data → `.svm` text: the set-up and steps of a `Program`, and expectations read off a `Result`.

Every word written comes from the closed vocabulary (enum values, numbers in hex); the only free text, the
scenario title and comments, goes through `quote` / `comment`, so no data can inject syntax. The caller parses and
lowers the output before writing it (`dsl.explore.counterexample`).
"""

from __future__ import annotations

from dsl.engine import events
from dsl.engine.program import (
    MAX_PRIVILEGE,
    CancelEntry,
    Event,
    Execute,
    ExitFor,
    Inject,
    L1Vmrun,
    ModifyCode,
    Program,
    Reenter,
    Run,
    SaveRestore,
    SetPage,
    Setup,
    Step,
    VectoringFault,
)
from dsl.engine.result import EVENT_VALID, Result
from dsl.engine.vocab import (
    EventType,
    ExitCode,
    GateType,
    InjectionSource,
    Level,
    PagingMode,
    Protection,
    SoftIntReading,
    Vector,
)
from dsl.syntax.transform import quote as syntax_quote

#: The exit reason word for each exit code a step may name (the inverse of the language's table).
EXIT_WORDS: dict[int, str] = {
    ExitCode.INTR: "intr",
    ExitCode.NMI: "nmi",
    ExitCode.CPUID: "cpuid",
    ExitCode.HLT: "hlt",
    ExitCode.IOIO: "out",
    ExitCode.MSR: "msr",
    ExitCode.VMMCALL: "vmmcall",
    ExitCode.SWINT: "swint",
    ExitCode.ICEBP: "icebp",
    ExitCode.NPF: "npf",
}
_INJECTION_WORDS: dict[InjectionSource, str] = {
    InjectionSource.USERSPACE: "userspace",
    InjectionSource.GUEST_DEBUG: "guest debug",
    InjectionSource.L1: "L1",
}
_BREAKPOINT_REGISTERS = ("dr0", "dr1", "dr2", "dr3")


class RenderError(ValueError):
    """The program uses something the language cannot say (the message names it)."""


def quote(text: str) -> str:
    """A `.svm` string literal: backslashes and quotes escaped, line breaks flattened."""
    return syntax_quote(" ".join(text.split()))


def comment(text: str) -> str:
    """`// text` on one line (a comment runs to the end of the line, so line breaks are all that matter)."""
    return "// " + " ".join(text.split())


def hexa(value: int) -> str:
    return f"{value:#x}"


def vector_word(vector: int) -> str:
    """A vector as a scenario names it: `#BP`, `NMI`, or a number."""
    if vector in Vector._value2member_map_:
        return Vector(vector).mnemonic
    return hexa(vector)


def event_words(vector: int, event_type: EventType) -> str:
    """An event as `inject` and `expect delivered` spell it: `#BP`, `int 0x80`, `irq 0x30`, `nmi`."""
    if event_type is EventType.NMI:
        return "nmi"
    if event_type is EventType.SOFT:
        return f"int {hexa(vector)}"
    if event_type is EventType.INTR:
        return f"irq {hexa(vector)}"
    if vector not in Vector._value2member_map_:
        return f"event {hexa(events.encode(vector, EventType.EXCEPTION))}"
    return Vector(vector).mnemonic


# -- set-up ------------------------------------------------------------------------------------------------------------


def setup_lines(program: Program) -> list[str]:
    """The set-up of `program` (profile, options, CPU, memory, nesting), one statement per line."""
    options = program.options
    lines = [f"profile {program.profile.value}", f"nrips {int(options.nrips)}"]
    if options.paging is not PagingMode.SHADOW:
        lines.append(f"paging {options.paging.value}")
    if options.protection is not Protection.NONE:
        lines.append(f"protection {options.protection.value}")
    if options.seed_as_committed:
        lines.append("variant seed-as-committed")
    if options.soft_int_reading is not SoftIntReading.B:
        lines.append(f"int-n reading {options.soft_int_reading.value}")
    if options.guest_debug_sw_bp:
        lines.append("guest debug sw-bp")
    return lines + _cpu_lines(program.setup) + _memory_lines(program.setup) + _nesting_lines(program.setup)


def _cpu_lines(setup: Setup) -> list[str]:
    lines = [f"mode {setup.mode.value}"]
    if setup.cs_base:
        lines.append(f"cs base {hexa(setup.cs_base)}")
    lines += [f"rip {hexa(setup.rip)}", f"rflags {hexa(setup.rflags)}"]
    if setup.interrupt_shadow:
        lines.append("interrupt shadow sti")
    if setup.cpl:
        lines.append(f"cpl {setup.cpl}")
    if not setup.gif:
        lines.append("gif 0")
    for breakpoint in setup.breakpoints:
        lines.append(f"breakpoint {_BREAKPOINT_REGISTERS[breakpoint.slot]} at {hexa(breakpoint.address)}")
    if setup.vmcb_next_rip:
        lines.append(f"vmcb next_rip {hexa(setup.vmcb_next_rip)}")
    return lines


def _memory_lines(setup: Setup) -> list[str]:
    lines = [f"code at {hexa(code.address)}: bytes {code.data.hex(' ')}" for code in setup.code]
    for page in setup.pages:
        presence = "present" if page.present else "not present"
        lines.append(f"page {hexa(page.address)} {presence} in {page.table.value}")
    for gate in setup.idt:
        words = [f"idt gate {vector_word(gate.vector)}", "present" if gate.present else "not present"]
        if gate.dpl != MAX_PRIVILEGE:
            words.append(f"dpl {gate.dpl}")
        if gate.gate_type is not GateType.INTERRUPT:
            words.append(f"type {gate.gate_type.value}")
        lines.append(" ".join(words))
    return lines


def _nesting_lines(setup: Setup) -> list[str]:
    nesting = setup.nesting
    if nesting is None:
        return []
    lines = [f"l1 {'with' if nesting.l1_nrips else 'without'} nrips"]
    if nesting.l1_npt:
        lines.append("l1 with npt")
    if nesting.l1_shstk:
        lines.append("l1 with shstk")
    intercepts = [vector_word(v) for v in nesting.intercepted_exceptions]
    for code in nesting.intercepted_exits:
        if code not in EXIT_WORDS:
            raise RenderError(f"no word for the exit code {code:#x} L1 intercepts")
        intercepts.append(EXIT_WORDS[code])
    if intercepts:
        lines.append("l1 intercepts " + ", ".join(intercepts))
    return lines


# -- steps -------------------------------------------------------------------------------------------------------------


def step_lines(program: Program) -> list[str]:
    return [line for step in program.steps for line in _step(step)]


def _step(step: Step) -> list[str]:
    match step:
        case Execute(count=count):
            return ["guest executes"] * count
        case Inject(source=source, event=event):
            return [f"inject {_event(event)} from {_INJECTION_WORDS[source]}{_error_code(event.error_code)}"]
        case L1Vmrun():
            return [_l1_vmrun(step)]
        case VectoringFault():
            return [_vectoring(step)]
        case ExitFor(exit_code=code):
            if code not in EXIT_WORDS:
                raise RenderError(f"no word for the exit code {code:#x}")
            return [f"exit for {EXIT_WORDS[code]}"]
        case ModifyCode(address=address, data=data):
            return [f"code at {hexa(address)} modified to bytes {data.hex(' ')}"]
        case SetPage(address=address, table=table, present=present):
            return [f"page {hexa(address)} {'mapped' if present else 'unmapped'} in {table.value}"]
        case CancelEntry():
            return ["entry cancelled"]
        case SaveRestore(regs_first=regs_first):
            return ["save and restore" + (" with regs first" if regs_first else "")]
        case Reenter():
            return ["host re-enters"]
        case Run(max_entries=_):
            return ["run"]
    raise RenderError(f"no sentence for the step {type(step).__name__}")  # pragma: no cover - steps are closed


def _event(event: Event) -> str:
    return event_words(event.vector, event.type)


def _error_code(error_code: int | None) -> str:
    return "" if error_code is None else f" with error_code={hexa(error_code)}"


def _l1_vmrun(step: L1Vmrun) -> str:
    fields = [f"next_rip={hexa(step.next_rip)}"]
    if step.rip is not None:
        fields.insert(0, f"rip={hexa(step.rip)}")
    if step.cs_base is not None:
        fields.append(f"cs_base={hexa(step.cs_base)}")
    if step.event_inj & events.ERROR_VALID:
        fields.append(f"error_code={hexa(step.event_inj_err)}")
    return f"inject event {hexa(step.event_inj & ~events.ERROR_VALID)} from L1 with " + ", ".join(fields)


def _vectoring(step: VectoringFault) -> str:
    during = "" if step.during is None else f" of {vector_word(step.during)}"
    fields = []
    if step.error_code is not None:
        fields.append(f"error_code={hexa(step.error_code)}")
    if step.cr2 is not None:
        fields.append(f"cr2={hexa(step.cr2)}")
    with_fields = f" with {', '.join(fields)}" if fields else ""
    handler = "handled by guest" if step.handled_by is Level.GUEST else f"intercepted by {step.handled_by.value}"
    return f"vectoring{during} hits {step.fault.value}{with_fields} {handler}"


# -- expectations ------------------------------------------------------------------------------------------------------


def expectation_lines(result: Result, subject: Event, extra_vectors: tuple[int, ...] = ()) -> list[str]:
    """What `result` shows about the subject event: outcome, deliveries, return address, #DB, where the guest ends.

    A delivered event is spelled with the type it was delivered as (`irq 0x80` when a soft INT n went in as an
    external interrupt, K-5.19-19): the language's delivery probes match vector and type.
    """
    lines = [f"expect outcome == {result.outcome.value}"]
    mine = [d for d in result.deliveries if d.vector == subject.vector]
    if not mine:
        lines.append(f"expect no {event_words(subject.vector, subject.type)}")
    else:
        spelled = event_words(subject.vector, mine[0].type)
        returned = "" if mine[0].return_rip is None else f" with return rip={hexa(mine[0].return_rip)}"
        lines.append(f"expect delivered {spelled}{returned}")
    lines.append(f"expect delivery_count == {len(mine)}")
    for vector in extra_vectors:
        first = next((d for d in result.deliveries if d.vector == vector), None)
        if first is None:
            lines.append(f"expect no {vector_word(vector)}")
        else:
            lines.append(f"expect delivered {event_words(vector, first.type)}")
    lines.append(f"expect spurious_db == {'true' if result.spurious_db else 'false'}")
    run = result.vmrun()
    if run is not None and run.event_inj & EVENT_VALID:
        lines.append(f"expect rf == {'true' if run.rf else 'false'}")
        lines.append(f"expect interrupt_shadow == {'true' if run.interrupt_shadow else 'false'}")
    exit12 = result.vmcb12_exit()
    if exit12 is not None:
        lines.append(f"expect vmcb12_exit_int_info == {hexa(exit12.exit_int_info)}")
    lines.append(f"expect final_rip == {hexa(result.final_rip)}")
    return lines
