"""The canonical text of a `.svm` file (`svmdsl fmt`): parse → format → parse gives an equal AST.

Canonical form: blocks separated by one blank line; two-space indentation inside a block; tags on one line above
their scenario; statements in their canonical spelling (`, ` in lists, `; ` between sentences on one line, single
spaces, lower-case keywords); examples tables with aligned columns. Every number keeps its author's spelling
(`1`, `-1`, `0x0200`, `4096`): a formatter does not rewrite what a person wrote. Kept from the source: comments
(whole-line and trailing), which sentences share a line (the compact form stays compact), and single blank lines
between groups of sentences.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from dsl.errors import NO_FILE
from dsl.syntax import ast, render
from dsl.syntax.parse import parse_text
from dsl.syntax.transform import quote, strip_comment

INDENT = "  "
_HEADER = re.compile(r"[ \t]*scenario\b")
_DOCSTRING_DELIMITER = '"""'


def format_text(text: str, filename: str = NO_FILE) -> str:
    """Parse `text` and return its canonical form (raises `SvmError` if it does not parse)."""
    return format_file(parse_text(text, filename))


def format_file(svm_file: ast.SvmFile) -> str:
    """The canonical text of a parsed file (comments are taken from `svm_file.text`)."""
    return _Formatter(svm_file.text).file(svm_file)


def comments_by_line(text: str) -> dict[int, tuple[str, bool]]:
    """Line → (`// comment`, whole line?) for every comment outside strings and descriptions."""
    found: dict[int, tuple[str, bool]] = {}
    in_docstring = False
    for number, line in enumerate(text.splitlines(), start=1):
        delimiters = line.count(_DOCSTRING_DELIMITER)
        if in_docstring or delimiters:
            in_docstring = in_docstring != (delimiters % 2 == 1)
            continue
        code = strip_comment(line)
        if len(code) < len(line.rstrip()):
            comment = line.rstrip()[len(code) :].strip()
            found[number] = (comment, code.strip() == "")
    return found


class _Formatter:
    def __init__(self, text: str) -> None:
        self.text = text
        self.source_lines = text.splitlines()
        self.comments = comments_by_line(text)
        self.out: list[str] = []

    # --- comments and blank lines -----------------------------------------------------------------------------

    def flush_comments(self, before_line: int, indent: str) -> int:
        """Emit the whole-line comments above `before_line` that are not out yet; how many there were."""
        lines = sorted(n for n, (_, whole) in self.comments.items() if whole and n < before_line)
        for line in lines:
            comment, _ = self.comments.pop(line)
            if self._blank_before(line) and self.out and self.out[-1] != "":
                self.out.append("")
            self.out.append(indent + comment)
        return len(lines)

    def trailing(self, line: int) -> str:
        entry = self.comments.get(line)
        if entry is None or entry[1]:
            return ""
        del self.comments[line]
        return "  " + entry[0]

    def _blank_before(self, line: int) -> bool:
        return line >= 2 and line - 2 < len(self.source_lines) and self.source_lines[line - 2].strip() == ""

    def emit(self, line: int, indent: str, text: str, *, keep_blank: bool = True) -> None:
        flushed = self.flush_comments(line, indent)
        wants_blank = (keep_blank or flushed) and self._blank_before(line)
        if wants_blank and self.out and self.out[-1] != "" and not self._just_opened():
            self.out.append("")
        self.out.append(indent + text + self.trailing(line))

    def _just_opened(self) -> bool:
        return bool(self.out) and self.out[-1].rstrip().endswith(":") and not self.out[-1].lstrip().startswith("//")

    # --- structure --------------------------------------------------------------------------------------------

    def file(self, svm_file: ast.SvmFile) -> str:
        for index, item in enumerate(svm_file.items):
            if index and not (isinstance(item, ast.Include) and isinstance(svm_file.items[index - 1], ast.Include)):
                self.out.append("")
            self.item(item)
        self.flush_comments(len(self.source_lines) + 2, "")
        while self.out and self.out[-1] == "":
            self.out.pop()
        return "\n".join(self.out) + "\n" if self.out else ""

    def item(self, item: ast.TopLevel) -> None:
        match item:
            case ast.Include(path=path):
                self.emit(item.loc.line, "", f"include {quote(path)}", keep_blank=False)
            case ast.Background(statements=statements):
                self.emit(item.loc.line, "", "background:", keep_blank=False)
                self.statements(statements, item.loc.line)
            case ast.Scenario() | ast.ScenarioOutline():
                self.scenario(item)

    def header_line(self, item: ast.Scenario | ast.ScenarioOutline) -> int:
        """The line of the `scenario` keyword (the item's own location is its first tag when it has tags)."""
        for number in range(item.loc.line, len(self.source_lines) + 1):
            if _HEADER.match(self.source_lines[number - 1]):
                return number
        return item.loc.line

    def scenario(self, item: ast.Scenario | ast.ScenarioOutline) -> None:
        header = self.header_line(item)
        if item.tags:
            self.emit(item.loc.line, "", " ".join("@" + t for t in item.tags), keep_blank=False)
        keyword = "scenario outline" if isinstance(item, ast.ScenarioOutline) else "scenario"
        title = f"{keyword} {quote(item.title)}:"
        statements = item.statements if isinstance(item, ast.Scenario) else ()
        inline = [s for s in statements if s.loc.line == header]
        if inline:
            title += " " + "; ".join(render.statement(s) for s in inline)
        self.emit(header, "", title, keep_blank=False)
        for source in item.sources:
            self.out.append(INDENT + f"source {quote(source)}")
        if item.description is not None:
            self.out.append(INDENT + _DOCSTRING_DELIMITER)
            self.out.extend((INDENT + line).rstrip() for line in item.description.splitlines())
            self.out.append(INDENT + _DOCSTRING_DELIMITER)
        if isinstance(item, ast.ScenarioOutline):
            self.outline(item)
        else:
            self.statements([s for s in statements if s.loc.line != header], header)

    def statements(self, statements: Sequence[ast.Statement], header: int) -> None:
        """One output line per source line: sentences that shared a line keep sharing it."""
        groups: dict[int, list[ast.Statement]] = {}
        for statement in statements:
            groups.setdefault(statement.loc.line, []).append(statement)
        for line, group in groups.items():
            self.emit(line, INDENT, "; ".join(render.statement(s) for s in group))

    def outline(self, outline: ast.ScenarioOutline) -> None:
        for template in outline.template:
            self.emit(template.loc.line, INDENT, template.text.strip())
        examples = outline.examples
        self.emit(examples.loc.line, INDENT, "examples:")
        rows = [examples.columns, *(row.cells for row in examples.rows)]
        widths = [max(len(row[i]) for row in rows if i < len(row)) for i in range(max(len(r) for r in rows))]
        lines = [examples.loc.line + 1, *(row.loc.line for row in examples.rows)]
        header_line = next((n for n in range(examples.loc.line + 1, len(self.source_lines) + 1)
                            if self.source_lines[n - 1].lstrip().startswith("|")), lines[0])  # fmt: skip
        lines[0] = header_line
        for line, cells in zip(lines, rows, strict=True):
            padded = " | ".join(cell.ljust(widths[i]) for i, cell in enumerate(cells))
            self.emit(line, INDENT * 2, f"| {padded} |", keep_blank=False)
