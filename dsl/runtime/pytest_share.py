"""pytest-xdist workers share the parsing of a session's `.svm` files through the disk cache.

Every xdist worker collects every file. On a cold cache each would parse all of them, so `-n 4` parsed four times
and collected no faster than one process. Instead, before collecting, worker k of n lowers every n-th file from
the k-th (sorted, the same list in every worker) into the disk cache (`dsl.runtime.disk_cache`); when it then
collects, the other workers' shares are read back. A file another worker has not stored yet is simply lowered
again: the cache never changes what a file lowers to, so sharing only saves time.

The files are the `.svm` files below the session's arguments that the plugin collects (see `pytest_plugin`);
pytest's own `norecursedirs` are skipped. A file pytest then ignores anyway (`--ignore`, a conftest's
`collect_ignore`) costs its parse, nothing else.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from dsl import SCENARIO_SUFFIX
from dsl.runtime import disk_cache
from dsl.runtime.loader import load

#: pytest-xdist names its workers gw0, gw1, …
_WORKER_PREFIX = "gw"


def worker_slot(worker: Mapping[str, object]) -> tuple[int, int] | None:
    """(this worker's index, the number of workers), from pytest-xdist's `workerinput`; None if it is not there."""
    name, count = worker.get("workerid"), worker.get("workercount")
    number = name.removeprefix(_WORKER_PREFIX) if isinstance(name, str) else ""
    if not (number.isdigit() and isinstance(count, int) and count > 1):
        return None
    return int(number) % count, count  # a restarted worker gets a new id: it takes the slot it replaced


def lower_own_share(config: pytest.Config, worker: Mapping[str, object], wanted: Callable[[Path], bool]) -> None:
    """In an xdist worker with the disk cache on, lower this worker's share of the session's scenario files."""
    slot = worker_slot(worker)
    if slot is None or disk_cache.default_folder() is None:
        return
    index, count = slot
    for path in sorted(set(scenario_files(config, wanted)))[index::count]:
        load(path)


def scenario_files(config: pytest.Config, wanted: Callable[[Path], bool]) -> Iterator[Path]:
    """The `.svm` files below the session's arguments that `wanted` accepts, as absolute paths."""
    skipped: list[str] = config.getini("norecursedirs")
    for argument in config.args:
        path = config.invocation_params.dir / argument.split("::")[0]
        if path.is_file():
            if path.suffix == SCENARIO_SUFFIX and wanted(path):
                yield path.resolve()
            continue
        for folder, subfolders, files in os.walk(path):
            subfolders[:] = [name for name in subfolders if not any(fnmatch.fnmatch(name, p) for p in skipped)]
            for name in files:
                candidate = Path(folder, name)
                if candidate.suffix == SCENARIO_SUFFIX and wanted(candidate):
                    yield candidate.resolve()
