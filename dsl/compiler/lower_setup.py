"""Lowering of set-up lines and steps: `ast` settings → engine `Setup`, profile, options; `ast` steps → engine steps."""

from __future__ import annotations

from typing import Any

import attrs

from dsl.compiler.assemble import AssembleError, assemble
from dsl.compiler.lower_names import Context, did_you_mean, exit_reason, member, plain, vector
from dsl.engine import program as engine
from dsl.engine.vocab import (
    EXCEPTION_EXIT_BASE,
    VECTOR_COUNT,
    CpuMode,
    EventType,
    FaultKind,
    GateType,
    HardwareProfile,
    InjectionSource,
    PagingMode,
    PolicyName,
    Protection,
    SoftIntReading,
    Vector,
    policy_by_name,
    policy_names,
)
from dsl.errors import Loc
from dsl.syntax import ast
from dsl.syntax.vocabulary import (
    BREAKPOINT_REGISTERS,
    INJECT_FIELDS,
    INTERRUPT_SHADOWS,
    RFLAGS_BITS,
    RFLAGS_RESERVED_ONE,
    VECTORS,
)

#: EVENTINJ fields (README § Encodings).
EVENT_VALID = 0x8000_0000
EVENT_ERROR_VALID = 0x800
EVENT_TYPE_SHIFT = 8
EVENT_TYPE_MASK = 0x7
EVENT_VECTOR_MASK = 0xFF
#: 4-GiB wrap of the linear address outside 64-bit mode (H-31).
LINEAR_MASK_32 = 0xFFFF_FFFF

#: `interrupt shadow …` words: only `none` means no shadow (STI and MOV SS shadows behave alike here, H-35).
_NO_SHADOW = "none"
_SEED_AS_COMMITTED = "seed-as-committed"
_GUEST_DEBUG_SW_BP = "sw-bp"
#: How an event named by its vector is injected, by how it is written (`#BP`, `int 0x80`, `irq 0x20`).
_EVENT_TYPES = {
    ast.EventKind.EXCEPTION: EventType.EXCEPTION,
    ast.EventKind.SOFT_INTERRUPT: EventType.SOFT,
    ast.EventKind.INTERRUPT: EventType.INTR,
}
#: `l1 with …` features → the engine's Nesting fields.
_L1_FEATURES: dict[str, str] = {"nrips": "l1_nrips", "npt": "l1_npt", "shstk": "l1_shstk"}


@attrs.frozen
class Configured:
    """What the set-up lines say: the engine set-up and the run parameters."""

    setup: engine.Setup
    profile: HardwareProfile
    options: engine.PolicyOptions
    policies: tuple[PolicyName, ...]
    policies_loc: Loc | None
    vmcb12: dict[str, int] = attrs.field(eq=False)


