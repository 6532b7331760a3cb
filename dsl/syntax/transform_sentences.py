"""Parse-tree rules of the sentences (set-up, steps, expectations) → AST nodes; see `dsl.syntax.transform`."""

from __future__ import annotations

from typing import Any

from dsl.engine.vocab import InjectionSource, Level
from dsl.errors import Loc
from dsl.syntax import ast, vocabulary
from dsl.syntax.instructions import ShapeError
from dsl.syntax.tokens import Token
from dsl.syntax.transform import RuleBuilder, unquote

_LEVELS = {"l0": Level.L0, "l1": Level.L1, "guest": Level.GUEST}
_SOURCES = {"userspace": InjectionSource.USERSPACE, "guest": InjectionSource.GUEST_DEBUG, "l1": InjectionSource.L1}
#: A code breakpoint that fires again on a retried instruction raises #DB (H-37).
SPURIOUS_VECTOR = "#DB"


class AstBuilder(RuleBuilder):
    """Every rule of the grammar: the file structure (`RuleBuilder`) and the sentences below."""

    # --- set-up -----------------------------------------------------------------------------------------------

    def profile(self, loc: Loc, c: list[Any]) -> ast.ProfileSetting:
        return ast.ProfileSetting(c[0], loc=loc)

    def policies(self, loc: Loc, c: list[Any]) -> ast.PoliciesSetting:
        return ast.PoliciesSetting(c[0], loc=loc)

    def nrips(self, loc: Loc, c: list[Any]) -> ast.NripsSetting:
        return ast.NripsSetting(str(c[0]) == "1", loc=loc)

    def paging(self, loc: Loc, c: list[Any]) -> ast.PagingSetting:
        return ast.PagingSetting(c[0], loc=loc)

    def protection(self, loc: Loc, c: list[Any]) -> ast.ProtectionSetting:
        return ast.ProtectionSetting(c[0], loc=loc)

    def variant(self, loc: Loc, c: list[Any]) -> ast.VariantSetting:
        return ast.VariantSetting(c[0], loc=loc)

    def reading(self, loc: Loc, c: list[Any]) -> ast.ReadingSetting:
        return ast.ReadingSetting(c[0], loc=loc)

    def guest_debug(self, loc: Loc, c: list[Any]) -> ast.GuestDebugSetting:
        return ast.GuestDebugSetting(c[0], loc=loc)

    def mode(self, loc: Loc, c: list[Any]) -> ast.ModeSetting:
        return ast.ModeSetting(c[0], loc=loc)

    def cs_base(self, loc: Loc, c: list[Any]) -> ast.CsBaseSetting:
        return ast.CsBaseSetting(c[0], loc=loc)

    def rip(self, loc: Loc, c: list[Any]) -> ast.RipSetting:
        return ast.RipSetting(c[0], loc=loc)

    def rflags_value(self, loc: Loc, c: list[Any]) -> ast.RflagsSetting:
        return ast.RflagsSetting(c[0], (), loc=loc)

    def rflags_flags(self, loc: Loc, c: list[Any]) -> ast.RflagsSetting:
        return ast.RflagsSetting(None, c[0], loc=loc)

    def interrupt_shadow(self, loc: Loc, c: list[Any]) -> ast.InterruptShadowSetting:
        return ast.InterruptShadowSetting(c[0], loc=loc)

    def cpl(self, loc: Loc, c: list[Any]) -> ast.CplSetting:
        return ast.CplSetting(c[0], loc=loc)

    def gif(self, loc: Loc, c: list[Any]) -> ast.GifSetting:
        return ast.GifSetting(c[0], loc=loc)

    def breakpoint(self, loc: Loc, c: list[Any]) -> ast.BreakpointSetting:
        return ast.BreakpointSetting(c[0], c[1], loc=loc)

    def presence(self, loc: Loc, c: list[Token]) -> bool:
        return len(c) == 1

    def tables(self, loc: Loc, c: list[Token]) -> ast.PageTable:
        return ast.PageTable(str(c[0]))

    def page_setting(self, loc: Loc, c: list[Any]) -> ast.PageSetting:
        return ast.PageSetting(c[0], c[1], c[2], loc=loc)

    def gate_attr(self, loc: Loc, c: list[Any]) -> tuple[str, Any]:
        word = str(c[0])
        if word == "not":
            return ("present", False)
        if word == "present":
            return ("present", True)
        return (word, c[1])

    def idt_gate(self, loc: Loc, c: list[Any]) -> ast.IdtGateSetting:
        vector, *attrs_ = c
        values = dict(attrs_)
        return ast.IdtGateSetting(vector, values.get("present", True), values.get("dpl"), values.get("type"), loc=loc)

    def vmcb_field(self, loc: Loc, c: list[Any]) -> ast.VmcbFieldSetting:
        return ast.VmcbFieldSetting(ast.Vmcb(str(c[0])), c[1], c[2], loc=loc)

    def l1(self, loc: Loc, c: list[Token]) -> str:
        return "l1"

    def l1_with(self, loc: Loc, c: list[Any]) -> ast.L1FeatureSetting:
        return ast.L1FeatureSetting(c[1], True, loc=loc)

    def l1_without(self, loc: Loc, c: list[Any]) -> ast.L1FeatureSetting:
        return ast.L1FeatureSetting(c[1], False, loc=loc)

    def l1_intercepts(self, loc: Loc, c: list[Any]) -> ast.L1InterceptSetting:
        return ast.L1InterceptSetting(c[1], loc=loc)

    def code_setting(self, loc: Loc, c: list[Any]) -> ast.CodeSetting:
        return ast.CodeSetting(c[0], c[1], loc=loc)

    # --- steps ------------------------------------------------------------------------------------------------

    def execute(self, loc: Loc, c: list[Any]) -> ast.ExecuteStep:
        return ast.ExecuteStep(c[0] if c else None, loc=loc)

    def injection_source(self, loc: Loc, c: list[Token]) -> InjectionSource:
        return _SOURCES[str(c[0]).lower()]

    def inject(self, loc: Loc, c: list[Any]) -> ast.InjectStep:
        fields = c[2] if len(c) > 2 else ()
        return ast.InjectStep(c[0], c[1], fields, loc=loc)

    def during(self, loc: Loc, c: list[Any]) -> tuple[str, ast.VectorRef]:
        return ("during", c[0])

    def level(self, loc: Loc, c: list[Token]) -> Level:
        return _LEVELS[str(c[0]).lower()]

    def handler(self, loc: Loc, c: list[Any]) -> Level:
        if str(c[0]) == "handled":
            return Level.GUEST
        levels = [x for x in c if isinstance(x, Level)]
        return levels[0] if levels else Level.L0

    def vectoring(self, loc: Loc, c: list[Any]) -> ast.VectoringStep:
        during: ast.VectorRef | None = None
        if isinstance(c[0], tuple):
            during = c.pop(0)[1]
        fault, *rest = c
        fields = next((x for x in rest if isinstance(x, tuple)), ())
        handler = next((x for x in rest if isinstance(x, Level)), Level.L0)
        return ast.VectoringStep(fault, during, fields, handler, loc=loc)

    def exit(self, loc: Loc, c: list[Any]) -> ast.ExitStep:
        return ast.ExitStep(c[0], c[1] if len(c) > 1 else Level.L0, loc=loc)

    def code_modified(self, loc: Loc, c: list[Any]) -> ast.CodeModifiedStep:
        return ast.CodeModifiedStep(c[0], c[1], loc=loc)

    def mapping(self, loc: Loc, c: list[Token]) -> bool:
        return str(c[0]) == "mapped"

    def page_step(self, loc: Loc, c: list[Any]) -> ast.PageStep:
        return ast.PageStep(c[0], c[1], c[2], loc=loc)

    def cancel_entry(self, loc: Loc, c: list[Any]) -> ast.CancelEntryStep:
        return ast.CancelEntryStep(loc=loc)

    def save_option(self, loc: Loc, c: list[Token]) -> str:
        return str(c[0])

    def save_restore(self, loc: Loc, c: list[str]) -> ast.SaveRestoreStep:
        return ast.SaveRestoreStep("nested" in c, "regs" in c, loc=loc)

    def reenter(self, loc: Loc, c: list[Any]) -> ast.ReenterStep:
        return ast.ReenterStep(loc=loc)

    def run(self, loc: Loc, c: list[Any]) -> ast.RunStep:
        return ast.RunStep(loc=loc)

    # --- expectations -----------------------------------------------------------------------------------------

    def outcome(self, loc: Loc, c: list[Token]) -> ast.Outcome:
        word = "_".join(str(t) for t in c)
        if word in vocabulary.OUTCOMES:
            return ast.Outcome(word)
        spellings = [vocabulary.outcome_spelling(o) for o in ast.Outcome]
        near = vocabulary.nearest(word, vocabulary.OUTCOMES)
        raise ShapeError(
            self._tok_loc(c[0]),
            f"unknown outcome '{' '.join(str(t) for t in c)}'",
            "an outcome (" + ", ".join(spellings) + ") or a check such as `expect next_rip == 0x1001`",
            f"did you mean {vocabulary.outcome_spelling(ast.Outcome(near))}?" if near else None,
        )

    def check_value(self, loc: Loc, c: list[Any]) -> ast.FieldCheck:
        token, value = c
        return ast.FieldCheck(ast.Name(str(token), loc=self._tok_loc(token)), value, loc=loc)

    def check_fields(self, loc: Loc, c: list[ast.FieldCheck]) -> tuple[ast.FieldCheck, ...]:
        return tuple(c)

    def expect_outcome(self, loc: Loc, c: list[Any]) -> ast.OutcomeExpectation:
        checks = c[1] if len(c) > 1 else ()
        return ast.OutcomeExpectation(c[0], checks, loc=loc)

    def return_rip(self, loc: Loc, c: list[Any]) -> tuple[str, int]:
        return ("return_rip", c[0])

    def delivered_error_code(self, loc: Loc, c: list[Any]) -> tuple[str, int]:
        return ("error_code", c[0])

    def delivered_with(self, loc: Loc, c: list[tuple[str, int]]) -> dict[str, int]:
        return dict(c)

    def expect_delivered(self, loc: Loc, c: list[Any]) -> ast.DeliveredExpectation | ast.OutcomeExpectation:
        if not c:
            return ast.OutcomeExpectation(ast.Outcome.DELIVERED, (), loc=loc)
        fields: dict[str, int] = c[1] if len(c) > 1 else {}
        return ast.DeliveredExpectation(c[0], fields.get("return_rip"), fields.get("error_code"), False, loc=loc)

    def expect_delivered_outcome(self, loc: Loc, c: list[Any]) -> ast.OutcomeExpectation:
        return ast.OutcomeExpectation(ast.Outcome.DELIVERED, c[0], loc=loc)

    def expect_not_delivered(self, loc: Loc, c: list[Any]) -> ast.DeliveredExpectation:
        return ast.DeliveredExpectation(c[0], None, None, True, loc=loc)

    def _spurious(self, loc: Loc, vector: Token, present: bool) -> ast.SpuriousDbExpectation:
        if str(vector) != SPURIOUS_VECTOR:
            raise ShapeError(self._tok_loc(vector), f"only #DB can be spurious, not {vector}", "expect no spurious #DB")
        return ast.SpuriousDbExpectation(present, loc=loc)

    def expect_no_spurious(self, loc: Loc, c: list[Token]) -> ast.SpuriousDbExpectation:
        return self._spurious(loc, c[0], False)

    def expect_spurious(self, loc: Loc, c: list[Token]) -> ast.SpuriousDbExpectation:
        return self._spurious(loc, c[0], True)

    def pick(self, loc: Loc, c: list[Any]) -> ast.Name | int:
        if isinstance(c[0], Token):
            return ast.Name(str(c[0]), loc=self._tok_loc(c[0]))
        number: ast.Number = c[0]
        return number

    def comparison(self, loc: Loc, c: list[Token]) -> ast.Comparison:
        return ast.Comparison(str(c[0])) if c else ast.Comparison.CONTAINS

    def string(self, loc: Loc, c: list[Token]) -> str:
        return unquote(str(c[0]))

    def expect_field(self, loc: Loc, c: list[Any]) -> ast.FieldExpectation:
        observable, *middle, comparison, value = c
        if isinstance(observable, Token):  # the `delivered` observable, lexed as its keyword
            observable = ast.Name(str(observable), loc=self._tok_loc(observable))
        pick = middle[0] if middle else None
        return ast.FieldExpectation(observable, pick, comparison, value, loc=loc)

    def under(self, loc: Loc, c: list[Any]) -> ast.Under:
        policies, *expectations = c
        return ast.Under(policies, tuple(expectations), loc=loc)
