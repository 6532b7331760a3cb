"""Lark parse tree → AST. Every terminal is converted here, so no `lark.Token` reaches the AST."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from typing import Any

from lark import Token
from lark.tree import Meta

from dsl.engine.vocab import InjectionSource, Level
from dsl.errors import Loc
from dsl.syntax import ast, vocabulary
from dsl.syntax.instructions import ShapeError, split_instruction

_LEVELS = {"l0": Level.L0, "l1": Level.L1, "guest": Level.GUEST}
_SOURCES = {"userspace": InjectionSource.USERSPACE, "guest": InjectionSource.GUEST_DEBUG, "l1": InjectionSource.L1}
_STRING_ESCAPE = re.compile(r"\\(.)")
_DOCSTRING_QUOTES = 3
#: A code breakpoint that fires again on a retried instruction raises #DB (H-37).
SPURIOUS_VECTOR = "#DB"


def unquote(text: str) -> str:
    """The value of a `"…"` string: quotes removed, `\\x` → `x` (so `\\"` and `\\\\` work)."""
    return _STRING_ESCAPE.sub(r"\1", text[1:-1])


def quote(text: str) -> str:
    """The inverse of `unquote`: a `"…"` literal for `text`."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def parse_number(text: str) -> int:
    """`0x1000`, `4096`, `0x8000_0303` (underscores group digits), `-1`. `010` is ten: octal would surprise."""
    clean = text.replace("_", "")
    sign = -1 if clean.startswith("-") else 1
    digits = clean.lstrip("-")
    if digits[:2] in ("0x", "0X"):
        return sign * int(digits[2:], 16)
    return sign * int(digits, 10)