def configure(ctx: Context, settings: tuple[ast.Setting, ...]) -> Configured:
    """Fold the set-up lines, in order (background first), into engine values; a later line overrides."""
    setup: dict[str, Any] = {}
    options: dict[str, Any] = {}
    nesting: dict[str, Any] | None = None
    profile = HardwareProfile.AMD_NRIPS
    policies: tuple[PolicyName, ...] = ()
    policies_loc: Loc | None = None
    vmcb12: dict[str, int] = {}
    placed: list[tuple[int, ast.Code]] = []  # assembled after the loop, in the final mode
    pages: list[engine.PagePresence] = []
    idt: list[engine.IdtGate] = []
    breakpoints: list[engine.CodeBreakpoint] = []

    for setting in settings:
        match setting:
            case ast.ProfileSetting(profile=name):
                profile = member(ctx, name, HardwareProfile, "hardware profile")
            case ast.PoliciesSetting(policies=names):
                policies = tuple(policy_of(ctx, name) for name in names)
                policies_loc = setting.loc
            case ast.NripsSetting(enabled=enabled):
                options["nrips"] = enabled
            case ast.PagingSetting(paging=name):
                options["paging"] = member(ctx, name, PagingMode, "paging mode")
            case ast.ProtectionSetting(protection=name):
                options["protection"] = member(ctx, name, Protection, "guest protection")
            case ast.VariantSetting(variant=name):
                if name.text != _SEED_AS_COMMITTED:
                    raise ctx.error(name.loc, f"unknown policy variant {name.text!r}", expected=_SEED_AS_COMMITTED)
                options["seed_as_committed"] = True
            case ast.ReadingSetting(reading=name):
                options["soft_int_reading"] = member(ctx, name, SoftIntReading, "K-6.19-6 reading")
            case ast.GuestDebugSetting(mode=name):
                options["guest_debug_sw_bp"] = name.text == _GUEST_DEBUG_SW_BP
            case ast.ModeSetting(mode=name):
                setup["mode"] = member(ctx, name, CpuMode, "CPU mode")
            case ast.CsBaseSetting(base=base):
                setup["cs_base"] = int(base)
            case ast.RipSetting(rip=rip):
                setup["rip"] = int(rip)
            case ast.RflagsSetting():
                setup["rflags"] = _rflags(ctx, setting)
            case ast.InterruptShadowSetting(shadow=name):
                if name.text not in INTERRUPT_SHADOWS:
                    raise ctx.error(
                        name.loc, f"unknown interrupt shadow {name.text!r}", expected=", ".join(INTERRUPT_SHADOWS)
                    )
                setup["interrupt_shadow"] = name.text != _NO_SHADOW
            case ast.CplSetting(cpl=cpl):
                setup["cpl"] = int(cpl)
            case ast.GifSetting(gif=gif):
                setup["gif"] = bool(gif)
            case ast.BreakpointSetting(register=name, address=address):
                if name.text not in BREAKPOINT_REGISTERS:
                    raise ctx.error(name.loc, f"{name.text!r} is not a breakpoint register", expected="dr0 … dr3")
                breakpoints.append(engine.CodeBreakpoint(BREAKPOINT_REGISTERS.index(name.text), int(address)))
            case ast.PageSetting(address=address, present=present, tables=tables):
                pages.append(engine.PagePresence(int(address), tables, present))
            case ast.IdtGateSetting():
                idt.append(_gate(ctx, setting))
            case ast.VmcbFieldSetting():
                _vmcb_field(ctx, setting, setup, vmcb12)
            case ast.L1FeatureSetting(feature=name, present=present):
                nesting = nesting if nesting is not None else {}
                if name.text not in _L1_FEATURES:
                    raise ctx.error(name.loc, f"unknown L1 feature {name.text!r}", expected=", ".join(_L1_FEATURES))
                nesting[_L1_FEATURES[name.text]] = present
            case ast.L1InterceptSetting(intercepts=names):
                nesting = nesting if nesting is not None else {}
                _intercepts(ctx, names, nesting)
            case ast.CodeSetting(address=address, code=written):
                placed.append((int(address), written))
    mode = setup.get("mode", CpuMode.LONG_64)
    code = [engine.CodeBytes(address, code_bytes(ctx, written, address, mode)) for address, written in placed]
    if vmcb12 and nesting is None:
        nesting = {}
    setup_value = engine.Setup(
        **setup,
        code=tuple(code),
        pages=tuple(pages),
        idt=tuple(idt),
        breakpoints=tuple(breakpoints),
        nesting=engine.Nesting(**nesting) if nesting is not None else None,
    )
    return Configured(setup_value, profile, engine.PolicyOptions(**options), policies, policies_loc, vmcb12)


def policy_of(ctx: Context, name: ast.Name) -> PolicyName:
    found = policy_by_name(name.text)
    if found is None:
        raise ctx.error(
            name.loc,
            f"unknown policy {name.text!r}",
            expected=", ".join(policy_names()),
            hint=did_you_mean(name.text, list(policy_names())),
        )
    return found


