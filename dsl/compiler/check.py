"""The checker: what the grammar cannot catch, each with a clear message and a "did you mean" where one exists.

Unknown names (profile, policy, mode, vector, fault, exit reason, mnemonic, observable …), values out of range
for the mode, contradictory set-up, expectations under a policy the scenario does not run, duplicate scenario
titles, outline columns no placeholder uses. `check` returns every diagnostic; `check_file` (= `check_or_raise`)
raises one `SvmCheckError` carrying all errors and returns the warnings; `load` parses and checks a path.
Nothing but `SvmError` is ever raised.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import attrs

from dsl.compiler.assemble import MNEMONICS, AssembleError, assemble
from dsl.compiler.check_events import check_raw_event
from dsl.compiler.check_expect import check_value
from dsl.compiler.check_scenario import (
    DEFAULT_RIP,
    check_consistency,
    is_nesting,
    last_mode,
    last_rip,
    policies_of,
    setting_key,
    setting_label,
)
from dsl.engine.vocab import CpuMode, PolicyName, policy_by_name
from dsl.errors import (
    Diagnostic,
    Loc,
    Severity,
    SvmCheckError,
    SvmSyntaxError,
    make_diagnostic,
    sort_diagnostics,
)
from dsl.syntax import ast, vocabulary
from dsl.syntax.expand import background_settings
from dsl.syntax.outline import placeholders
from dsl.syntax.parse import parse_file, parse_recovering

#: Bits of a linear address outside 64-bit mode (CS.base + offset wraps at 4 GiB, README glossary).
LINEAR_BITS_LEGACY = 32
PRIVILEGE_BITS = 2  # CPL and DPL are 0-3
FLAG_BITS = 1
VECTOR_BITS = 8
WORD_BITS = 64
VMCB12_EVENT_INJ = "event_inj"


def load(path: str | os.PathLike[str]) -> ast.SvmFile:
    """Parse and check a file: the AST, or an `SvmError` (syntax or check) carrying every problem."""
    try:
        svm_file = parse_file(path)
    except SvmSyntaxError as error:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):  # the error already says the file cannot be read
            raise error from None
        raise with_checker_errors(error, text, os.fspath(path)) from None
    check_or_raise(svm_file)
    return svm_file


def with_checker_errors(error: SvmSyntaxError, text: str, filename: str) -> SvmSyntaxError:
    """Issue 3: the syntax errors plus the checker's errors on the blocks that did parse, in file order.

    So one broken scenario does not hide the others' mistakes. `error` alone when what parsed cannot be
    checked fairly (a background or include was lost; see `parse_recovering`).
    """
    partial = parse_recovering(text, filename)
    if partial is None:
        return error
    found = tuple(d for d in check(partial) if d.severity is Severity.ERROR)
    return type(error)(sort_diagnostics((*error.diagnostics, *found)))


def check_or_raise(svm_file: ast.SvmFile) -> tuple[Diagnostic, ...]:
    """Raise `SvmCheckError` if the checker finds an error; otherwise return the warnings."""
    diagnostics = check(svm_file)
    if any(d.severity is Severity.ERROR for d in diagnostics):
        raise SvmCheckError(diagnostics)
    return diagnostics


def check_file(svm_file: ast.SvmFile) -> tuple[Diagnostic, ...]:
    """The entry point for the pipeline: raise `SvmCheckError` on any error, else return the warnings."""
    return check_or_raise(svm_file)


def check(svm_file: ast.SvmFile) -> tuple[Diagnostic, ...]:
    """Every diagnostic for the file (errors and warnings), in file order."""
    checker = _Checker(_texts(svm_file))
    checker.file(svm_file)
    return sort_diagnostics(checker.diagnostics)


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """'did you mean X?' for the nearest candidate (case-insensitive), or None."""
    found = vocabulary.nearest(word, candidates)
    return f"did you mean {found}?" if found else None


def _texts(svm_file: ast.SvmFile) -> dict[str, str]:
    texts = {svm_file.path: svm_file.text}
    for include in svm_file.includes:
        if include.file is not None:
            texts.update(_texts(include.file))
    return texts


#: Longer lists are cut in "expected" lines (a "did you mean" names the likely one anyway).
MAX_LISTED = 12


def _one_of(options: Sequence[str], what: str) -> str:
    if len(options) > MAX_LISTED:  # a long list would bury the hint; the reference lists them all
        return f"a known {what} (see docs/language.md)"
    return "one of " + ", ".join(options)


class _Checker:
    def __init__(self, texts: dict[str, str]) -> None:
        self.texts = texts
        self.diagnostics: list[Diagnostic] = []
        self.rip_at_start = DEFAULT_RIP
        #: True once a step has run: RIP may have moved (retry, skip, re-injection…), so it is no longer known.
        self.stepped = False

    # --- reporting --------------------------------------------------------------------------------------------

    def error(self, loc: Loc, message: str, expected: str | None = None, hint: str | None = None) -> None:
        text = self.texts.get(loc.file)
        self.diagnostics.append(make_diagnostic(text, loc, message, expected=expected, hint=hint))

    def warn(self, loc: Loc, message: str, hint: str | None = None) -> None:
        text = self.texts.get(loc.file)
        self.diagnostics.append(make_diagnostic(text, loc, message, hint=hint, severity=Severity.WARNING))

    def name(self, name: ast.Name, what: str, options: Sequence[str]) -> bool:
        """Report `name` unless it is one of `options`; True when it is known."""
        if name.text in options:
            return True
        self.error(name.loc, f"unknown {what} '{name.text}'", _one_of(options, what), did_you_mean(name.text, options))
        return False

    def value(self, loc: Loc, value: int, what: str, bits: int) -> None:
        limit = (1 << bits) - 1
        if 0 <= value <= limit:
            return
        if bits < VECTOR_BITS:  # small fields (cpl, dpl, gif) read better in decimal
            self.error(loc, f"{what} {value} is out of range", f"a value from 0 to {limit}")
        else:
            self.error(loc, f"{what} {value:#x} is out of range", f"a value from 0 to {limit:#x} ({bits} bits)")

    # --- file structure ---------------------------------------------------------------------------------------

    def file(self, svm_file: ast.SvmFile) -> None:
        backgrounds = svm_file.backgrounds
        for extra in backgrounds[1:]:
            self.error(
                extra.loc, "a file has at most one background", hint=f"the first is at line {backgrounds[0].loc.line}"
            )
        for include in svm_file.includes:
            if include.file is not None and include.file.scenarios:
                self.error(
                    include.loc,
                    f'"{include.path}" holds scenarios; an included file may hold only background and include',
                )
        shared = background_settings(svm_file)
        for background in backgrounds:
            self.duplicates(background.statements)
        self.block(shared, ())
        titles: dict[str, ast.Scenario | ast.ScenarioOutline] = {}
        for item in svm_file.scenarios:
            if item.title in titles:
                first = titles[item.title].loc
                self.error(
                    item.loc, f'duplicate scenario title "{item.title}"', hint=f"first used at line {first.line}"
                )
            titles.setdefault(item.title, item)
            if isinstance(item, ast.ScenarioOutline):
                self.outline(item, shared)
            else:
                self.duplicates(item.statements)
                self.block(shared, item.statements)

    def outline(self, outline: ast.ScenarioOutline, shared: tuple[ast.Setting, ...]) -> None:
        examples = outline.examples
        if not examples.rows:
            self.error(examples.loc, "an examples table needs at least one row after its header")
        texts = [line.text for line in outline.template] + [outline.title, *outline.sources, outline.description or ""]
        used = {name for text in texts for name, _ in placeholders(text)}
        for column in examples.columns:
            if column not in used:
                self.error(examples.loc, f"column '{column}' is not used by any <{column}> placeholder")
        row_dependent = {line.loc.line for line in outline.template if placeholders(line.text)}
        seen: set[tuple[Loc, str]] = set()
        for scenario in outline.scenarios:
            before = len(self.diagnostics)
            self.duplicates(scenario.statements)
            self.block(shared, scenario.statements)
            if scenario.example is not None:
                self.name_row(before, scenario.example, row_dependent, seen)

    def name_row(self, since: int, row: ast.ExampleRow, row_dependent: set[int], seen: set[tuple[Loc, str]]) -> None:
        """Problems found in one row's expansion: each reported once for the whole outline, and those on a line
        with placeholders say which row they come from."""
        note = f"examples row at line {row.loc.line}: | {' | '.join(row.cells)} |"
        found = self.diagnostics[since:]
        del self.diagnostics[since:]
        for diagnostic in found:
            key = (diagnostic.loc, diagnostic.message)
            if key in seen:
                continue
            seen.add(key)
            if diagnostic.loc.line in row_dependent:
                hint = f"{diagnostic.hint} ({note})" if diagnostic.hint else f"in the {note}"
                diagnostic = attrs.evolve(diagnostic, hint=hint)
            self.diagnostics.append(diagnostic)

    # --- one scenario -----------------------------------------------------------------------------------------

    def duplicates(self, statements: Sequence[ast.Statement]) -> None:
        """A single-valued setting given twice in one block with different values is a contradiction."""
        seen: dict[object, ast.Setting] = {}
        for statement in statements:
            key = setting_key(statement)
            if key is None:
                continue
            assert isinstance(statement, ast.SETTING_TYPES)
            first = seen.get(key)
            if first is not None and first != statement:
                self.error(
                    statement.loc,
                    f"{setting_label(key)} is set twice with different values",
                    hint=f"the other value is at line {first.loc.line}; a scenario may override its background, "
                    "but one block states each setting once",
                )
            seen.setdefault(key, statement)  # type: ignore[arg-type]

    def block(self, shared: tuple[ast.Setting, ...], own: tuple[ast.Statement, ...]) -> None:
        statements = (*shared, *own)
        mode = last_mode(statements)
        policies = policies_of(statements)
        nested = any(is_nesting(s) for s in statements)
        self.rip_at_start = last_rip(statements)
        self.stepped = False
        for statement in statements:
            self.statement(statement, mode, policies, nested)
            self.stepped = self.stepped or isinstance(statement, ast.STEP_TYPES)
        check_consistency(self, statements, mode, policies)

    def statement(self, s: ast.Statement, mode: CpuMode, policies: tuple[PolicyName, ...] | None, nested: bool) -> None:
        match s:
            case ast.ProfileSetting(profile=name):
                self.name(name, "hardware profile", vocabulary.PROFILES)
            case ast.PoliciesSetting(policies=names):
                for name in names:
                    self.name(name, "policy", vocabulary.POLICIES)
            case ast.PagingSetting(paging=name):
                self.name(name, "paging mode", vocabulary.PAGING)
            case ast.ProtectionSetting(protection=name):
                self.name(name, "guest protection", vocabulary.PROTECTIONS)
            case ast.VariantSetting(variant=name):
                self.name(name, "policy variant", vocabulary.VARIANTS)
            case ast.ReadingSetting(reading=name):
                self.name(name, "reading of K-6.19-6", vocabulary.READINGS)
            case ast.GuestDebugSetting(mode=name):
                self.name(name, "guest debug mode", vocabulary.GUEST_DEBUG_MODES)
            case ast.ModeSetting(mode=name):
                self.name(name, "CPU mode", vocabulary.MODES)
            case ast.CsBaseSetting(base=base):
                self.value(s.loc, base, "cs base", LINEAR_BITS_LEGACY)
            case ast.RipSetting(rip=rip):
                self.rip(s.loc, rip, mode, "rip")
            case ast.RflagsSetting(value=value, flags=flags):
                if value is not None:
                    self.value(s.loc, value, "rflags", LINEAR_BITS_LEGACY)
                for flag in flags:
                    self.name(flag, "RFLAGS flag", tuple(vocabulary.RFLAGS_BITS))
            case ast.InterruptShadowSetting(shadow=name):
                self.name(name, "interrupt shadow", vocabulary.INTERRUPT_SHADOWS)
            case ast.CplSetting(cpl=cpl):
                self.value(s.loc, cpl, "cpl", PRIVILEGE_BITS)
            case ast.GifSetting(gif=gif):
                self.value(s.loc, gif, "gif", FLAG_BITS)
            case ast.BreakpointSetting(register=register, address=address):
                self.name(register, "debug register", vocabulary.BREAKPOINT_REGISTERS)
                self.linear(s.loc, address, mode, "breakpoint address")
            case ast.PageSetting(address=address) | ast.PageStep(address=address):
                self.linear(s.loc, address, mode, "page address")
            case ast.IdtGateSetting():
                self.vector(s.vector, s.loc)
                if s.dpl is not None:
                    self.value(s.loc, s.dpl, "dpl", PRIVILEGE_BITS)
                if s.gate_type is not None:
                    self.name(s.gate_type, "gate type", vocabulary.GATE_TYPES)
            case ast.VmcbFieldSetting(vmcb=vmcb, field=field, value=value):
                fields = vocabulary.VMCB_FIELDS[vmcb.value]
                if not fields:
                    self.error(s.loc, f"{vmcb.value} has no fields to set: L0 builds it from vmcb12", "vmcb12 …")
                elif self.name(field, f"{vmcb.value} field", tuple(fields)):
                    self.value(s.loc, value, f"{vmcb.value} {field.text}", fields[field.text])
                    if vmcb is ast.Vmcb.VMCB12 and field.text == VMCB12_EVENT_INJ:
                        check_raw_event(self, value, None, s.loc)
            case ast.L1FeatureSetting(feature=feature):
                self.name(feature, "L1 feature", vocabulary.L1_FEATURES)
            case ast.L1InterceptSetting(intercepts=names):
                for name in names:
                    self.name(name, "intercept", tuple(vocabulary.EXIT_REASONS))
            case ast.CodeSetting(address=address, code=code) | ast.CodeModifiedStep(address=address, code=code):
                self.linear(s.loc, address, mode, "code address")
                self.code(code, address, mode)
            case ast.ExecuteStep(instruction=code) if code is not None:
                self.code(code, _somewhere(code) if self.stepped else self.rip_at_start, mode)
            case ast.InjectStep():
                self.inject(s, nested)
            case ast.VectoringStep():
                self.name(s.fault, "fault", vocabulary.FAULTS)
                if s.during is not None:
                    self.vector(s.during, s.loc)
                self.fields(s.fields, vocabulary.VECTORING_FIELDS, "vectoring hits")
                if s.handler is ast.Level.L1 and not nested:
                    self.error(s.loc, "intercepted by L1, but this scenario has no L1", "an `l1 …` set-up line")
            case ast.ExitStep(reason=reason, handler=handler):
                self.name(reason, "exit reason", tuple(vocabulary.EXIT_REASONS))
                if handler is ast.Level.L1 and not nested:
                    self.error(s.loc, "intercepted by L1, but this scenario has no L1", "an `l1 …` set-up line")
            case ast.Under():
                self.under(s, policies)
            case (
                ast.OutcomeExpectation()
                | ast.DeliveredExpectation()
                | ast.SpuriousDbExpectation()
                | ast.FieldExpectation()
            ):
                self.expectation(s)

    def rip(self, loc: Loc, rip: int, mode: CpuMode, what: str) -> None:
        bits = mode.bitness
        if not 0 <= rip < 1 << bits:
            self.error(
                loc,
                f"{what} {rip:#x} is out of range in {mode.value} mode",
                f"at most {(1 << bits) - 1:#x} ({bits}-bit instruction pointer)",
            )

    def linear(self, loc: Loc, address: int, mode: CpuMode, what: str) -> None:
        bits = WORD_BITS if mode is CpuMode.LONG_64 else LINEAR_BITS_LEGACY
        if not 0 <= address < 1 << bits:
            self.error(
                loc, f"{what} {address:#x} is out of range in {mode.value} mode", f"at most {(1 << bits) - 1:#x}"
            )

    def vector(self, vector: ast.VectorRef, loc: Loc) -> None:
        if isinstance(vector, ast.Name):
            self.name(vector, "vector", tuple(vocabulary.VECTORS))
        else:
            self.value(loc, vector, "vector", VECTOR_BITS)

    def code(self, code: ast.Code, address: int, mode: CpuMode) -> None:
        if isinstance(code, ast.Instruction) and code.mnemonic.text not in MNEMONICS:
            word = code.mnemonic.text
            self.error(
                code.mnemonic.loc,
                f"unknown mnemonic '{word}'",
                "an instruction the assembler knows (see docs/language.md), or `bytes …`",
                _mnemonic_hint(word),
            )
            return
        try:
            assemble(code, address, mode)
        except AssembleError as error:
            self.error(error.loc, error.message, error.expected)

    def fields(self, fields: tuple[ast.FieldValue, ...], allowed: dict[str, int], where: str) -> None:
        names: set[str] = set()
        for field in fields:
            if self.name(field.field, f"field for {where}", tuple(allowed)):
                self.value(field.loc, field.value, field.field.text, allowed[field.field.text])
            if field.field.text in names:
                self.error(field.loc, f"{field.field.text} is given twice")
            names.add(field.field.text)

    def event(self, event: ast.EventSpec) -> None:
        if event.kind is ast.EventKind.EXCEPTION and isinstance(event.vector, ast.Name):
            self.name(event.vector, "exception vector", tuple(vocabulary.VECTORS))
        elif isinstance(event.vector, int):
            self.value(event.loc, event.vector, "vector", VECTOR_BITS)
        if event.raw is not None:
            self.value(event.loc, event.raw, "event", LINEAR_BITS_LEGACY)

    def inject(self, step: ast.InjectStep, nested: bool) -> None:
        self.event(step.event)
        if step.event.raw is not None:
            check_raw_event(self, step.event.raw, step.source, step.event.loc)
        self.fields(step.fields, vocabulary.INJECT_FIELDS[step.source.value], f"inject from {step.source.value}")
        if step.source is ast.InjectionSource.L1 and not nested:
            self.error(step.loc, "an injection from L1 needs an L1", "an `l1 with nrips` (or `l1 without nrips`) line")

    def under(self, under: ast.Under, policies: tuple[PolicyName, ...] | None) -> None:
        for name in under.policies:
            if not self.name(name, "policy", vocabulary.POLICIES):
                continue
            policy = policy_by_name(name.text)
            if policies is None:
                self.error(name.loc, f"under {name.text}: this scenario names no policies", "a `policies …` line")
            elif policy not in policies:
                self.error(
                    name.loc,
                    f"expectation under {name.text}, which this scenario does not run",
                    "one of the scenario's policies: " + ", ".join(p.value for p in policies),
                )
        for expectation in under.expectations:
            self.expectation(expectation)

    def expectation(self, e: ast.Expectation) -> None:
        match e:
            case ast.OutcomeExpectation(checks=checks):
                names: set[str] = set()
                for check in checks:
                    if self.name(check.field, "observable", vocabulary.OBSERVABLES):
                        check_value(self, check.field.text, ast.Comparison.EQ, check.value, check.loc)
                    if check.field.text in names:
                        self.error(check.loc, f"{check.field.text} is given twice")
                    names.add(check.field.text)
            case ast.DeliveredExpectation(event=event):
                self.event(event)
            case ast.SpuriousDbExpectation():
                pass
            case ast.FieldExpectation(observable=observable, pick=pick, comparison=comparison, value=value):
                if not self.name(observable, "observable", vocabulary.OBSERVABLES):
                    return
                if isinstance(pick, ast.Name):
                    self.name(pick, "pick", vocabulary.PICKS)
                check_value(self, observable.text, comparison, value, e.loc)


#: Instructions whose encoding depends on where they are (a relative branch to an absolute target).
BRANCHES = ("jmp", "call")


def _somewhere(code: ast.Code) -> int:
    """An address to assemble `code` at when its own is not known statically (a step before it may have moved
    RIP): a branch at its target, which any reach allows, so only what holds everywhere is checked."""
    if isinstance(code, ast.Instruction) and code.mnemonic.text in BRANCHES:
        target = next((o.value for o in code.operands if isinstance(o, ast.Immediate)), DEFAULT_RIP)
        return target
    return DEFAULT_RIP  # no other encoding depends on its address


_INT_WITHOUT_SPACE = re.compile(r"int(0x[0-9a-f]+|[0-9]+)")


def _mnemonic_hint(word: str) -> str | None:
    """`int80` is almost always `int 0x80` (int3 is its own mnemonic)."""
    match = _INT_WITHOUT_SPACE.fullmatch(word)
    if match:
        return f"did you mean int {match.group(1)}? (int3 is the one-byte CC form)"
    return did_you_mean(word, MNEMONICS)
