"""Lowering of expectations: `expect …` lines → `Check`s on the engine's result, each with its `Loc` and text."""

from __future__ import annotations

import re

import attrs

from dsl.compiler.lower_names import Context, did_you_mean, member, plain, vector
from dsl.compiler.lower_setup import event_of, policy_of
from dsl.compiler.lowered import Check, Comparison, Probe
from dsl.engine.result import Observed
from dsl.engine.vocab import EventType, Evidence, Observable, Outcome, Pick, PolicyName, Vector
from dsl.errors import Loc
from dsl.syntax import ast
from dsl.syntax.vocabulary import DELIVERED_TYPES, EXIT_CODE_OBSERVABLES, EXIT_REASONS, VECTOR_OBSERVABLES

#: The language's words for a delivered event's type (`expect delivered_type == soft`), each the EventType named
#: alike; derived, so the language's vocabulary stays the one list of words.
EVENT_TYPE_WORDS: dict[str, EventType] = {word: EventType[word.upper()] for word in DELIVERED_TYPES}
_NONE_WORD = "none"
#: Text up to the end of a statement: a `;` or `//` outside a quoted string (an unclosed quote runs to the end).
_STATEMENT = re.compile(r'(?:[^";/]|/(?!/)|"[^"]*(?:"|\Z))*')
_COMPARISONS = {
    ast.Comparison.EQ: Comparison.EQ,
    ast.Comparison.NE: Comparison.NE,
    ast.Comparison.CONTAINS: Comparison.CONTAINS,
}


def expectation_text(ctx: Context, loc: Loc) -> str:
    """The expectation as written: its source from `loc` to the end of the statement (`;`, comment, line end)."""
    statement = _STATEMENT.match(ctx.line(loc.line)[loc.column - 1 :])
    assert statement is not None  # the pattern matches the empty string
    return statement.group(0).strip()


def lower_expectations(
    ctx: Context, items: tuple[ast.Expectation | ast.Under, ...], policy: PolicyName, runs: tuple[PolicyName, ...]
) -> tuple[Check, ...]:
    """The checks that apply under `policy`: every plain expectation, and those of `under` blocks naming it."""
    checks: list[Check] = []
    for item in items:
        if isinstance(item, ast.Under):
            named = tuple(_under_policy(ctx, name, runs) for name in item.policies)
            if policy in named:
                for expectation in item.expectations:
                    checks.extend(attrs.evolve(c, policies=named) for c in lower_expectation(ctx, expectation))
        else:
            checks.extend(lower_expectation(ctx, item))
    return tuple(checks)


def _under_policy(ctx: Context, name: ast.Name, runs: tuple[PolicyName, ...]) -> PolicyName:
    found = policy_of(ctx, name)
    if found not in runs:
        ran = ", ".join(p.value for p in runs) or "none"
        raise ctx.error(
            name.loc,
            f"expectation under {name.text}, which this scenario does not run",
            expected=f"one of the scenario's policies ({ran})",
        )
    return found


def lower_expectation(ctx: Context, expectation: ast.Expectation) -> tuple[Check, ...]:
    """One `expect …` as checks (a short form may stand for several)."""
    text = expectation_text(ctx, expectation.loc)
    loc = expectation.loc
    match expectation:
        case ast.OutcomeExpectation(outcome=outcome, checks=fields):
            checks = [Check(loc, text, Observable.OUTCOME, Comparison.EQ, outcome)]
            for field in fields:
                observable = member(ctx, field.field, Observable, "observable")
                checks.append(Check(field.loc, text, observable, Comparison.EQ, _typed(ctx, observable, field.value)))
            return tuple(checks)
        case ast.DeliveredExpectation(event=event, return_rip=return_rip, error_code=error_code, negated=negated):
            number, kind = event_of(ctx, event)
            probes = [Check(loc, text, Probe.DELIVERED, Comparison.EQ, not negated, vector=number, event_type=kind)]
            for probe, value in ((Probe.RETURN_RIP, return_rip), (Probe.ERROR_CODE, error_code)):
                if value is not None:
                    probes.append(Check(loc, text, probe, Comparison.EQ, int(value), vector=number, event_type=kind))
            return tuple(probes)
        case ast.SpuriousDbExpectation(present=present):
            return (Check(loc, text, Observable.SPURIOUS_DB, Comparison.EQ, present),)
        case ast.FieldExpectation(observable=name, pick=pick, comparison=comparison, value=value):
            observable = member(ctx, name, Observable, "observable")
            chosen = plain(pick) if pick is None or isinstance(pick, int) else member(ctx, pick, Pick, "pick")
            expected = _typed(ctx, observable, value)
            check = Check(loc, text, observable, _COMPARISONS[comparison], expected, pick=chosen or Pick.FOCUS)
            return (check,)
    raise AssertionError(f"unhandled expectation {type(expectation).__name__}")  # pragma: no cover


def _typed(ctx: Context, observable: Observable, value: ast.ExpectedValue) -> Observed:
    """The right-hand side of a check as the engine reports that observable (a vector, an outcome, a number…)."""
    if isinstance(value, ast.Number):
        return int(value)
    if not isinstance(value, ast.Name):
        return value  # true/false, or a "string" (for `contains`)
    word = value.text
    if word == _NONE_WORD:
        return None
    if observable is Observable.OUTCOME:
        return member(ctx, value, Outcome, "outcome")
    if observable is Observable.EVIDENCE:
        return member(ctx, value, Evidence, "evidence tag")
    if observable is Observable.DELIVERED_TYPE:
        if word not in EVENT_TYPE_WORDS:
            raise ctx.error(value.loc, f"unknown event type {word!r}", expected=", ".join(EVENT_TYPE_WORDS))
        return EVENT_TYPE_WORDS[word]
    if observable.value in VECTOR_OBSERVABLES:
        number = vector(ctx, value, value.loc)
        return Vector(number) if number in Vector._value2member_map_ else number
    if observable.value in EXIT_CODE_OBSERVABLES and word.lower() in EXIT_REASONS:
        return int(EXIT_REASONS[word.lower()])
    choices = [_NONE_WORD]
    raise ctx.error(
        value.loc,
        f"{word!r} is not a value of {observable.value}",
        expected="a number, true or false, or none",
        hint=did_you_mean(word, choices),
    )
