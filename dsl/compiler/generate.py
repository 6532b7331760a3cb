"""Render pytest modules for scenario files with Jinja2.

Rendering is pure: a `SuiteModule` (computed from lowered cases) goes in, Python source comes out. Writing
files, headers and staleness checks belong to the runtime (`dsl.runtime.genfiles`). Nothing from a scenario is
interpolated into Python as raw text: strings pass through `py_str` (a string literal), names through
`py_identifier` (validated), comments through `comment_text` (one safe line).
"""

from __future__ import annotations

import functools
import hashlib
import json
import keyword
import re
import unicodedata

import attrs
import jinja2

from dsl.compiler.names import PENDING_TAG, marker_name, slug

#: Bumped whenever the shape of generated modules changes, so their input hash changes with it.
GENERATOR_VERSION = "3"

#: Longest scenario part of a test name: `def test_<60>__architectural__row999__line9999() -> None:` fits in the
#: formatter's 120 columns, so `ruff format` leaves the signature on one line.
MAX_SCENARIO_SLUG = 60

_TEMPLATE_NAME = "test_module.py.j2"
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


class GenerateError(Exception):
    """A scenario or path that cannot be turned into a valid, unambiguous pytest module."""


@attrs.frozen
class SuiteCase:
    """One generated test: a scenario under one policy (and one outline row)."""

    scenario: str
    line: int
    policy: str
    row: int | None
    tags: tuple[str, ...] = ()


@attrs.frozen
class SuiteModule:
    """Everything a generated module says. `source` is the .svm path relative to the module's folder (posix)."""

    source: str
    inputs_digest: str
    cases: tuple[SuiteCase, ...]


@attrs.frozen
class RenderedTest:
    """What the template needs for one test; computed here so that the template only loops."""

    name: str
    markers: tuple[str, ...]
    pending: bool
    location: str
    scenario: str
    policy: str
    line: int
    row: int | None


# --- filters: the only ways a value reaches generated Python ---------------------------------------------


def py_str(value: str) -> str:
    """A Python string literal for `value`, quoted the way `ruff format` quotes it (double unless fewer escapes).

    Every character that is not printable (control characters, line and paragraph separators, surrogates,
    unassigned code points) is escaped, so the literal is one physical line that evaluates back to `value`.
    """
    quote = "'" if value.count('"') > value.count("'") else '"'
    parts = [quote]
    for char in value:
        if char == "\\":
            parts.append("\\\\")
        elif char == quote:
            parts.append("\\" + quote)
        elif char.isprintable() and unicodedata.category(char) not in ("Zl", "Zp"):
            parts.append(char)
        else:
            parts.append(_escape_char(char))
    parts.append(quote)
    return "".join(parts)


def _escape_char(char: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in named:
        return named[char]
    code = ord(char)
    if code <= 0xFF:
        return f"\\x{code:02x}"
    if code <= 0xFFFF:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def py_identifier(value: str) -> str:
    """`value` itself if it is a safe, non-keyword Python identifier; otherwise an error (never a repair)."""
    if not _IDENTIFIER.fullmatch(value) or keyword.iskeyword(value):
        raise GenerateError(f"not a valid Python identifier: {value!r}")
    return value


def comment_text(value: str) -> str:
    """`value` as the text of one comment line: ASCII, printable, no line breaks."""
    escaped = value.encode("ascii", "backslashreplace").decode("ascii")
    return "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in escaped)


def case_test_name(case: SuiteCase) -> str:
    """`test_<scenario>__<policy>[__row<n>]`, all slugs; the scenario part is cut to keep the `def` line short."""
    words = slug(case.scenario)
    if len(words) > MAX_SCENARIO_SLUG:
        words = words[:MAX_SCENARIO_SLUG].rsplit("_", 1)[0] or words[:MAX_SCENARIO_SLUG]
    name = f"test_{words}__{slug(case.policy)}"
    if case.row is not None:
        name += f"__row{case.row}"
    return name


def case_location(source: str, case: SuiteCase) -> str:
    """`path:line` of the scenario, as shown in the comment above each generated test."""
    return f"{source}:{case.line}"


# --- rendering -------------------------------------------------------------------------------------------


@functools.cache
def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("dsl.compiler", "templates"),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,  # Python source, not HTML: every value goes through a literal filter instead
    )
    env.filters["py_str"] = py_str
    env.filters["py_identifier"] = py_identifier
    env.filters["comment"] = comment_text
    return env


def template_digest() -> str:
    """Hash of the template text and the generator version: part of every module's input hash."""
    env = _environment()
    assert env.loader is not None
    text, _, _ = env.loader.get_source(env, _TEMPLATE_NAME)
    return hashlib.sha256(f"{GENERATOR_VERSION}\n{text}".encode()).hexdigest()


def inputs_digest(*sources: bytes) -> str:
    """The hash recorded in a header: of what the file is generated from, the template and the generator version."""
    digest = hashlib.sha256(template_digest().encode())
    for source in sources:
        digest.update(hashlib.sha256(source).digest())
    return digest.hexdigest()


def cases_digest(source: str, cases: tuple[SuiteCase, ...]) -> str:
    """The inputs of one module: its source path and, per case, title, line, policy, row and tags.

    Not the whole `.svm` text: an edit that changes no case (an expectation, a comment) leaves the module as is.
    """
    rows = [[case.scenario, case.line, case.policy, case.row, list(case.tags)] for case in cases]
    return inputs_digest(json.dumps([source, rows], ensure_ascii=False).encode())


def _rendered_tests(module: SuiteModule) -> tuple[RenderedTest, ...]:
    ordered = module.cases  # file order, then the policies in the order the scenario names them: deterministic
    taken: dict[str, SuiteCase] = {}
    tests: list[RenderedTest] = []
    for case in ordered:
        name = case_test_name(case)
        if name in taken:
            # Two titles with the same slug: the line number keeps the names apart, deterministically.
            name = f"{name}__line{case.line}"
        if name in taken:
            raise GenerateError(f"{case_location(module.source, case)}: two cases would both be named {name}")
        taken[name] = case
        tests.append(
            RenderedTest(
                name=py_identifier(name),
                markers=tuple(sorted({marker_name(tag) for tag in case.tags})),
                pending=PENDING_TAG in case.tags,
                location=case_location(module.source, case),
                scenario=case.scenario,
                policy=case.policy,
                line=case.line,
                row=case.row,
            )
        )
    return tuple(tests)


def render_module(module: SuiteModule) -> str:
    """The body of a generated module (everything below the header), checked with `compile()`."""
    tests = _rendered_tests(module)
    source = _environment().get_template(_TEMPLATE_NAME).render(source=module.source, tests=tests)
    compile(source, f"<generated from {module.source}>", "exec")
    return source


def render_conftest(markers: tuple[str, ...]) -> str:
    """The body of the generated `conftest.py` that registers every tag marker the modules use."""
    source = _environment().get_template("conftest.py.j2").render(markers=tuple(sorted(set(markers))))
    compile(source, "<generated conftest>", "exec")
    return source


def module_markers(module: SuiteModule) -> tuple[str, ...]:
    """The markers a module's tests carry (to be registered by the generated conftest)."""
    return tuple(sorted({marker_name(tag) for case in module.cases for tag in case.tags}))