def _rflags(ctx: Context, setting: ast.RflagsSetting) -> int:
    if setting.value is not None:
        return int(setting.value)
    value = RFLAGS_RESERVED_ONE
    for flag in setting.flags:
        bit = RFLAGS_BITS.get(flag.text)
        if bit is None:
            raise ctx.error(flag.loc, f"unknown RFLAGS flag {flag.text!r}", expected=" ".join(RFLAGS_BITS))
        value |= 1 << bit
    return value


def _gate(ctx: Context, setting: ast.IdtGateSetting) -> engine.IdtGate:
    gate_type = GateType.INTERRUPT
    if setting.gate_type is not None:
        gate_type = member(ctx, setting.gate_type, GateType, "gate type")
    return engine.IdtGate(
        vector=vector(ctx, setting.vector, setting.loc),
        present=setting.present,
        dpl=engine.MAX_PRIVILEGE if setting.dpl is None else int(setting.dpl),
        gate_type=gate_type,
    )


def _vmcb_field(ctx: Context, setting: ast.VmcbFieldSetting, setup: dict[str, Any], vmcb12: dict[str, int]) -> None:
    field = setting.field.text
    if setting.vmcb is ast.Vmcb.VMCB and field == "next_rip":
        setup["vmcb_next_rip"] = int(setting.value)
        return
    if setting.vmcb is ast.Vmcb.VMCB12 and field in ("event_inj", "event_inj_err", "rip", "next_rip", "cs_base"):
        vmcb12[field] = int(setting.value)
        return
    supported = "vmcb next_rip; vmcb12 event_inj, event_inj_err, rip, next_rip, cs_base"
    raise ctx.error(
        setting.field.loc,
        f"the engine does not model {setting.vmcb.value} {field}",
        expected=f"one of: {supported}",
    )


def _intercepts(ctx: Context, names: tuple[ast.Name, ...], nesting: dict[str, Any]) -> None:
    exceptions = list(nesting.get("intercepted_exceptions", ()))
    exits = list(nesting.get("intercepted_exits", ()))
    for name in names:
        reason = exit_reason(ctx, name)
        exception = reason - EXCEPTION_EXIT_BASE
        if name.text in VECTORS and 0 <= exception < VECTOR_COUNT:
            exceptions.append(Vector(exception))  # `l1 intercepts #PF`: an exception intercept
        else:
            exits.append(reason)
    nesting["intercepted_exceptions"] = tuple(exceptions)
    nesting["intercepted_exits"] = tuple(exits)


def code_bytes(ctx: Context, code: ast.Code, address: int, mode: CpuMode) -> bytes:
    """The bytes of an instruction (assembled at `address` for the guest's mode) or of a `bytes …` line."""
    try:
        return assemble(code, address, mode)
    except AssembleError as problem:
        raise ctx.error(problem.loc, problem.message, expected=problem.expected) from None


def linear(setup: engine.Setup, rip: int) -> int:
    """The linear address of `rip` (H-31): CS.base is ignored in 64-bit mode, added mod 2^32 otherwise."""
    if setup.mode.ignores_cs_base:
        return rip
    return (setup.cs_base + rip) & LINEAR_MASK_32


# --- steps -------------------------------------------------------------------------------------------------------


def event_of(ctx: Context, spec: ast.EventSpec) -> tuple[int, EventType]:
    """Vector and EVENTINJ type of an event as written."""
    if spec.kind is ast.EventKind.RAW:
        raw = spec.raw or 0
        kind = (raw >> EVENT_TYPE_SHIFT) & EVENT_TYPE_MASK
        if kind not in {t.value for t in EventType}:
            raise ctx.error(spec.loc, f"event {raw:#x} has a reserved type {kind}", expected="type 0, 2, 3 or 4")
        return raw & EVENT_VECTOR_MASK, EventType(kind)
    if spec.kind is ast.EventKind.NMI:
        return int(Vector.NMI), EventType.NMI
    assert spec.vector is not None
    return vector(ctx, spec.vector, spec.loc), _EVENT_TYPES[spec.kind]


