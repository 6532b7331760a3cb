"""Terminal output: colour only on a terminal (and never with NO_COLOR), progress only on a terminal."""

from __future__ import annotations

import enum
import os
from typing import TextIO

import attrs


class Colour(enum.Enum):
    """ANSI SGR codes for the few colours the reports use."""

    RED = "31"
    GREEN = "32"
    YELLOW = "33"
    CYAN = "36"
    BOLD = "1"
    DIM = "2"


def wants_colour(stream: TextIO) -> bool:
    """https://no-color.org: NO_COLOR (any non-empty value) turns colour off; so does a non-terminal."""
    if os.environ.get("NO_COLOR"):
        return False
    return _isatty(stream)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


@attrs.frozen
class Painter:
    """Wraps text in colour codes when enabled; a no-op otherwise."""

    enabled: bool

    def __call__(self, text: str, *colours: Colour) -> str:
        if not self.enabled or not colours:
            return text
        codes = ";".join(c.value for c in colours)
        return f"\x1b[{codes}m{text}\x1b[0m"


@attrs.define(eq=False)
class Progress:
    """A one-line `[done/total]` counter on stderr, redrawn in place; silent when stderr is not a terminal."""

    stream: TextIO
    total: int
    label: str
    enabled: bool | None = None  # None: decide from whether the stream is a terminal
    done: int = 0
    _last_width: int = 0

    def __attrs_post_init__(self) -> None:
        if self.enabled is None:
            self.enabled = _isatty(self.stream)

    #: Redraw about this many times over a run, so progress costs nothing measurable on big runs.
    REDRAWS = 100

    def advance(self, count: int = 1) -> None:
        self.done += count
        every = max(1, self.total // self.REDRAWS)
        if self.enabled and (self.done % every == 0 or self.done >= self.total):
            self._draw(f"{self.label} [{self.done}/{self.total}]")

    def _draw(self, text: str) -> None:
        padding = " " * max(0, self._last_width - len(text))
        self.stream.write(f"\r{text}{padding}")
        self.stream.flush()
        self._last_width = len(text)

    def finish(self) -> None:
        if self.enabled and self._last_width:
            self.stream.write("\r" + " " * self._last_width + "\r")
            self.stream.flush()
