"""pytest plugin (entry point `svmdsl`): collects `.svm` files directly.

One test item per scenario × policy (× outline row), named `<scenario slug>[<policy>]` or
`<scenario slug>[<policy>-row<n>]`; scenario tags become registered markers (see
`dsl.compiler.names.marker_name`); a failure shows the `.svm` line with a caret, expected vs actual and the
engine trace; a file that does not parse is a collection error showing the diagnostic, not a traceback.

Which `.svm` files are collected: those below a folder listed in the `svm_paths` ini option (relative to the
ini file; empty by default), and any `.svm` file named on the command line. So fixture files elsewhere (for
example under `tests/`) are never mistaken for the scenario library. Under pytest-xdist, the workers split the
parsing of a cold session (`dsl.runtime.pytest_share`).

pytest loads this module in every session of an environment where svmdsl is installed, so it imports nothing
heavy: the nodes (`dsl.runtime.pytest_items`), and with them the compiler and the engine, are imported on the
first `.svm` file collected.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from dsl import SCENARIO_SUFFIX

if TYPE_CHECKING:
    from dsl.runtime.pytest_items import SvmFile

SVM_PATHS_INI = "svm_paths"
#: Every `.svm` file collected in the session (to let go of those none of whose items was selected).
_COLLECTED = pytest.StashKey[list["SvmFile"]]()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addini(
        SVM_PATHS_INI,
        type="paths",
        default=[],
        help="folders whose .svm scenario files are collected as tests (a .svm file named on the command line"
        " is always collected)",
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> None:
    """Under pytest-xdist, each worker first lowers its share of the files (see `dsl.runtime.pytest_share`)."""
    # pytest-xdist gives its workers' configs `workerinput` (its environment variables would also reach any pytest
    # a test starts).
    worker: dict[str, object] | None = getattr(session.config, "workerinput", None)
    if worker is not None:
        from dsl.runtime.pytest_share import lower_own_share  # deferred: see the module docstring

        roots: list[Path] = session.config.getini(SVM_PATHS_INI)
        lower_own_share(session.config, worker, roots, lambda path: _wanted(path, session.config))


def pytest_collect_file(file_path: Path, parent: pytest.Collector) -> SvmFile | None:
    if file_path.suffix != SCENARIO_SUFFIX or not _wanted(file_path, parent.config):
        return None
    from dsl.runtime.pytest_items import SvmFile  # deferred: see the module docstring

    collector: SvmFile = SvmFile.from_parent(parent, path=file_path)
    parent.config.stash.setdefault(_COLLECTED, []).append(collector)
    return collector


def pytest_collection_finish(session: pytest.Session) -> None:
    """Tell each `.svm` file which of its items will run, so that it lets go of its cases after the last one (and
    at once if none was selected: pytest never sets such a file up or tears it down)."""
    collected = session.config.stash.get(_COLLECTED, [])
    if not collected:  # a session without scenario files
        return
    # An xdist worker runs only the items it is sent, and cannot know which: it holds its files to the end.
    worker = hasattr(session.config, "workerinput")
    selected: dict[pytest.Collector | None, set[str]] = {}
    for item in session.items:
        selected.setdefault(item.parent, set()).add(item.name)
    for svm_file in collected:
        names = selected.get(svm_file, set())
        if not names:
            svm_file.release()
        elif not worker:
            svm_file.will_run(names)
    collected.clear()


def _wanted(file_path: Path, config: pytest.Config) -> bool:
    resolved = file_path.resolve()
    roots: list[Path] = config.getini(SVM_PATHS_INI)
    if any(resolved.is_relative_to(root.resolve()) for root in roots):
        return True
    if config.args_source is not pytest.Config.ArgsSource.ARGS:
        return False
    named = (Path(arg.split("::")[0]) for arg in config.args)
    return any(path.suffix == SCENARIO_SUFFIX and path.resolve() == resolved for path in named)
