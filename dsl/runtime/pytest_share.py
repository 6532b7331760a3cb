"""pytest-xdist workers share the parsing of a session's `.svm` files through the disk cache.

Every xdist worker collects every file. On a cold cache each would parse all of them, so `-n 4` parsed four times
and collected no faster than one process. Instead, before collecting, worker k of n lowers every n-th file from
the k-th (sorted, the same list in every worker) into the disk cache (`dsl.runtime.disk_cache`); when it then
collects, the other workers' shares are read back. A file another worker has not stored yet is simply lowered
again: the cache never changes what a file lowers to, so sharing only saves time.

The files are those the plugin collects (see `pytest_plugin`): below both a session argument and an `svm_paths`
folder, or named on the command line; pytest's own `norecursedirs` are skipped. A file pytest then ignores anyway
(`--ignore`, a conftest's `collect_ignore`) costs its parse, nothing else. A worker of a session without scenario
files walks nothing and imports nothing more.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

from dsl import SCENARIO_SUFFIX

#: pytest-xdist names its workers gw0, gw1, …
_WORKER_PREFIX = "gw"


def worker_slot(worker: Mapping[str, object]) -> tuple[int, int] | None:
    """(this worker's index, the number of workers), from pytest-xdist's `workerinput`; None if it is not there."""
    name, count = worker.get("workerid"), worker.get("workercount")
    number = name.removeprefix(_WORKER_PREFIX) if isinstance(name, str) else ""
    if not (number.isdigit() and isinstance(count, int) and count > 1):
        return None
    return int(number) % count, count  # a restarted worker gets a new id: it takes the slot it replaced


def lower_own_share(
    config: pytest.Config, worker: Mapping[str, object], roots: list[Path], wanted: Callable[[Path], bool]
) -> None:
    """In an xdist worker with the disk cache on, lower this worker's share of the session's scenario files
    (`roots`: the `svm_paths` folders; `wanted`: the plugin's own test of a file)."""
    slot = worker_slot(worker)
    if slot is None:
        return
    index, count = slot
    share = sorted(set(scenario_files(config, roots, wanted)))[index::count]
    if not share:
        return
    # Imported only now: they bring in the compiler's data and the engine.
    from dsl.runtime import disk_cache
    from dsl.runtime.loader import load

    if disk_cache.default_folder() is not None:
        for path in share:
            load(path)


def scenario_files(config: pytest.Config, roots: list[Path], wanted: Callable[[Path], bool]) -> Iterator[Path]:
    """The `.svm` files the plugin will collect in this session, as absolute paths (some twice)."""
    folders = [root.resolve() for root in roots]
    for argument in config.args:
        path = (config.invocation_params.dir / argument.split("::")[0]).resolve()
        if path.suffix == SCENARIO_SUFFIX and path.is_file() and wanted(path):
            yield path
        elif path.is_dir():
            for folder in folders:
                if folder.is_relative_to(path):  # the argument holds the whole svm_paths folder
                    yield from _below(folder, config)
                elif path.is_relative_to(folder):  # the argument is a folder inside it
                    yield from _below(path, config)


def _below(folder: Path, config: pytest.Config) -> Iterator[Path]:
    skipped: list[str] = config.getini("norecursedirs")
    for parent, subfolders, files in os.walk(folder):
        subfolders[:] = [name for name in subfolders if not any(fnmatch.fnmatch(name, p) for p in skipped)]
        yield from (Path(parent, name) for name in files if name.endswith(SCENARIO_SUFFIX))
