"""Reject programs the model cannot run, with an `EngineError` naming the field, its value and what was expected.

What the hardware itself rejects (an invalid EVENTINJ on VMRUN) is not an error here: it is modelled as
VMEXIT_INVALID (H-8, K-7.1-6).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from dsl.engine.errors import EngineError
from dsl.engine.policies import POLICIES, implemented
from dsl.engine.program import (
    BREAKPOINT_SLOTS,
    MAX_PRIVILEGE,
    Event,
    Execute,
    ExitFor,
    Inject,
    L1Vmrun,
    ModifyCode,
    Program,
    Run,
    SaveRestore,
    SetPage,
    Setup,
    VectoringFault,
)
from dsl.engine.vocab import (
    VECTOR_COUNT,
    CpuMode,
    EventType,
    ExitCode,
    FaultKind,
    InjectionSource,
    Level,
    PolicyName,
    Vector,
)

MAX_U32 = 0xFFFF_FFFF
MAX_U64 = (1 << 64) - 1
#: KVM_SET_VCPU_EVENTS accepts exception vectors 0-31 only.
EXCEPTION_VECTOR_LIMIT = 32
#: Exits `ExitFor` can model: asynchronous ones and instruction intercepts (the instruction at RIP).
ASYNC_EXITS: tuple[ExitCode, ...] = (
    ExitCode.INTR,
    ExitCode.NMI,
    ExitCode.NPF,
    ExitCode.CPUID,
    ExitCode.HLT,
    ExitCode.IOIO,
    ExitCode.MSR,
    ExitCode.VMMCALL,
)
#: A code write is a patch, not a memory image.
MAX_PATCH_BYTES = 4096


#: The largest RIP of each mode (a table: every run checks its set-up's RIP).
_RIP_LIMIT: dict[CpuMode, int] = {
    mode: MAX_U64 if mode is CpuMode.LONG_64 else (1 << mode.bitness) - 1 for mode in CpuMode
}


# Every run validates its program, and a check almost always holds: each one is a plain `if`, and the error (its
# message, a step's field name) is built only when it fails.


def validate(program: Program) -> None:
    """Raise EngineError for the first impossible field of `program`."""
    if program.policy not in POLICIES:
        raise EngineError("policy", program.policy.value, "one of " + ", ".join(p.value for p in implemented()))
    if program.options.seed_as_committed and program.policy is not PolicyName.KVM_6_0:
        raise EngineError(
            "options.seed_as_committed",
            True,
            "only with policy kvm-6.0 (the seed as first committed is a variant of kvm-6.0)",
        )
    _validate_setup(program.setup)
    nested = program.setup.nesting is not None
    for index, step in enumerate(program.steps):
        check = _STEP_CHECKS.get(type(step))
        if check is not None:
            check(nested, index, step)


def _validate_setup(setup: Setup) -> None:
    limit = _RIP_LIMIT[setup.mode]
    if not 0 <= setup.rip <= limit:
        raise EngineError("setup.rip", setup.rip, f"0 … {hex(limit)} in {setup.mode.value} mode")
    if not 0 <= setup.cs_base <= MAX_U32:
        raise EngineError("setup.cs_base", setup.cs_base, "0 … 0xffffffff")
    if not 0 <= setup.rflags <= MAX_U64:
        raise EngineError("setup.rflags", setup.rflags, "a 64-bit value")
    if not 0 <= setup.cpl <= MAX_PRIVILEGE:
        raise EngineError("setup.cpl", setup.cpl, "0 … 3")
    if setup.cpl != 0 and setup.mode is CpuMode.REAL:
        raise EngineError("setup.cpl", setup.cpl, "0 in real mode")
    if not 0 <= setup.vmcb_next_rip <= MAX_U64:
        raise EngineError("setup.vmcb_next_rip", setup.vmcb_next_rip, "a 64-bit value")
    slots = [bp.slot for bp in setup.breakpoints] if setup.breakpoints else []  # a comprehension is a call
    for bp in setup.breakpoints:
        if not 0 <= bp.slot < BREAKPOINT_SLOTS:
            raise EngineError("setup.breakpoints.slot", bp.slot, "DR0 … DR3 (0 … 3)")
        if slots.count(bp.slot) != 1:
            raise EngineError("setup.breakpoints.slot", bp.slot, "each DR slot used once")
    for gate in setup.idt:
        if not 0 <= gate.vector < VECTOR_COUNT:
            raise EngineError("setup.idt.vector", gate.vector, "0 … 0xff")
        if not 0 <= gate.dpl <= MAX_PRIVILEGE:
            raise EngineError("setup.idt.dpl", gate.dpl, "0 … 3")
    for code in setup.code:
        if not 0 <= code.address <= MAX_U64:
            raise EngineError("setup.code.address", code.address, "a 64-bit address")


def _field(index: int) -> str:
    """The name errors give step `index`."""
    return f"steps[{index}]"


def _validate_event(field: str, source: InjectionSource, event: Event) -> None:
    if not 0 <= event.vector < VECTOR_COUNT:
        raise EngineError(f"{field}.vector", event.vector, "0 … 0xff")
    if event.type is EventType.EXCEPTION:
        if event.vector >= EXCEPTION_VECTOR_LIMIT:
            raise EngineError(f"{field}.vector", event.vector, "an exception vector 0 … 31 (KVM_SET_VCPU_EVENTS)")
    elif event.error_code is not None:
        raise EngineError(f"{field}.error_code", event.error_code, "no error code for a non-exception")
    if source is InjectionSource.GUEST_DEBUG and not (
        event.type is EventType.EXCEPTION and event.vector in (Vector.BP, Vector.DB)
    ):
        raise EngineError(
            field,
            f"vector {hex(event.vector)} type {event.type.name}",
            "#BP or #DB (KVM_SET_GUEST_DEBUG injects only those)",
        )


def _execute(nested: bool, index: int, step: Execute) -> None:
    if step.count < 1:
        raise EngineError(f"{_field(index)}.count", step.count, "at least 1")


def _inject(nested: bool, index: int, step: Inject) -> None:
    if step.source is InjectionSource.L1:
        raise EngineError(
            f"{_field(index)}.source",
            step.source.value,
            "userspace or guest-debug (L1 injects with an L1 VMRUN step)",
        )
    _validate_event(f"{_field(index)}.event", step.source, step.event)


def _l1_vmrun(nested: bool, index: int, step: L1Vmrun) -> None:
    if not nested:
        raise EngineError(_field(index), "L1 VMRUN", "a set-up with nesting (an L1 hypervisor)")
    if not 0 <= step.event_inj <= MAX_U32:
        raise EngineError(f"{_field(index)}.event_inj", step.event_inj, "the low 32 bits of EVENTINJ")
    if not 0 <= step.next_rip <= MAX_U64:
        raise EngineError(f"{_field(index)}.next_rip", step.next_rip, "a 64-bit value")


def _vectoring_fault(nested: bool, index: int, step: VectoringFault) -> None:
    if step.handled_by is Level.L1 and not nested:
        raise EngineError(f"{_field(index)}.handled_by", "L1", "a set-up with nesting")
    if step.fault is FaultKind.NPF and step.handled_by is Level.GUEST:
        raise EngineError(f"{_field(index)}.handled_by", "guest", "L0 or L1: an #NPF is never handled by the guest")
    if step.during is not None and not 0 <= step.during < VECTOR_COUNT:
        raise EngineError(f"{_field(index)}.during", step.during, "a vector 0 … 0xff")


def _exit_for(nested: bool, index: int, step: ExitFor) -> None:
    if step.exit_code not in ASYNC_EXITS:
        raise EngineError(
            f"{_field(index)}.exit_code", step.exit_code, "one of " + ", ".join(code.name for code in ASYNC_EXITS)
        )


def _modify_code(nested: bool, index: int, step: ModifyCode) -> None:
    if not 0 < len(step.data) <= MAX_PATCH_BYTES:
        raise EngineError(f"{_field(index)}.data", len(step.data), "1 … 4096 bytes")


def _set_page(nested: bool, index: int, step: SetPage) -> None:
    if not 0 <= step.address <= MAX_U64:
        raise EngineError(f"{_field(index)}.address", step.address, "a 64-bit address")


def _save_restore(nested: bool, index: int, step: SaveRestore) -> None:
    if not nested:
        raise EngineError(_field(index), "save/restore", "a set-up with nesting (KVM_GET/SET_NESTED_STATE)")


def _run(nested: bool, index: int, step: Run) -> None:
    if step.max_entries < 1:
        raise EngineError(f"{_field(index)}.max_entries", step.max_entries, "at least 1")


#: The checks of each step class (steps with nothing to check have none): one dict lookup per step.
_STEP_CHECKS: dict[type, Callable[[bool, int, Any], None]] = {
    Execute: _execute,
    Inject: _inject,
    L1Vmrun: _l1_vmrun,
    VectoringFault: _vectoring_fault,
    ExitFor: _exit_for,
    ModifyCode: _modify_code,
    SetPage: _set_page,
    SaveRestore: _save_restore,
    Run: _run,
}
