"""Python's cycle collector paused while a large graph of new objects is built: an AST (`dsl.syntax.embedded`),
or a lowered file read back from the disk cache (`dsl.runtime.disk_cache`).

Both allocate many small objects and make no reference cycles, so the collector's passes over them (one per ~700
allocations) find nothing: pausing it saves ~12% of `parse_text` and ~40% of unpickling a lowered file on the
bench_runners corpus. Anything a pause leaves behind is collected once it ends. (Pausing it through checking and
lowering as well gained nothing measurable.)
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def collector_paused() -> Iterator[None]:
    """The cycle collector off for the block, then back on; left alone if it was already off (nested or by the
    program)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
