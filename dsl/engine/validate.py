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


def _check(condition: bool, field: str, value: object, expected: str | Callable[[], str]) -> None:
    """Raise when `condition` fails; `expected` may be a function, so costly messages are built only then."""
    if not condition:
        raise EngineError(field, value, expected if isinstance(expected, str) else expected())


def _rip_limit(mode: CpuMode) -> int:
    return MAX_U64 if mode is CpuMode.LONG_64 else (1 << mode.bitness) - 1


def validate(program: Program) -> None:
    """Raise EngineError for the first impossible field of `program`."""
    _check(
        program.policy in POLICIES,
        "policy",
        program.policy.value,
        lambda: "one of " + ", ".join(p.value for p in implemented()),
    )
    _check(
        not program.options.seed_as_committed or program.policy is PolicyName.KVM_6_0,
        "options.seed_as_committed",
        True,
        "only with policy kvm-6.0 (the seed as first committed is a variant of kvm-6.0)",
    )
    _validate_setup(program.setup)
    for index, step in enumerate(program.steps):
        _validate_step(program, f"steps[{index}]", step)


def _validate_setup(setup: Setup) -> None:
    limit = _rip_limit(setup.mode)
    _check(0 <= setup.rip <= limit, "setup.rip", setup.rip, lambda: f"0 … {limit:#x} in {setup.mode.value} mode")
    _check(0 <= setup.cs_base <= MAX_U32, "setup.cs_base", setup.cs_base, "0 … 0xffffffff")
    _check(0 <= setup.rflags <= MAX_U64, "setup.rflags", setup.rflags, "a 64-bit value")
    _check(0 <= setup.cpl <= MAX_PRIVILEGE, "setup.cpl", setup.cpl, "0 … 3")
    _check(setup.mode is not CpuMode.REAL or setup.cpl == 0, "setup.cpl", setup.cpl, "0 in real mode")
    _check(0 <= setup.vmcb_next_rip <= MAX_U64, "setup.vmcb_next_rip", setup.vmcb_next_rip, "a 64-bit value")
    slots = [bp.slot for bp in setup.breakpoints]
    for bp in setup.breakpoints:
        _check(0 <= bp.slot < BREAKPOINT_SLOTS, "setup.breakpoints.slot", bp.slot, "DR0 … DR3 (0 … 3)")
        _check(slots.count(bp.slot) == 1, "setup.breakpoints.slot", bp.slot, "each DR slot used once")
    for gate in setup.idt:
        _check(0 <= gate.vector < VECTOR_COUNT, "setup.idt.vector", gate.vector, "0 … 0xff")
        _check(0 <= gate.dpl <= MAX_PRIVILEGE, "setup.idt.dpl", gate.dpl, "0 … 3")
    for code in setup.code:
        _check(0 <= code.address <= MAX_U64, "setup.code.address", code.address, "a 64-bit address")


def _validate_event(field: str, source: InjectionSource, event: Event) -> None:
    _check(0 <= event.vector < VECTOR_COUNT, f"{field}.vector", event.vector, "0 … 0xff")
    if event.type is EventType.EXCEPTION:
        _check(
            event.vector < EXCEPTION_VECTOR_LIMIT,
            f"{field}.vector",
            event.vector,
            "an exception vector 0 … 31 (KVM_SET_VCPU_EVENTS)",
        )
    else:
        _check(event.error_code is None, f"{field}.error_code", event.error_code, "no error code for a non-exception")
    if source is InjectionSource.GUEST_DEBUG:
        _check(
            event.type is EventType.EXCEPTION and event.vector in (Vector.BP, Vector.DB),
            f"{field}",
            f"vector {event.vector:#x} type {event.type.name}",
            "#BP or #DB (KVM_SET_GUEST_DEBUG injects only those)",
        )


def _validate_step(program: Program, field: str, step: object) -> None:
    check = _STEP_CHECKS.get(type(step))
    if check is not None:
        check(program.setup.nesting is not None, field, step)


def _execute(nested: bool, field: str, step: Execute) -> None:
    _check(step.count >= 1, f"{field}.count", step.count, "at least 1")


def _inject(nested: bool, field: str, step: Inject) -> None:
    _check(
        step.source is not InjectionSource.L1,
        f"{field}.source",
        step.source.value,
        "userspace or guest-debug (L1 injects with an L1 VMRUN step)",
    )
    _validate_event(f"{field}.event", step.source, step.event)


def _l1_vmrun(nested: bool, field: str, step: L1Vmrun) -> None:
    _check(nested, field, "L1 VMRUN", "a set-up with nesting (an L1 hypervisor)")
    _check(0 <= step.event_inj <= MAX_U32, f"{field}.event_inj", step.event_inj, "the low 32 bits of EVENTINJ")
    _check(0 <= step.next_rip <= MAX_U64, f"{field}.next_rip", step.next_rip, "a 64-bit value")


def _vectoring_fault(nested: bool, field: str, step: VectoringFault) -> None:
    _check(step.handled_by is not Level.L1 or nested, f"{field}.handled_by", "L1", "a set-up with nesting")
    _check(
        step.fault is not FaultKind.NPF or step.handled_by is not Level.GUEST,
        f"{field}.handled_by",
        "guest",
        "L0 or L1: an #NPF is never handled by the guest",
    )
    _check(step.during is None or 0 <= step.during < VECTOR_COUNT, f"{field}.during", step.during, "a vector 0 … 0xff")


def _exit_for(nested: bool, field: str, step: ExitFor) -> None:
    _check(
        step.exit_code in ASYNC_EXITS,
        f"{field}.exit_code",
        step.exit_code,
        lambda: "one of " + ", ".join(code.name for code in ASYNC_EXITS),
    )


def _modify_code(nested: bool, field: str, step: ModifyCode) -> None:
    _check(0 < len(step.data) <= MAX_PATCH_BYTES, f"{field}.data", len(step.data), "1 … 4096 bytes")


def _set_page(nested: bool, field: str, step: SetPage) -> None:
    _check(0 <= step.address <= MAX_U64, f"{field}.address", step.address, "a 64-bit address")


def _save_restore(nested: bool, field: str, step: SaveRestore) -> None:
    _check(nested, field, "save/restore", "a set-up with nesting (KVM_GET/SET_NESTED_STATE)")


def _run(nested: bool, field: str, step: Run) -> None:
    _check(step.max_entries >= 1, f"{field}.max_entries", step.max_entries, "at least 1")


#: The checks of each step class (steps with nothing to check have none): one dict lookup per step.
_STEP_CHECKS: dict[type, Callable[[bool, str, Any], None]] = {
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
