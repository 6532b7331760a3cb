"""The pytest nodes of a `.svm` file: `SvmFile` (a collector) and `SvmItem` (one case).

Imported by `dsl.runtime.pytest_plugin` on the first `.svm` file it collects, so that a pytest run without
scenario files never loads the compiler and the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import TerminalRepr, TracebackStyle

from dsl.compiler.lowered import Case
from dsl.compiler.names import PENDING_TAG, marker_name, slug
from dsl.runtime.loader import LoadedFile, forget, load
from dsl.runtime.runner import execute
from dsl.runtime.suite import PENDING
from dsl.runtime.verdict import CaseResult, Verdict

#: The user property that names an item's case (`file|scenario|policy|row`), for reports and tools.
CASE_PROPERTY = "svm_case"


_MARKS = pytest.StashKey[dict[str, pytest.MarkDecorator]]()


def _mark(config: pytest.Config, tag: str) -> pytest.MarkDecorator:
    """The marker a tag becomes, registered once per session (so `--strict-markers` accepts it) and shared by
    every item with that tag."""
    marks = config.stash.setdefault(_MARKS, {})
    name = marker_name(tag)
    if (mark := marks.get(name)) is None:
        config.addinivalue_line("markers", f"{name}: scenarios tagged {tag}")
        mark = marks[name] = getattr(pytest.mark, name)
    return mark


class SvmCollectionError(Exception):
    """A scenario file that cannot be parsed, checked or lowered; the message is the rendered diagnostic."""


class SvmCaseFailed(Exception):
    """A case that did not hold; carries its result for `repr_failure`."""

    def __init__(self, result: CaseResult) -> None:
        super().__init__(result.explain())
        self.result = result

    def __reduce__(self) -> tuple[type[SvmCaseFailed], tuple[CaseResult]]:
        return (SvmCaseFailed, (self.result,))  # pickles with its result (pytest-xdist)


class SvmFile(pytest.File):
    """A `.svm` file: one item per case.

    The file's lowered cases are held from collection until its last selected item has run and pytest tears the
    file down, then let go (`teardown`); a file none of whose items was selected (`-k`, `-m`) lets go when
    collection ends. Held to the end of the session, ten thousand of them made the session 5% slower (bench_runners,
    10,000 scenarios, warm: 4.97 s against 4.73 s): whatever stays alive is walked by every full pass of the cycle
    collector and freed all at once when the interpreter exits. A teardown with items still to come (a shuffled
    order, as pytest-randomly makes) keeps the cases: letting go there had every item read its whole file again.
    Under pytest-xdist a worker cannot know which items it will be sent, so its files are held to the end. Items
    that run after the release (a rerun) find the file read again (`setup`), from this process's cache or the disk
    cache, and checked to be the one collected.
    """

    _held: LoadedFile | None = None
    _collected_digest = ""
    #: The names of the selected items that have not run yet; None until collection ends, or under xdist.
    _to_run: set[str] | None = None

    def collect(self) -> Iterator[SvmItem]:
        loaded = load(self.path)
        if loaded.error is not None or loaded.lowered is None:
            raise SvmCollectionError(loaded.error.render() if loaded.error is not None else "cannot be loaded")
        self._held, self._collected_digest = loaded, loaded.digest
        taken: set[str] = set()
        for scenario in loaded.lowered.scenarios:
            readable = slug(scenario.name)
            for case in scenario.cases:
                detail = case.policy.value if case.row is None else f"{case.policy.value}-row{case.row}"
                name = f"{readable}[{detail}]"
                if name in taken:  # two titles with the same slug: the line keeps them apart
                    name = f"{readable}_line{scenario.loc.line}[{detail}]"
                taken.add(name)
                item: SvmItem = SvmItem.from_parent(self, name=name, case=case)
                for tag in case.tags:
                    item.add_marker(_mark(self.config, tag))
                if PENDING_TAG in case.tags:  # the same as the generated modules do
                    item.add_marker(PENDING)
                item.extra_keyword_matches.update((case.scenario, case.display_title))
                yield item

    def loaded(self) -> LoadedFile:
        """The file as collected: held since collection, or read again (and checked to be unchanged)."""
        if self._held is None:
            loaded = load(self.path)
            if loaded.digest != self._collected_digest or loaded.lowered is None:
                # pytrace=False: pytest shows this message alone, in set-up as in the test itself.
                pytest.fail(f"{loaded.display} changed after its cases were collected: run pytest again", pytrace=False)
            self._held = loaded
        return self._held

    @property
    def holding(self) -> bool:
        """Whether the file's lowered cases are held in memory now."""
        return self._held is not None

    def release(self) -> None:
        """Let go of the file's lowered cases (this process's cache included); `loaded` reads them again."""
        self._held = None
        forget(self.path)

    def will_run(self, names: set[str]) -> None:
        """The names of this file's items this process will run (pytest's selection, once collection ends)."""
        self._to_run = set(names)

    def has_run(self, name: str) -> None:
        if self._to_run is not None:
            self._to_run.discard(name)

    def setup(self) -> None:
        self.loaded()

    def teardown(self) -> None:
        if self._to_run is not None and not self._to_run:
            self.release()

    # pytest's own Collector narrows Node.repr_failure the same way (no `style`).
    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str | TerminalRepr:  # type: ignore[override]
        if isinstance(excinfo.value, SvmCollectionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class SvmItem(pytest.Item):
    """One case: runs through `runner.execute`, exactly like `svmdsl run` and (via `run_case`) the generated
    modules."""

    def __init__(self, *, case: Case, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # What names the case; the case itself stays with the file (see SvmFile), found again when the item runs.
        self.case_key = (case.scenario, case.policy, case.row)
        self.scenario = case.scenario
        self.title = case.display_title
        self.policy = case.policy.value
        self.row = case.row
        self.line = case.loc.line
        self.user_properties.append(
            (CASE_PROPERTY, f"{self.path.as_posix()}|{self.scenario}|{self.policy}|{self.row or ''}")
        )

    @property
    def file(self) -> SvmFile:
        assert isinstance(self.parent, SvmFile)  # the only collector that makes these items
        return self.parent

    def runtest(self) -> None:
        loaded = self.file.loaded()
        result = execute(loaded.index[self.case_key], loaded)
        if result.verdict is not Verdict.HELD:
            raise SvmCaseFailed(result)

    def teardown(self) -> None:
        self.file.has_run(self.name)  # pytest tears an item down before its file

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: TracebackStyle | None = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, SvmCaseFailed):
            return excinfo.value.result.explain().rstrip("\n")
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        detail = self.policy if self.row is None else f"{self.policy}, row {self.row}"
        return self.path, self.line - 1, f"{self.title} [{detail}]"
