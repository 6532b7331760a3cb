"""Render a `Site` into files: HTML pages, Markdown pages and the diagrams as SVG files (`render(site)`).

Two Jinja2 environments. HTML (and SVG) autoescape: `select_autoescape` matches on the end of the template's
name, so the double extensions `.html.j2` and `.svg.j2` are listed — `["html"]` alone would leave
`page.html.j2` unescaped. Markdown escapes every `{{ … }}` through `finalize` (Markdown has no autoescape).
Both are StrictUndefined: a misspelt name fails the build instead of printing nothing.

Each HTML page carries its stylesheet and script inline (no network, nothing to copy) under a Content Security
Policy that allows exactly those two blocks by hash: even a scenario text that escaped escaping could not run.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import posixpath
from importlib import resources

import jinja2
from markupsafe import Markup
from pygments import highlight  # type: ignore[import-untyped]
from pygments.formatters import HtmlFormatter  # type: ignore[import-untyped]
from pygments.lexer import Lexer  # type: ignore[import-untyped]

from dsl.docs import markdown
from dsl.docs.matrix import divergences, topic_groups
from dsl.docs.model import Site, SourceBlock, Status, Story
from dsl.docs.sequence import Diagram
from dsl.docs.states import Column
from dsl.engine.catalog import POLICY_SUMMARIES
from dsl.engine.vocab import policy_by_name
from dsl.syntax.highlight import SvmLexer

PACKAGE = "dsl.docs"
TEMPLATES = "templates"
STATIC = "static"
INDEX_HTML = "index.html"
INDEX_MARKDOWN = "index.md"
#: Pygments' CSS scope for highlighted `.svm` text.
HIGHLIGHT_CLASS = "highlight"

#: Shown in a status cell, HTML and Markdown alike.
STATUS_WORDS: dict[Status, str] = {
    Status.HELD: "held",
    Status.FAILED: "FAILED",
    Status.ERROR: "ERROR",
    Status.NOT_APPLICABLE: "—",
}


def policy_summary(name: str) -> str:
    """The catalog's one-line description of a policy."""
    policy = policy_by_name(name)
    return POLICY_SUMMARIES[policy] if policy is not None else ""


#: Names every template may use.
_GLOBALS: dict[str, object] = {
    "status_word": STATUS_WORDS.__getitem__,
    "policy_summary": policy_summary,
    "topic_groups": topic_groups,
    "divergences": divergences,
    "Status": Status,
    "columns": tuple(Column),
}


@functools.cache
def _svm_lexer() -> Lexer:
    """The project's lexer for `.svm` text (dsl.syntax.highlight)."""
    return SvmLexer()


@functools.cache
def _html_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(PACKAGE, TEMPLATES),
        autoescape=jinja2.select_autoescape(["html", "html.j2", "svg", "svg.j2"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(_GLOBALS)
    env.filters["svm"] = highlight_svm
    env.filters["diagram"] = render_svg
    return env


@functools.cache
def _markdown_environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader(PACKAGE, TEMPLATES),
        autoescape=False,  # Markdown, not HTML: `finalize` escapes instead
        finalize=markdown.finalize,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(_GLOBALS)
    env.filters["cell"] = markdown.cell
    env.filters["link"] = markdown.link
    env.filters["strong"] = markdown.emphasis
    env.filters["fence"] = markdown.fence
    env.filters["raw"] = markdown.Raw
    env.filters["relative_to"] = relative_link
    return env


def relative_link(target: str, page: str) -> markdown.Raw:
    """The link from `page` to `target` (both relative to the site root), percent-encoding what Markdown needs."""
    path = posixpath.relpath(target, posixpath.dirname(page) or ".")
    return markdown.Raw(path.replace(" ", "%20").replace("(", "%28").replace(")", "%29"))


def highlight_svm(block: SourceBlock, anchors: str = "") -> Markup:
    """`.svm` text as highlighted HTML with the file's line numbers (each line an anchor `<anchors>-<n>`)."""
    formatter = HtmlFormatter(
        cssclass=HIGHLIGHT_CLASS,
        linenos="inline",
        linenostart=block.first_line,
        lineanchors=anchors,
        wrapcode=True,
    )
    # Pygments escapes the text it highlights; the result is HTML by construction.
    return Markup(highlight(block.text, _svm_lexer(), formatter))


def render_svg(diagram: Diagram, ident: str) -> Markup:
    """The inline `<svg>` of a diagram; `ident` makes its element ids unique on the page."""
    template = _html_environment().get_template("sequence.svg.j2")
    return Markup(template.render(diagram=diagram, ident=ident))


def _static(name: str) -> str:
    return resources.files(PACKAGE).joinpath(STATIC, name).read_text(encoding="utf-8")


@functools.cache
def _stylesheet() -> str:
    pygments_css: str = HtmlFormatter(cssclass=HIGHLIGHT_CLASS).get_style_defs(f".{HIGHLIGHT_CLASS}")
    return _static("site.css").rstrip("\n") + "\n" + pygments_css.rstrip("\n") + "\n"


def _csp_hash(text: str) -> str:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode("ascii") + "'"


def _page_assets(script: bool) -> dict[str, object]:
    """The inline stylesheet (and script), with the Content Security Policy that admits exactly them."""
    style = _stylesheet()
    code = _static("filter.js") if script else ""
    script_src = _csp_hash(code) if script else "'none'"
    policy = f"default-src 'none'; style-src {_csp_hash(style)}; script-src {script_src}; img-src 'self' data:"
    return {"style": Markup(style), "script": Markup(code), "csp": policy}


def render_site(site: Site) -> dict[str, str]:
    """Every output file of the site: relative path → text (`\\n` line endings)."""
    html = _html_environment()
    md = _markdown_environment()
    files: dict[str, str] = {
        INDEX_HTML: html.get_template("index.html.j2").render(site=site, root="", **_page_assets(script=True)),
        INDEX_MARKDOWN: md.get_template("index.md.j2").render(site=site),
    }
    for file in site.files:
        files[file.page] = html.get_template("scenario.html.j2").render(
            site=site, file=file, root=file.root, **_page_assets(script=False)
        )
        files[file.markdown] = md.get_template("scenario.md.j2").render(site=site, file=file)
        for story in (story for scenario in file.scenarios for story in scenario.stories):
            files[story.svg_file] = _standalone_svg(story)
    return files


def _standalone_svg(story: Story) -> str:
    svg = render_svg(story.diagram, story.anchor)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + str(svg)
