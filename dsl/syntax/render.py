"""One AST statement → its canonical text (used by the formatter and by reports that quote a statement).

Numbers are printed as their author wrote them (`ast.Number`); only numbers built in code, which have no
spelling, get the canonical form: hex, or decimal below ten and for counts.
"""

from __future__ import annotations

from dsl.syntax import ast, vocabulary
from dsl.syntax.transform import quote

_HEX_PREFIX = "0x"
#: Numbers below this read the same in decimal and hex, so canonical form writes them without `0x`.
DECIMAL_BELOW = 10


def hex_number(value: int) -> str:
    """`0x1000`, `-0x20`; numbers below ten, the same in both bases, stay short: `0`, `3`, `-1`."""
    if -DECIMAL_BELOW < value < DECIMAL_BELOW:
        return str(value)
    return f"-{_HEX_PREFIX}{-value:x}" if value < 0 else f"{_HEX_PREFIX}{value:x}"


def number(value: int) -> str:
    """A number as its author wrote it (`ast.Number.spelling`); one built in code in canonical form (`hex_number`)."""
    return value.spelling if isinstance(value, ast.Number) else hex_number(value)


def _count(value: int) -> str:
    """A count as written, or in decimal when built in code (`delivery_count == 2` reads as a count)."""
    return value.spelling if isinstance(value, ast.Number) else str(value)


def names(items: tuple[ast.Name, ...]) -> str:
    return ", ".join(n.text for n in items)


def vector(ref: ast.VectorRef) -> str:
    return ref.text if isinstance(ref, ast.Name) else number(ref)


def event(spec: ast.EventSpec) -> str:
    match spec.kind:
        case ast.EventKind.EXCEPTION:
            return vector(spec.vector) if spec.vector is not None else "#??"
        case ast.EventKind.SOFT_INTERRUPT:
            return f"int {vector(spec.vector) if spec.vector is not None else ''}"
        case ast.EventKind.INTERRUPT:
            return f"irq {vector(spec.vector) if spec.vector is not None else ''}"
        case ast.EventKind.NMI:
            return "nmi"
    return f"event {number(spec.raw if spec.raw is not None else 0)}"


def fields(items: tuple[ast.FieldValue, ...]) -> str:
    return ", ".join(f"{f.field.text}={number(f.value)}" for f in items)


def operand(op: ast.Operand) -> str:
    match op:
        case ast.Register(name=name):
            return name
        case ast.Immediate(value=value, modifier=modifier):
            return f"{modifier} {number(value)}" if modifier else number(value)
    assert isinstance(op, ast.Memory)
    scaled = f"{op.index}*{_count(op.scale)}" if op.index and op.scale != 1 else op.index
    terms = [t for t in (op.base, scaled) if t]
    # Spaces around + and -: `ebp-0x8` would read as one name (names may contain '-').
    text = " + ".join(terms)
    if op.displacement or not terms:
        shown = number(op.displacement)
        if terms:
            text += f" - {shown[1:]}" if shown.startswith("-") else f" + {shown}"
        else:
            text += shown
    size = f"{op.size} ptr " if op.size else ""
    return f"{size}[{text}]"


def code(c: ast.Code) -> str:
    if isinstance(c, ast.RawBytes):
        return "bytes " + " ".join(f"{b:02x}" for b in c.data)
    words = [p.text for p in c.prefixes] + [c.mnemonic.text]
    head = " ".join(words)
    return f"{head} {', '.join(operand(o) for o in c.operands)}" if c.operands else head


def _level(level: ast.Level) -> str:
    return "handled by guest" if level is ast.Level.GUEST else f"intercepted by {level.value}"


def value(v: ast.ExpectedValue) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return number(v)
    if isinstance(v, ast.Name):
        return v.text
    return quote(v)