class AstBuilder:
    """Builds AST nodes, one method per grammar rule taking `(meta, children)`; `file` names the source in every
    `Loc`. `dsl.syntax.embedded` runs these methods inside the LALR parser as it reduces each rule.
    """

    def __init__(self, file: str) -> None:
        self.file = file

    def rules(self) -> dict[str, Callable[[Meta, list[Any]], Any]]:
        """Rule name → method, for every rule of the grammar."""
        return {name: getattr(self, name) for name in vars(type(self)) if not name.startswith("_") and name != "rules"}

    def _loc(self, meta: Meta) -> Loc:
        if getattr(meta, "empty", True):
            return Loc(self.file, 0, 0)
        return Loc(self.file, meta.line, meta.column)

    def _tok_loc(self, token: Token) -> Loc:
        return Loc(self.file, token.line or 0, token.column or 0)

    # --- file structure ---------------------------------------------------------------------------------------

    def start(self, meta: Meta, children: list[Any]) -> ast.SvmFile:
        return ast.SvmFile(self.file, tuple(children), loc=Loc(self.file, 1, 1))

    def include(self, meta: Meta, children: list[Any]) -> ast.Include:
        return ast.Include(unquote(children[0]), None, loc=self._loc(meta))

    def background(self, meta: Meta, children: list[Any]) -> ast.Background:
        return ast.Background(tuple(children), loc=self._loc(meta))

    def tags(self, meta: Meta, children: list[Token]) -> tuple[str, ...]:
        return tuple(str(t)[1:] for t in children)

    def source(self, meta: Meta, children: list[Token]) -> tuple[str, str]:
        return ("source", unquote(children[0]))

    def description(self, meta: Meta, children: list[Token]) -> tuple[str, str]:
        return ("description", inspect.cleandoc(str(children[0])[_DOCSTRING_QUOTES:-_DOCSTRING_QUOTES]))

    def _header(self, children: list[Any]) -> tuple[tuple[str, ...], str, list[str], str | None, list[Any]]:
        tags, title, *rest = children
        sources: list[str] = []
        description: str | None = None
        body: list[Any] = []
        for child in rest:
            if isinstance(child, tuple) and child and child[0] == "source":
                sources.append(child[1])
            elif isinstance(child, tuple) and child and child[0] == "description":
                # Several docstrings read as paragraphs of one description.
                description = child[1] if description is None else description + "\n\n" + child[1]
            else:
                body.append(child)
        return tags, unquote(title), sources, description, body

    def scenario(self, meta: Meta, children: list[Any]) -> ast.Scenario:
        tags, title, sources, description, body = self._header(children)
        return ast.Scenario(title, tags, tuple(sources), description, tuple(body), None, loc=self._loc(meta))

    def outline(self, meta: Meta, children: list[Any]) -> ast.ScenarioOutline:
        tags, title, sources, description, body = self._header(children)
        template = tuple(c for c in body if isinstance(c, ast.TemplateLine))
        examples = next(c for c in body if isinstance(c, ast.Examples))
        return ast.ScenarioOutline(
            title, tags, tuple(sources), description, template, examples, (), loc=self._loc(meta)
        )

    def template_line(self, meta: Meta, children: list[Token]) -> ast.TemplateLine:
        token = children[0]
        return ast.TemplateLine(strip_comment(str(token)), loc=self._tok_loc(token))

    def examples(self, meta: Meta, children: list[ast.ExampleRow]) -> ast.Examples:
        header, *rows = children
        return ast.Examples(header.cells, tuple(rows), loc=self._loc(meta))

    def example_row(self, meta: Meta, children: list[Token]) -> ast.ExampleRow:
        token = children[0]
        return ast.ExampleRow(split_row(str(token)), loc=self._tok_loc(token))

    # --- shared pieces ----------------------------------------------------------------------------------------

    def name(self, meta: Meta, children: list[Token]) -> ast.Name:
        return ast.Name(str(children[0]), loc=self._tok_loc(children[0]))

    def name_list(self, meta: Meta, children: list[ast.Name]) -> tuple[ast.Name, ...]:
        return tuple(children)

    def number(self, meta: Meta, children: list[Token]) -> int:
        return parse_number(str(children[0]))

    def true(self, meta: Meta, children: list[Any]) -> bool:
        return True

    def false(self, meta: Meta, children: list[Any]) -> bool:
        return False

    def field_value(self, meta: Meta, children: list[Any]) -> ast.FieldValue:
        token, value = children
        return ast.FieldValue(ast.Name(str(token), loc=self._tok_loc(token)), value, loc=self._loc(meta))

    def with_fields(self, meta: Meta, children: list[ast.FieldValue]) -> tuple[ast.FieldValue, ...]:
        return tuple(children)

    def event_exception(self, meta: Meta, children: list[Token]) -> ast.EventSpec:
        vector = ast.Name(str(children[0]), loc=self._tok_loc(children[0]))
        return ast.EventSpec(ast.EventKind.EXCEPTION, vector, None, loc=self._loc(meta))

    def event_soft(self, meta: Meta, children: list[int]) -> ast.EventSpec:
        return ast.EventSpec(ast.EventKind.SOFT_INTERRUPT, children[0], None, loc=self._loc(meta))

    def event_irq(self, meta: Meta, children: list[int]) -> ast.EventSpec:
        return ast.EventSpec(ast.EventKind.INTERRUPT, children[0], None, loc=self._loc(meta))

    def event_nmi(self, meta: Meta, children: list[Any]) -> ast.EventSpec:
        return ast.EventSpec(ast.EventKind.NMI, None, None, loc=self._loc(meta))

    def event_raw(self, meta: Meta, children: list[int]) -> ast.EventSpec:
        return ast.EventSpec(ast.EventKind.RAW, None, children[0], loc=self._loc(meta))

    # --- code -------------------------------------------------------------------------------------------------

    def raw_bytes(self, meta: Meta, children: list[Token]) -> ast.RawBytes:
        return ast.RawBytes(bytes(int(str(t), 16) for t in children), loc=self._loc(meta))

    def instruction(self, meta: Meta, children: list[list[Any]]) -> ast.Instruction:
        return split_instruction(children, self._loc(meta), self._tok_loc)

    def operand_group(self, meta: Meta, children: list[Any]) -> list[Any]:
        return children

    def memory(self, meta: Meta, children: list[Any]) -> ast.Memory:
        from dsl.syntax.instructions import build_memory

        return build_memory(children, self._loc(meta))

    def memory_term(self, meta: Meta, children: list[Any]) -> tuple[str | None, int]:
        if isinstance(children[0], Token):
            scale = children[1] if len(children) > 1 else 1
            return (str(children[0]).lower(), scale)
        return (None, children[0])

    # --- set-up -----------------------------------------------------------------------------------------------

    def profile(self, meta: Meta, c: list[Any]) -> ast.ProfileSetting:
        return ast.ProfileSetting(c[0], loc=self._loc(meta))

    def policies(self, meta: Meta, c: list[Any]) -> ast.PoliciesSetting:
        return ast.PoliciesSetting(c[0], loc=self._loc(meta))

    def nrips(self, meta: Meta, c: list[Any]) -> ast.NripsSetting:
        return ast.NripsSetting(str(c[0]) == "1", loc=self._loc(meta))

    def paging(self, meta: Meta, c: list[Any]) -> ast.PagingSetting:
        return ast.PagingSetting(c[0], loc=self._loc(meta))

    def protection(self, meta: Meta, c: list[Any]) -> ast.ProtectionSetting:
        return ast.ProtectionSetting(c[0], loc=self._loc(meta))

    def variant(self, meta: Meta, c: list[Any]) -> ast.VariantSetting:
        return ast.VariantSetting(c[0], loc=self._loc(meta))

    def reading(self, meta: Meta, c: list[Any]) -> ast.ReadingSetting:
        return ast.ReadingSetting(c[0], loc=self._loc(meta))

    def guest_debug(self, meta: Meta, c: list[Any]) -> ast.GuestDebugSetting:
        return ast.GuestDebugSetting(c[0], loc=self._loc(meta))

    def mode(self, meta: Meta, c: list[Any]) -> ast.ModeSetting:
        return ast.ModeSetting(c[0], loc=self._loc(meta))

    def cs_base(self, meta: Meta, c: list[Any]) -> ast.CsBaseSetting:
        return ast.CsBaseSetting(c[0], loc=self._loc(meta))

    def rip(self, meta: Meta, c: list[Any]) -> ast.RipSetting:
        return ast.RipSetting(c[0], loc=self._loc(meta))

    def rflags_value(self, meta: Meta, c: list[Any]) -> ast.RflagsSetting:
        return ast.RflagsSetting(c[0], (), loc=self._loc(meta))

    def rflags_flags(self, meta: Meta, c: list[Any]) -> ast.RflagsSetting:
        return ast.RflagsSetting(None, c[0], loc=self._loc(meta))

    def interrupt_shadow(self, meta: Meta, c: list[Any]) -> ast.InterruptShadowSetting:
        return ast.InterruptShadowSetting(c[0], loc=self._loc(meta))

    def cpl(self, meta: Meta, c: list[Any]) -> ast.CplSetting:
        return ast.CplSetting(c[0], loc=self._loc(meta))

    def gif(self, meta: Meta, c: list[Any]) -> ast.GifSetting:
        return ast.GifSetting(c[0], loc=self._loc(meta))

    def breakpoint(self, meta: Meta, c: list[Any]) -> ast.BreakpointSetting:
        return ast.BreakpointSetting(c[0], c[1], loc=self._loc(meta))

    def presence(self, meta: Meta, c: list[Token]) -> bool:
        return len(c) == 1

    def tables(self, meta: Meta, c: list[Token]) -> ast.PageTable:
        return ast.PageTable(str(c[0]))

    def page_setting(self, meta: Meta, c: list[Any]) -> ast.PageSetting:
        return ast.PageSetting(c[0], c[1], c[2], loc=self._loc(meta))

    def gate_attr(self, meta: Meta, c: list[Any]) -> tuple[str, Any]:
        word = str(c[0])
        if word == "not":
            return ("present", False)
        if word == "present":
            return ("present", True)
        return (word, c[1])

    def idt_gate(self, meta: Meta, c: list[Any]) -> ast.IdtGateSetting:
        vector, *attrs_ = c
        values = dict(attrs_)
        return ast.IdtGateSetting(
            vector, values.get("present", True), values.get("dpl"), values.get("type"), loc=self._loc(meta)
        )

    def vmcb_field(self, meta: Meta, c: list[Any]) -> ast.VmcbFieldSetting:
        return ast.VmcbFieldSetting(ast.Vmcb(str(c[0])), c[1], c[2], loc=self._loc(meta))

    def l1(self, meta: Meta, c: list[Token]) -> str:
        return "l1"

    def l1_with(self, meta: Meta, c: list[Any]) -> ast.L1FeatureSetting:
        return ast.L1FeatureSetting(c[1], True, loc=self._loc(meta))

    def l1_without(self, meta: Meta, c: list[Any]) -> ast.L1FeatureSetting:
        return ast.L1FeatureSetting(c[1], False, loc=self._loc(meta))

    def l1_intercepts(self, meta: Meta, c: list[Any]) -> ast.L1InterceptSetting:
        return ast.L1InterceptSetting(c[1], loc=self._loc(meta))

    def code_setting(self, meta: Meta, c: list[Any]) -> ast.CodeSetting:
        return ast.CodeSetting(c[0], c[1], loc=self._loc(meta))

    # --- steps ------------------------------------------------------------------------------------------------

    def execute(self, meta: Meta, c: list[Any]) -> ast.ExecuteStep:
        return ast.ExecuteStep(c[0] if c else None, loc=self._loc(meta))

    def injection_source(self, meta: Meta, c: list[Token]) -> InjectionSource:
        return _SOURCES[str(c[0]).lower()]

    def inject(self, meta: Meta, c: list[Any]) -> ast.InjectStep:
        fields = c[2] if len(c) > 2 else ()
        return ast.InjectStep(c[0], c[1], fields, loc=self._loc(meta))

    def during(self, meta: Meta, c: list[Any]) -> tuple[str, ast.VectorRef]:
        return ("during", c[0])

    def level(self, meta: Meta, c: list[Token]) -> Level:
        return _LEVELS[str(c[0]).lower()]

    def handler(self, meta: Meta, c: list[Any]) -> Level:
        if str(c[0]) == "handled":
            return Level.GUEST
        levels = [x for x in c if isinstance(x, Level)]
        return levels[0] if levels else Level.L0

    def vectoring(self, meta: Meta, c: list[Any]) -> ast.VectoringStep:
        during: ast.VectorRef | None = None
        if isinstance(c[0], tuple):
            during = c.pop(0)[1]
        fault, *rest = c
        fields = next((x for x in rest if isinstance(x, tuple)), ())
        handler = next((x for x in rest if isinstance(x, Level)), Level.L0)
        return ast.VectoringStep(fault, during, fields, handler, loc=self._loc(meta))

    def exit(self, meta: Meta, c: list[Any]) -> ast.ExitStep:
        return ast.ExitStep(c[0], c[1] if len(c) > 1 else Level.L0, loc=self._loc(meta))

    def code_modified(self, meta: Meta, c: list[Any]) -> ast.CodeModifiedStep:
        return ast.CodeModifiedStep(c[0], c[1], loc=self._loc(meta))

    def mapping(self, meta: Meta, c: list[Token]) -> bool:
        return str(c[0]) == "mapped"

    def page_step(self, meta: Meta, c: list[Any]) -> ast.PageStep:
        return ast.PageStep(c[0], c[1], c[2], loc=self._loc(meta))

    def cancel_entry(self, meta: Meta, c: list[Any]) -> ast.CancelEntryStep:
        return ast.CancelEntryStep(loc=self._loc(meta))

    def save_option(self, meta: Meta, c: list[Token]) -> str:
        return str(c[0])

    def save_restore(self, meta: Meta, c: list[str]) -> ast.SaveRestoreStep:
        return ast.SaveRestoreStep("nested" in c, "regs" in c, loc=self._loc(meta))

    def reenter(self, meta: Meta, c: list[Any]) -> ast.ReenterStep:
        return ast.ReenterStep(loc=self._loc(meta))

    def run(self, meta: Meta, c: list[Any]) -> ast.RunStep:
        return ast.RunStep(loc=self._loc(meta))

    # --- expectations -----------------------------------------------------------------------------------------

    def outcome(self, meta: Meta, c: list[Token]) -> ast.Outcome:
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

    def expect_outcome(self, meta: Meta, c: list[Any]) -> ast.OutcomeExpectation:
        checks = c[1] if len(c) > 1 else ()
        return ast.OutcomeExpectation(c[0], checks, loc=self._loc(meta))

    def return_rip(self, meta: Meta, c: list[Any]) -> tuple[str, int]:
        return ("return_rip", c[0])

    def delivered_error_code(self, meta: Meta, c: list[Any]) -> tuple[str, int]:
        return ("error_code", c[0])

    def delivered_with(self, meta: Meta, c: list[tuple[str, int]]) -> dict[str, int]:
        return dict(c)

    def expect_delivered(self, meta: Meta, c: list[Any]) -> ast.DeliveredExpectation | ast.OutcomeExpectation:
        if not c:
            return ast.OutcomeExpectation(ast.Outcome.DELIVERED, (), loc=self._loc(meta))
        fields: dict[str, int] = c[1] if len(c) > 1 else {}
        return ast.DeliveredExpectation(
            c[0], fields.get("return_rip"), fields.get("error_code"), False, loc=self._loc(meta)
        )

    def expect_delivered_outcome(self, meta: Meta, c: list[Any]) -> ast.OutcomeExpectation:
        return ast.OutcomeExpectation(ast.Outcome.DELIVERED, c[0], loc=self._loc(meta))

    def expect_not_delivered(self, meta: Meta, c: list[Any]) -> ast.DeliveredExpectation:
        return ast.DeliveredExpectation(c[0], None, None, True, loc=self._loc(meta))

    def _spurious(self, meta: Meta, vector: Token, present: bool) -> ast.SpuriousDbExpectation:
        if str(vector) != SPURIOUS_VECTOR:
            raise ShapeError(self._tok_loc(vector), f"only #DB can be spurious, not {vector}", "expect no spurious #DB")
        return ast.SpuriousDbExpectation(present, loc=self._loc(meta))

    def expect_no_spurious(self, meta: Meta, c: list[Token]) -> ast.SpuriousDbExpectation:
        return self._spurious(meta, c[0], False)

    def expect_spurious(self, meta: Meta, c: list[Token]) -> ast.SpuriousDbExpectation:
        return self._spurious(meta, c[0], True)

    def pick(self, meta: Meta, c: list[Any]) -> ast.Name | int:
        if isinstance(c[0], Token):
            return ast.Name(str(c[0]), loc=self._tok_loc(c[0]))
        return int(c[0])

    def comparison(self, meta: Meta, c: list[Token]) -> ast.Comparison:
        return ast.Comparison(str(c[0])) if c else ast.Comparison.CONTAINS

    def string(self, meta: Meta, c: list[Token]) -> str:
        return unquote(str(c[0]))

    def expect_field(self, meta: Meta, c: list[Any]) -> ast.FieldExpectation:
        observable, *middle, comparison, value = c
        if isinstance(observable, Token):  # the `delivered` observable, lexed as its keyword
            observable = ast.Name(str(observable), loc=self._tok_loc(observable))
        pick = middle[0] if middle else None
        return ast.FieldExpectation(observable, pick, comparison, value, loc=self._loc(meta))

    def under(self, meta: Meta, c: list[Any]) -> ast.Under:
        policies, *expectations = c
        return ast.Under(policies, tuple(expectations), loc=self._loc(meta))


def strip_comment(line: str) -> str:
    """A template line without its trailing `// comment` (outside strings) and trailing blanks."""
    in_string = False
    i = 0
    while i < len(line):
        ch = line[i]
        if ch == "\\" and in_string:
            i += 2
            continue
        if ch == '"':
            in_string = not in_string
        elif not in_string and line.startswith("//", i):
            return line[:i].rstrip()
        i += 1
    return line.rstrip()


def split_row(row: str) -> tuple[str, ...]:
    """`| a | b |` → ("a", "b"); a trailing `// comment` is dropped; the closing bar is optional."""
    body = strip_comment(row).strip()
    cells = body[1:].split("|")
    if cells and cells[-1].strip() == "":
        cells = cells[:-1]
    return tuple(cell.strip() for cell in cells)
