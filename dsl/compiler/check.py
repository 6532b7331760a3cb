"""The checker: what the grammar cannot catch, each with a clear message and a "did you mean" where one exists.

Unknown names (profile, policy, mode, vector, fault, exit reason, mnemonic, observable …), values out of range
for the mode, contradictory set-up, expectations under a policy the scenario does not run, duplicate scenario
titles, outline columns no placeholder uses. This module walks the file; `check_statement` checks each sentence,
`check_scenario` a block as a whole, `check_report` words the diagnostics.

`check` returns every diagnostic; `check_file` (= `check_or_raise`) raises one `SvmCheckError` carrying all errors
and returns the warnings; `load` parses and checks a path. Nothing but `SvmError` is ever raised.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import attrs

from dsl.compiler.check_scenario import (
    check_consistency,
    is_nesting,
    last_mode,
    last_rip,
    policies_of,
    setting_key,
    setting_label,
)
from dsl.compiler.check_statement import StatementChecker
from dsl.errors import (
    Diagnostic,
    Loc,
    Severity,
    SvmCheckError,
    SvmSyntaxError,
    sort_diagnostics,
)
from dsl.syntax import ast
from dsl.syntax.expand import background_settings
from dsl.syntax.outline import placeholders
from dsl.syntax.parse import parse_file, parse_recovering


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


def _texts(svm_file: ast.SvmFile) -> dict[str, str]:
    texts = {svm_file.path: svm_file.text}
    for include in svm_file.includes:
        if include.file is not None:
            texts.update(_texts(include.file))
    return texts


class _Checker(StatementChecker):
    """Walks a file: its backgrounds and includes, each scenario and outline row, each block of sentences."""

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
