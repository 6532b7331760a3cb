"""The checks of one sentence (`StatementChecker.statement`): names from the vocabulary, values in range for the
CPU mode, code that assembles where it is placed, events and their fields, expectations and the policies they
are written `under`. `dsl.compiler.check` walks files, outlines and blocks and hands each sentence here.
"""

from __future__ import annotations

import re

from dsl.compiler.assemble import MNEMONICS, AssembleError, assemble
from dsl.compiler.check_events import check_raw_event
from dsl.compiler.check_expect import check_value
from dsl.compiler.check_report import VECTOR_BITS, Reporter, did_you_mean
from dsl.compiler.check_scenario import DEFAULT_RIP
from dsl.engine.vocab import CpuMode, PolicyName, policy_by_name
from dsl.errors import Loc
from dsl.syntax import ast, vocabulary

#: Bits of a linear address outside 64-bit mode (CS.base + offset wraps at 4 GiB, README glossary).
LINEAR_BITS_LEGACY = 32
PRIVILEGE_BITS = 2  # CPL and DPL are 0-3
FLAG_BITS = 1
WORD_BITS = 64
VMCB12_EVENT_INJ = "event_inj"


class StatementChecker(Reporter):
    """A `Reporter` that checks sentences; `block` sets where the scenario's code starts before each block."""

    def __init__(self, texts: dict[str, str]) -> None:
        super().__init__(texts)
        self.rip_at_start = DEFAULT_RIP
        #: True once a step has run: RIP may have moved (retry, skip, re-injection…), so it is no longer known.
        self.stepped = False

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
