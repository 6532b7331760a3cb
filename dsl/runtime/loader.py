"""Parse, check and lower each scenario file once per process (cached by path and content hash).

Every runner (CLI, pytest plugin, generated modules, docs) goes through `load`, so a file with a thousand cases is
parsed once, and an edited file is parsed again.
"""

from __future__ import annotations

import enum
import functools
import hashlib
from pathlib import Path

import attrs

from dsl.compiler.lowered import Case, LoweredFile
from dsl.engine.vocab import PolicyName
from dsl.errors import Loc, SvmError, SvmSyntaxError
from dsl.runtime import disk_cache
from dsl.runtime.debug import BUG_HINT, debugging


@attrs.frozen
class LoadedFile:
    """A scenario file's text and either its lowered cases or the error that stopped them."""

    path: Path
    display: str  # the path as reports show it: relative to the working directory when below it, posix
    text: str
    digest: str
    lowered: LoweredFile | None
    error: SvmError | None
    index: dict[tuple[str, PolicyName, int | None], Case] = attrs.field(factory=dict, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        if self.lowered is not None:
            self.index.update(((c.scenario, c.policy, c.row), c) for c in self.lowered.cases)

    @property
    def ok(self) -> bool:
        return self.error is None


@attrs.frozen
class _Stamp:
    mtime_ns: int
    size: int


_CACHE: dict[Path, tuple[_Stamp, LoadedFile]] = {}


@functools.lru_cache(maxsize=4096)
def _resolved(path: Path) -> Path:
    """`path.resolve()` of an absolute path, remembered: resolving walks every component, and every case asks."""
    return path.resolve()


def _cache_key(path: Path) -> Path:
    return _resolved(path if path.is_absolute() else Path.cwd() / path)


def display_path(path: Path) -> str:
    """`path` relative to the working directory when it lies below it (as pytest shows node ids), else absolute."""
    absolute = path.resolve()
    try:
        return absolute.relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return absolute.as_posix()


class _Default(enum.Enum):
    FOLDER = enum.auto()


#: `load`'s default `disk`: the folder `SVMDSL_CACHE_DIR` names, read at each call (see `dsl.runtime.disk_cache`).
DEFAULT_FOLDER = _Default.FOLDER


def load(path: Path | str, *, disk: Path | _Default | None = DEFAULT_FOLDER) -> LoadedFile:
    """The lowered file at `path` (cached while its size and mtime, or else its content, are unchanged).

    Never raises for bad input: a file that cannot be read, parsed, checked or lowered comes back with `error`.
    Files it includes are read again only when the including file changes (one process sees one library).
    A file not yet loaded in this process is first looked up in the `dsl.runtime.disk_cache` folder `disk`
    (by default the user's, unless `SVMDSL_CACHE_DIR` is empty; None: no disk cache) and stored there once
    lowered, so every runner (`svmdsl run`, pytest, generated modules) parses an unchanged file once per build.
    """
    path = Path(path)
    key = _cache_key(path)
    try:
        stat = key.stat()
    except OSError as problem:
        return _unreadable(path, problem)
    stamp = _Stamp(stat.st_mtime_ns, stat.st_size)
    cached = _CACHE.get(key)
    if cached is not None and cached[0] == stamp:
        return cached[1]
    try:
        data = key.read_bytes()
    except OSError as problem:
        return _unreadable(path, problem)
    digest = hashlib.sha256(data).hexdigest()
    if cached is not None and cached[1].digest == digest:
        _CACHE[key] = (stamp, cached[1])
        return cached[1]
    loaded = _compile(path, key, data, digest, disk_cache.default_folder() if disk is DEFAULT_FOLDER else disk)
    _CACHE[key] = (stamp, loaded)
    return loaded


def _compile(path: Path, resolved: Path, data: bytes, digest: str, disk: Path | None) -> LoadedFile:
    display = display_path(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as problem:
        line = data[: problem.start].count(b"\n") + 1
        error = SvmError.single(None, Loc(display, line, 1), "the file is not valid UTF-8", expected="UTF-8 text")
        return LoadedFile(path, display, "", digest, None, error)
    stored = disk_cache.fetch(disk, resolved, display, digest) if disk is not None else None
    if stored is not None:
        return LoadedFile(path, display, text, digest, stored, None)
    try:
        lowered = _lower(text, display)
    except SvmError as error:
        return LoadedFile(path, display, text, digest, None, error)
    except Exception as bug:  # a defect in svmdsl must cost this file, not the whole run
        if debugging():
            raise
        message = f"internal error while reading this file: {type(bug).__name__}: {bug}"
        internal = SvmError.single(text, Loc(display, 1, 1), message, hint=BUG_HINT)
        return LoadedFile(path, display, text, digest, None, internal)
    if disk is not None:
        disk_cache.store(disk, resolved, display, digest, lowered)
    return LoadedFile(path, display, text, digest, lowered, None)


def _lower(text: str, display: str) -> LoweredFile:
    """`lower_file`, whose syntax errors also carry the checker's errors on the blocks that did parse."""
    # Imported here, on the first file that must be parsed: a run whose files all come from the disk cache never
    # loads the parser, the checker or Lark.
    from dsl.compiler import lower
    from dsl.compiler.check import with_checker_errors

    try:
        return lower.lower_file(text, display)
    except SvmSyntaxError as error:
        raise with_checker_errors(error, text, display) from None


def _unreadable(path: Path, problem: OSError) -> LoadedFile:
    display = display_path(path)
    reason = problem.strerror or type(problem).__name__
    error = SvmError.single(None, Loc(display, 1, 1), f"cannot read the file: {reason}", expected="a readable file")
    return LoadedFile(path, display, "", "", None, error)


def forget(path: Path | str) -> None:
    """Drop `path` from this process's cache, so that its lowered cases are freed once their holder lets go (the
    pytest plugin, after a file's last item); a later `load` reads it again (from the disk cache, when it is on)."""
    _CACHE.pop(_cache_key(Path(path)), None)


def clear_cache() -> None:
    """Forget every loaded file (tests that rewrite files within one mtime tick use it)."""
    _CACHE.clear()
