"""`parse_text` / `parse_file`: `.svm` text → `ast.SvmFile`, or one `SvmSyntaxError` carrying every diagnostic.

Recovery is per block: when a file fails to parse, each block (`include`, `background:`, `scenario`, `scenario
outline`) is parsed on its own, so one bad scenario reports its error without hiding the others'. Outlines are
expanded here (textual substitution, one scenario per row) and included files are parsed here, relative to the
including file, with cycles and missing files reported at the `include` line.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import attrs

from dsl.errors import (
    NO_FILE,
    Diagnostic,
    Loc,
    SvmError,
    SvmIncludeError,
    SvmSyntaxError,
    make_diagnostic,
    sort_diagnostics,
)
from dsl.syntax import ast
from dsl.syntax.outline import expand_outline
from dsl.syntax.source import BlockError, parse_source

#: A line that starts a top-level block (after indentation); tags belong to the scenario below them.
_BLOCK_START = re.compile(r"[ \t]*(@|scenario\b|background\b|include\b)")
_DOCSTRING_DELIMITER = '"""'


def parse_text(text: str, filename: str = NO_FILE) -> ast.SvmFile:
    """Parse `.svm` source. Includes are resolved relative to `filename`'s folder (or the working directory)."""
    return _Parser(()).parse(text, filename)


def parse_file(path: str | os.PathLike[str]) -> ast.SvmFile:
    """Read and parse a `.svm` file (UTF-8)."""
    return _Parser(()).parse_path(Path(path), None, None)


def parse_recovering(text: str, filename: str = NO_FILE) -> ast.SvmFile | None:
    """The blocks of a file that did parse, for checking beside its syntax errors (issue 3); None if unsafe.

    None when a background or include was lost (a broken block, a missing or broken included file): the
    scenarios that parsed would be checked without the settings they rely on, giving errors that are not theirs.
    """
    diagnostics: list[Diagnostic] = []
    svm_file = _Parser(()).parse_items(text, filename, diagnostics)
    parsed = {item.loc.line for item in svm_file.items if isinstance(item, ast.Background | ast.Include)}
    lost_block = any(line not in parsed for line in _context_block_lines(text))
    lost_include = any(include.file is None for include in svm_file.includes)
    return None if lost_block or lost_include else svm_file


def _context_block_lines(text: str) -> list[int]:
    """The line of each `background` and `include` block (what the scenarios of the file depend on)."""
    lines: list[int] = []
    for start_line, chunk in split_blocks(text):
        for offset, line in enumerate(chunk.splitlines()):
            match = _BLOCK_START.match(line)
            if match is not None:
                if match.group(1) in ("background", "include"):
                    lines.append(start_line + offset)
                break
    return lines


@attrs.define
class _Parser:
    """One parse, with the chain of files being included (for cycle detection)."""

    including: tuple[Path, ...]

    def parse_path(self, path: Path, text_of_includer: str | None, include: ast.Include | None) -> ast.SvmFile:
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            if include is None:
                raise SvmIncludeError.single(
                    None, Loc(str(path), 1, 1), f"cannot read {path}: {_reason(error)}"
                ) from None
            raise SvmIncludeError.single(
                text_of_includer, include.loc, f'cannot include "{include.path}": {_reason(error)}'
            ) from None
        return _Parser(self.including).parse(text, str(path))

    def parse(self, text: str, filename: str) -> ast.SvmFile:
        diagnostics: list[Diagnostic] = []
        svm_file = self.parse_items(text, filename, diagnostics)
        if diagnostics:
            ordered = sort_diagnostics(diagnostics)
            kind = SvmIncludeError if all(_is_include_problem(d) for d in ordered) else SvmSyntaxError
            raise kind(ordered)
        return svm_file

    def parse_items(self, text: str, filename: str, diagnostics: list[Diagnostic]) -> ast.SvmFile:
        """Every block that parsed (outlines expanded, includes parsed); each problem appended to `diagnostics`."""
        svm_file = _parse_blocks(text, filename, diagnostics)
        items: list[ast.TopLevel] = []
        for item in svm_file.items:
            if isinstance(item, ast.ScenarioOutline):
                expanded, problems = expand_outline(item, text, filename)
                diagnostics.extend(problems)
                items.append(attrs.evolve(item, scenarios=expanded))
            elif isinstance(item, ast.Include):
                included = self._include(item, text, filename, diagnostics)
                items.append(attrs.evolve(item, file=included))
            else:
                items.append(item)
        return attrs.evolve(svm_file, items=tuple(items), text=text)

    def _include(
        self, include: ast.Include, text: str, filename: str, diagnostics: list[Diagnostic]
    ) -> ast.SvmFile | None:
        base = Path(filename).parent if filename != NO_FILE else Path.cwd()
        target = (base / include.path).resolve()
        here = Path(filename).resolve() if filename != NO_FILE else None
        chain = (*self.including, *(p for p in (here,) if p is not None))
        if target in chain:
            cycle = " → ".join(p.name for p in (*chain[chain.index(target) :], target))
            diagnostics.append(make_diagnostic(text, include.loc, f"include cycle: {cycle}"))
            return None
        try:
            return _Parser(chain).parse_path(target, text, include)
        except SvmError as error:
            diagnostics.extend(error.diagnostics)
            return None


def _is_include_problem(diagnostic: Diagnostic) -> bool:
    return diagnostic.message.startswith(("cannot include", "include cycle", "cannot read"))


def _reason(error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return "no such file"
    if isinstance(error, UnicodeDecodeError):
        return "not UTF-8 text"
    return error.strerror or type(error).__name__ if isinstance(error, OSError) else str(error)


def _parse_blocks(text: str, filename: str, diagnostics: list[Diagnostic]) -> ast.SvmFile:
    """The whole file at once; on failure, block by block so every broken block gets its own diagnostic."""
    try:
        return parse_source(text, filename)
    except BlockError as first:
        items: list[ast.TopLevel] = []
        found: list[Diagnostic] = []
        for start_line, chunk in split_blocks(text):
            padded = "\n" * (start_line - 1) + chunk
            try:
                items.extend(parse_source(padded, filename, source=text).items)
            except BlockError as error:
                found.append(error.diagnostic)
        # Parsing a block alone can succeed where the whole file failed (e.g. a block cut short): keep the first.
        diagnostics.extend(found or [first.diagnostic])
        return ast.SvmFile(filename, tuple(items), loc=Loc(filename, 1, 1))


def split_blocks(text: str) -> list[tuple[int, str]]:
    """The file cut before every top-level block: (first line number, text) pairs, docstrings kept whole."""
    blocks: list[tuple[int, list[str]]] = []
    in_docstring = False
    previous_was_tag = False
    for number, line in enumerate(text.splitlines(keepends=True), start=1):
        starts_block = not in_docstring and _BLOCK_START.match(line) is not None
        if (starts_block and not previous_was_tag) or not blocks:
            blocks.append((number, []))
        blocks[-1][1].append(line)
        if line.count(_DOCSTRING_DELIMITER) % 2 == 1:
            in_docstring = not in_docstring
        previous_was_tag = not in_docstring and line.lstrip().startswith("@")
    return [(start, "".join(lines)) for start, lines in blocks]
