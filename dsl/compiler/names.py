"""How scenarios are named in pytest: node-id slugs, the markers tags become, the `@pending` convention.

Shared by the generated modules (`dsl.compiler.generate`) and the pytest plugin (`dsl.runtime.pytest_items`), so
both paths name and mark a case alike; kept apart from the generator so the plugin does not load Jinja2.
"""

from __future__ import annotations

import keyword
import re
import unicodedata

#: pytest's own markers: a scenario tag with one of these names would change how pytest runs the test.
PYTEST_BUILTIN_MARKERS: tuple[str, ...] = (
    "filterwarnings",
    "parametrize",
    "skip",
    "skipif",
    "tryfirst",
    "trylast",
    "usefixtures",
    "xfail",
)
#: Prefix given to a tag that collides with a built-in marker or is not an identifier.
TAG_MARKER_PREFIX = "tag_"
#: A scenario tagged `@pending` is a known gap of the engine or the language (scenarios/README convention): both
#: pytest paths mark its cases xfail, not strictly (usually only some of its policies fail).
PENDING_TAG = "pending"
PENDING_REASON = "@pending scenario: a known engine or language gap, see its // pending: comment"

_NOT_WORD = re.compile(r"[^0-9A-Za-z]+")
_MARKER = re.compile(r"[A-Za-z][A-Za-z0-9_]*")  # pytest refuses marker names that start with "_"


def slug(text: str) -> str:
    """Lower-case words joined by `_`: the readable part of test names and node ids."""
    words = _NOT_WORD.sub("_", unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii"))
    return words.strip("_").lower() or "scenario"


def marker_name(tag: str) -> str:
    """The pytest marker a scenario tag becomes (see PYTEST_BUILTIN_MARKERS and TAG_MARKER_PREFIX)."""
    name = tag if _MARKER.fullmatch(tag) else slug(tag)
    if name in PYTEST_BUILTIN_MARKERS or keyword.iskeyword(name):
        name = TAG_MARKER_PREFIX + name
    return name
