"""Paths and helpers shared by the documentation tests."""

from __future__ import annotations

import html.parser
from pathlib import Path

HERE = Path(__file__).parent
REPOSITORY = HERE.parents[1]
#: Small scenario files written for these tests (a divergence, an outline, a failing expectation, nesting).
FIXTURE_LIBRARY = HERE / "fixtures" / "library"
#: A scenario whose title, source and description are HTML and Markdown.
HOSTILE = HERE / "fixtures" / "hostile"
#: The project's own scenario library.
BUNDLED = REPOSITORY / "scenarios"


def read_site(out: Path) -> dict[str, bytes]:
    """Every file under a built site: relative posix path → bytes."""
    return {path.relative_to(out).as_posix(): path.read_bytes() for path in sorted(out.rglob("*")) if path.is_file()}


class Elements(html.parser.HTMLParser):
    """The elements of an HTML page as a browser's tokenizer sees them: tag names and attributes, in order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def named(self, tag: str) -> list[dict[str, str | None]]:
        return [attributes for name, attributes in self.tags if name == tag]


def parse_html(page: bytes) -> Elements:
    parser = Elements()
    parser.feed(page.decode("utf-8"))
    parser.close()
    return parser
