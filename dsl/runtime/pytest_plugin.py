"""pytest plugin (entry point `svmdsl`): collects `.svm` files directly.

One test item per scenario × policy (× outline row), named `<scenario slug>[<policy>]` or
`<scenario slug>[<policy>-row<n>]`; scenario tags become registered markers (see
`dsl.compiler.generate.marker_name`); a failure shows the `.svm` line with a caret, expected vs actual and the
engine trace; a file that does not parse is a collection error showing the diagnostic, not a traceback.

Which `.svm` files are collected: those below a folder listed in the `svm_paths` ini option (relative to the
ini file; empty by default), and any `.svm` file named on the command line. So fixture files elsewhere (for
example under `tests/`) are never mistaken for the scenario library.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest._code.code import TerminalRepr, TracebackStyle

from dsl.compiler.generate import PENDING_TAG, marker_name, slug
from dsl.compiler.lowered import Case
from dsl.runtime.discover import SCENARIO_SUFFIX
from dsl.runtime.disk_cache import default_folder
from dsl.runtime.loader import LoadedFile, load
from dsl.runtime.runner import execute
from dsl.runtime.suite import PENDING
from dsl.runtime.verdict import CaseResult, Verdict

SVM_PATHS_INI = "svm_paths"
#: The user property that names an item's case (`file|scenario|policy|row`), for reports and tools.
CASE_PROPERTY = "svm_case"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        SVM_PATHS_INI,
        type="paths",
        default=[],
        help="folders whose .svm scenario files are collected as tests (a .svm file named on the command line"
        " is always collected)",
    )


_DISK_CACHE = pytest.StashKey[Path | None]()


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_DISK_CACHE] = default_folder()


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> pytest.Collector | None:
    if file_path.suffix != SCENARIO_SUFFIX or not _wanted(file_path, parent.config):
        return None
    collector: SvmFile = SvmFile.from_parent(parent, path=file_path)
    return collector


def _wanted(file_path: Path, config: pytest.Config) -> bool:
    resolved = file_path.resolve()
    roots: list[Path] = config.getini(SVM_PATHS_INI)
    if any(resolved.is_relative_to(root.resolve()) for root in roots):
        return True
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        return False
    named = (Path(arg.split("::")[0]) for arg in config.args)
    return any(path.suffix == SCENARIO_SUFFIX and path.resolve() == resolved for path in named)


_REGISTERED = pytest.StashKey[set[str]]()


def _registered_marker(config: pytest.Config, tag: str) -> str:
    """The marker a tag becomes, registered once per session (so `--strict-markers` accepts it)."""
    marker = marker_name(tag)
    registered = config.stash.setdefault(_REGISTERED, set())
    if marker not in registered:
        config.addinivalue_line("markers", f"{marker}: scenarios tagged {tag}")
        registered.add(marker)
    return marker


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
    """A `.svm` file: one item per case."""

    def collect(self) -> Iterator[SvmItem]:
        loaded = load(self.path, disk=self.config.stash.get(_DISK_CACHE, None))
        if loaded.error is not None or loaded.lowered is None:
            raise SvmCollectionError(loaded.error.render() if loaded.error is not None else "cannot be loaded")
        taken: set[str] = set()
        for scenario in loaded.lowered.scenarios:
            for case in scenario.cases:
                detail = case.policy.value if case.row is None else f"{case.policy.value}-row{case.row}"
                name = f"{slug(case.scenario)}[{detail}]"
                if name in taken:  # two titles with the same slug: the line keeps them apart
                    name = f"{slug(case.scenario)}_line{scenario.loc.line}[{detail}]"
                taken.add(name)
                item: SvmItem = SvmItem.from_parent(self, name=name, case=case, loaded=loaded)
                for tag in case.tags:
                    item.add_marker(_registered_marker(self.config, tag))
                if PENDING_TAG in case.tags:  # the same as the generated modules do
                    item.add_marker(PENDING)
                item.extra_keyword_matches.update((case.scenario, case.display_title))
                yield item

    # pytest's own Collector narrows Node.repr_failure the same way (no `style`).
    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException]) -> str | TerminalRepr:  # type: ignore[override]
        if isinstance(excinfo.value, SvmCollectionError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class SvmItem(pytest.Item):
    """One case: runs through `runner.execute`, exactly like `svmdsl run` and (via `run_case`) the generated
    modules."""

    def __init__(self, *, case: Case, loaded: LoadedFile, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The case found at collection: running it is what `run_case` would do after finding it again.
        self.case = case
        self.loaded = loaded
        self.scenario = case.scenario
        self.title = case.display_title
        self.policy = case.policy.value
        self.row = case.row
        self.line = case.loc.line
        self.user_properties.append(
            (CASE_PROPERTY, f"{self.path.as_posix()}|{self.scenario}|{self.policy}|{self.row or ''}")
        )

    def runtest(self) -> None:
        result = execute(self.case, self.loaded)
        if result.verdict is not Verdict.HELD:
            raise SvmCaseFailed(result)

    def repr_failure(
        self, excinfo: pytest.ExceptionInfo[BaseException], style: TracebackStyle | None = None
    ) -> str | TerminalRepr:
        if isinstance(excinfo.value, SvmCaseFailed):
            return excinfo.value.result.explain().rstrip("\n")
        return super().repr_failure(excinfo, style=style)

    def reportinfo(self) -> tuple[Path, int, str]:
        detail = self.policy if self.row is None else f"{self.policy}, row {self.row}"
        return self.path, self.line - 1, f"{self.title} [{detail}]"