def _setting(s: ast.Setting) -> str:
    match s:
        case ast.ProfileSetting(profile=n):
            return f"profile {n.text}"
        case ast.PoliciesSetting(policies=ns):
            return f"policies {names(ns)}"
        case ast.NripsSetting(enabled=enabled):
            return f"nrips {int(enabled)}"
        case ast.PagingSetting(paging=n):
            return f"paging {n.text}"
        case ast.ProtectionSetting(protection=n):
            return f"protection {n.text}"
        case ast.VariantSetting(variant=n):
            return f"variant {n.text}"
        case ast.ReadingSetting(reading=n):
            return f"int-n reading {n.text}"
        case ast.GuestDebugSetting(mode=n):
            return f"guest debug {n.text}"
        case ast.ModeSetting(mode=n):
            return f"mode {n.text}"
        case ast.CsBaseSetting(base=base):
            return f"cs base {number(base)}"
        case ast.RipSetting(rip=rip):
            return f"rip {number(rip)}"
        case ast.RflagsSetting(value=v, flags=flags):
            return f"rflags {number(v)}" if v is not None else f"rflags {names(flags)}"
        case ast.InterruptShadowSetting(shadow=n):
            return f"interrupt shadow {n.text}"
        case ast.CplSetting(cpl=cpl):
            return f"cpl {_count(cpl)}"
        case ast.GifSetting(gif=gif):
            return f"gif {_count(gif)}"
        case ast.BreakpointSetting(register=r, address=a):
            return f"breakpoint {r.text} at {number(a)}"
        case ast.PageSetting(address=a, present=p, tables=t):
            return f"page {number(a)} {'present' if p else 'not present'} in {t.value}"
        case ast.IdtGateSetting():
            parts = [f"idt gate {vector(s.vector)}", "present" if s.present else "not present"]
            if s.dpl is not None:
                parts.append(f"dpl {_count(s.dpl)}")
            if s.gate_type is not None:
                parts.append(f"type {s.gate_type.text}")
            return " ".join(parts)
        case ast.VmcbFieldSetting(vmcb=vmcb, field=f, value=v):
            return f"{vmcb.value} {f.text} {number(v)}"
        case ast.L1FeatureSetting(feature=f, present=p):
            return f"l1 {'with' if p else 'without'} {f.text}"
        case ast.L1InterceptSetting(intercepts=ns):
            return f"l1 intercepts {names(ns)}"
        case ast.CodeSetting(address=a, code=c):
            return f"code at {number(a)}: {code(c)}"


def _step(s: ast.Step) -> str:
    match s:
        case ast.ExecuteStep(instruction=c):
            return "guest executes" + (f" {code(c)}" if c is not None else "")
        case ast.InjectStep(event=e, source=source, fields=fs):
            where = {"userspace": "userspace", "guest-debug": "guest debug", "L1": "L1"}[source.value]
            return f"inject {event(e)} from {where}" + (f" with {fields(fs)}" if fs else "")
        case ast.VectoringStep(fault=f, during=d, fields=fs, handler=h):
            of = f" of {vector(d)}" if d is not None else ""
            with_ = f" with {fields(fs)}" if fs else ""
            return f"vectoring{of} hits {f.text}{with_} {_level(h)}"
        case ast.ExitStep(reason=r, handler=h):
            return f"exit for {r.text}" + ("" if h is ast.Level.L0 else f" {_level(h)}")
        case ast.CodeModifiedStep(address=a, code=c):
            return f"code at {number(a)} modified to {code(c)}"
        case ast.PageStep(address=a, mapped=m, tables=t):
            return f"page {number(a)} {'mapped' if m else 'unmapped'} in {t.value}"
        case ast.CancelEntryStep():
            return "entry cancelled"
        case ast.SaveRestoreStep(nested_run_pending=pending, regs_first=regs):
            options = [o for o, on in (("nested run pending", pending), ("regs first", regs)) if on]
            return "save and restore" + (f" with {', '.join(options)}" if options else "")
        case ast.ReenterStep():
            return "host re-enters"
        case ast.RunStep():
            return "run"


def expectation(e: ast.Expectation) -> str:
    match e:
        case ast.OutcomeExpectation(outcome=o, checks=cs):
            pairs = ", ".join(f"{c.field.text}={observed(c.field.text, c.value)}" for c in cs)
            return f"expect {vocabulary.outcome_spelling(o)}" + (f" with {pairs}" if cs else "")
        case ast.DeliveredExpectation(event=ev, return_rip=rip, error_code=err, negated=negated):
            if negated:
                return f"expect no {event(ev)}"
            extra = [t for t in (rip is not None and f"return rip={number(rip)}", err is not None and
                                 f"error_code={number(err)}") if t]  # fmt: skip
            return f"expect delivered {event(ev)}" + (f" with {', '.join(extra)}" if extra else "")
        case ast.SpuriousDbExpectation(present=present):
            return "expect spurious #DB" if present else "expect no spurious #DB"
    assert isinstance(e, ast.FieldExpectation)
    pick = "" if e.pick is None else f"[{e.pick.text if isinstance(e.pick, ast.Name) else _count(e.pick)}]"
    return f"expect {e.observable.text}{pick} {e.comparison.value} {observed(e.observable.text, e.value)}"


def observed(observable: str, v: ast.ExpectedValue) -> str:
    """The value expected of `observable` (counts built in code in decimal)."""
    if observable in vocabulary.COUNTS and isinstance(v, int) and not isinstance(v, bool):
        return _count(v)
    return value(v)


def statement(s: ast.Statement) -> str:
    """The canonical text of one statement (what `svmdsl fmt` writes)."""
    if isinstance(s, ast.Under):
        return f"under {names(s.policies)}: " + "; ".join(expectation(e) for e in s.expectations)
    if isinstance(s, ast.SETTING_TYPES):
        text = _setting(s)  # type: ignore[arg-type]
    elif isinstance(s, ast.STEP_TYPES):
        text = _step(s)  # type: ignore[arg-type]
    else:
        text = expectation(s)  # type: ignore[arg-type]
    return text
