"""Scenario text is data: markup or script in a title, source or description is shown as text (issue 6 §5)."""

from __future__ import annotations

import re
from pathlib import Path

import jinja2
import pytest
from docs_support import parse_html, read_site

from dsl.docs import markdown
from dsl.docs.build import BuildResult
from dsl.docs.render import _html_environment

Built = tuple[Path, BuildResult]

TITLE = "<script>alert('title')</script>"
IMG = "\"><img src=x onerror=alert('description')>"


def test_html_pages_show_markup_as_text(hostile_site: Built) -> None:
    """A title `<script>…` and a description `"><img onerror=…>` create no element: they are text."""
    out, _ = hostile_site
    site = read_site(out)
    for name in ("index.html", "markup.html"):
        elements = parse_html(site[name])
        assert elements.named("img") == [], name
        scripts = elements.named("script")
        assert len(scripts) == (1 if name == "index.html" else 0), "only the index's own filter script"
        assert not any("onerror" in attributes for _, attributes in elements.tags), name
        text = "".join(elements.text)
        assert TITLE in text, f"{name} shows the title as written"
    page_text = "".join(parse_html(site["markup.html"]).text)
    assert IMG in page_text
    assert "**bold** [link](javascript:alert(1))" in page_text
    assert b"&lt;script&gt;alert(&#39;title&#39;)&lt;/script&gt;" in site["markup.html"]


def test_svg_diagram_escapes_the_trace_and_title(hostile_site: Built) -> None:
    """The diagram's title names the scenario: escaped inside the SVG too (inline and as a file)."""
    out, _ = hostile_site
    site = read_site(out)
    svg_files = [name for name in site if name.endswith(".svg")]
    assert svg_files
    for name in svg_files:
        assert b"<script" not in site[name]
        assert b"&lt;script&gt;" in site[name]


def test_markdown_shows_markup_as_text(hostile_site: Built) -> None:
    """GitHub renders HTML inside Markdown: the page has no raw tag and no live link from scenario text."""
    out, _ = hostile_site
    page = read_site(out)["markup.md"].decode()
    outside_code = re.sub(r"(?ms)^(`{3,})text\n.*?^\1$", "", page)
    assert "<script" not in outside_code
    assert "<img" not in outside_code
    assert "&lt;script&gt;alert('title')&lt;/script&gt;" in outside_code
    assert "\\*\\*bold\\*\\* \\[link\\](javascript:alert(1))" in outside_code
    assert "](javascript:" not in outside_code.replace("\\](javascript:", "")


def test_markdown_code_fence_cannot_be_closed_by_the_text() -> None:
    """A scenario containing a run of backticks gets a longer fence."""
    assert markdown.fence("no ticks") == "```"
    assert markdown.fence("a ```` b") == "`````"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("<b>x</b> & y", "&lt;b&gt;x&lt;/b&gt; &amp; y"),
        ("*a* _b_ `c` [d](e) | ~f~", "\\*a\\* \\_b\\_ \\`c\\` \\[d\\](e) \\| \\~f\\~"),
        ("# heading", "\\# heading"),
        ("- item\n1. item", "\\- item\n1\\. item"),
        ('"quoted"', "&quot;quoted&quot;"),
    ],
)
def test_markdown_escape(text: str, shown: str) -> None:
    """What GitHub would read as HTML or Markdown is escaped; everything else is left as written."""
    assert markdown.escape(text) == shown


def test_html_templates_autoescape_their_double_extension() -> None:
    """`select_autoescape(["html"])` alone would not escape `page.html.j2`: the environment lists `html.j2`."""
    environment = _html_environment()
    select = environment.autoescape
    assert callable(select)
    for name in ("index.html.j2", "scenario.html.j2", "sequence.svg.j2"):
        assert select(name), name
    assert isinstance(environment.undefined, type)
    assert issubclass(environment.undefined, jinja2.StrictUndefined)
