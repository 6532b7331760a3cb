"""Expectation checks for `dsl.compiler.check`: is the expected value one that its observable can take?

The same rules for `expect <observable> == <value>` and for each `name=value` of `expect <outcome> with …`:
flags are true or false, lists are checked with `contains "…"`, and a word on the right-hand side must be a
word of that observable (an outcome, an evidence tag, a vector, an exit reason, an event type) or `none`.
"""

from __future__ import annotations

from dsl.compiler.check_report import Reporter
from dsl.errors import Loc
from dsl.syntax import ast, vocabulary

#: The word for "no such event / nothing recorded" on the right-hand side of any check.
NONE_WORD = "none"


def _words_of(observable: str) -> tuple[str, tuple[str, ...]] | None:
    """What a word stands for when `observable` is compared with it, and the words allowed; None for numbers."""
    if observable == "outcome":
        return "outcome", vocabulary.OUTCOMES
    if observable == "evidence":
        return "evidence tag", vocabulary.EVIDENCE
    if observable in vocabulary.VECTOR_OBSERVABLES:
        return "vector", tuple(vocabulary.VECTORS)
    if observable in vocabulary.EXIT_CODE_OBSERVABLES:
        return "exit reason", tuple(r for r in vocabulary.EXIT_REASONS if r == r.lower())
    if observable == "delivered_type":
        return "event type", vocabulary.DELIVERED_TYPES
    return None


def check_value(
    report: Reporter, observable: str, comparison: ast.Comparison, value: ast.ExpectedValue, loc: Loc
) -> None:
    """Report a value `observable` never takes (`observable` is a known observable)."""
    listed = observable in vocabulary.LIST_OBSERVABLES
    if observable in vocabulary.BOOLEAN_OBSERVABLES:
        if not isinstance(value, bool):
            report.error(loc, f"{observable} is true or false", f"{observable} == true (or false)")
        return
    if listed and (comparison is not ast.Comparison.CONTAINS or not isinstance(value, str)):
        report.error(loc, f"{observable} is a list of lines: check one with contains", f'{observable} contains "…"')
        return
    if not listed and comparison is ast.Comparison.CONTAINS:
        report.error(loc, f"contains checks a list ({', '.join(vocabulary.LIST_OBSERVABLES)}), not {observable}", "==")
        return
    if not listed and isinstance(value, str):
        report.error(loc, f'a "string" compares only with contains, not with {observable}', "a number or a name")
        return
    if isinstance(value, bool):
        report.error(loc, f"{observable} is not a flag: true and false do not apply", "a number, a name or none")
        return
    if not isinstance(value, ast.Name) or value.text == NONE_WORD:
        return
    words = _words_of(observable)
    if words is None:
        report.error(value.loc, f"{observable} is a number, not '{value.text}'", f"a number or {NONE_WORD}")
        return
    what, options = words
    if observable in vocabulary.EXIT_CODE_OBSERVABLES and value.text.lower() in vocabulary.EXIT_REASONS:
        return  # `HLT` as well as `hlt`: the lowering reads exit reasons in any case
    report.name(value, what, (*options, NONE_WORD))