def lower_step(ctx: Context, step: ast.Step, configured: Configured) -> engine.Step:
    """One step of the scenario as an engine step."""
    match step:
        case ast.ExecuteStep():
            return engine.Execute()
        case ast.InjectStep():
            return _inject(ctx, step, configured)
        case ast.VectoringStep(fault=name, during=during, handler=handler):
            return engine.VectoringFault(
                fault=member(ctx, name, FaultKind, "fault"),
                handled_by=handler,
                error_code=plain(step.error_code),
                cr2=plain(step.cr2),
                during=None if during is None else vector(ctx, during, step.loc),
            )
        case ast.ExitStep(reason=name):
            return engine.ExitFor(exit_reason(ctx, name))
        case ast.CodeModifiedStep(address=address, code=written):
            return engine.ModifyCode(int(address), code_bytes(ctx, written, address, configured.setup.mode))
        case ast.PageStep(address=address, mapped=mapped, tables=tables):
            return engine.SetPage(int(address), tables, mapped)
        case ast.CancelEntryStep():
            return engine.CancelEntry()
        case ast.SaveRestoreStep(regs_first=regs_first):
            return engine.SaveRestore(regs_first=regs_first)
        case ast.ReenterStep():
            return engine.Reenter()
        case ast.RunStep():
            return engine.Run()
    raise AssertionError(f"unhandled step {type(step).__name__}")  # pragma: no cover - the AST is closed


def _inject(ctx: Context, step: ast.InjectStep, configured: Configured) -> engine.Step:
    allowed = INJECT_FIELDS[step.source.value]
    for field in step.fields:
        if field.field.text not in allowed:
            raise ctx.error(field.field.loc, f"unknown field {field.field.text!r} here", expected=", ".join(allowed))
    fields = {f.field.text: int(f.value) for f in step.fields}
    error_code = fields.get("error_code")
    if step.source is not InjectionSource.L1:
        number, kind = event_of(ctx, step.event)
        return engine.Inject(step.source, engine.Event(number, kind, error_code))
    vmcb12 = configured.vmcb12
    return engine.L1Vmrun(
        event_inj=_l1_event_inj(ctx, step.event, error_code),
        event_inj_err=error_code if error_code is not None else vmcb12.get("event_inj_err", 0),
        rip=fields.get("rip", vmcb12.get("rip")),
        next_rip=fields.get("next_rip", vmcb12.get("next_rip", 0)),
        cs_base=fields.get("cs_base", vmcb12.get("cs_base")),
    )


def _l1_event_inj(ctx: Context, spec: ast.EventSpec, error_code: int | None) -> int:
    """vmcb12 EVENTINJ as L1 writes it. A raw event goes through as written, reserved type and all: L1 may write
    any 32 bits, and the engine models the VMRUN that fails on them (H-8, K-7.1-6)."""
    if spec.kind is ast.EventKind.RAW:
        return int(spec.raw or 0)
    number, kind = event_of(ctx, spec)
    encoded = EVENT_VALID | (kind.value << EVENT_TYPE_SHIFT) | number
    if error_code is not None:
        encoded |= EVENT_ERROR_VALID
    return encoded


def l1_vmrun_from_vmcb12(configured: Configured) -> engine.L1Vmrun:
    """The VMRUN of L1 that the `vmcb12 …` lines describe, when no `inject … from L1` step spells it out."""
    vmcb12 = configured.vmcb12
    return engine.L1Vmrun(
        event_inj=vmcb12.get("event_inj", 0),
        event_inj_err=vmcb12.get("event_inj_err", 0),
        rip=vmcb12.get("rip"),
        next_rip=vmcb12.get("next_rip", 0),
        cs_base=vmcb12.get("cs_base"),
    )
