"""Lowered scenario files kept on disk between processes (pytest workers, repeated pytest runs).

Parsing dominates the cost of collecting `.svm` files; a file whose content, included files and svmdsl itself
are unchanged lowers to the same cases, so they are read back instead (pickled `LoweredFile`s). The key holds the
file's content digest, where it lies (two checkouts of a project share the cache, and the same file in each may
include different files), the path it is reported under and a fingerprint of the content of svmdsl's own sources;
included files are checked by their digests on every read. Anything unreadable is a miss: the cache never changes
a verdict. Only the entries of the few builds used last are kept: the first store of a new build removes older ones.

`SVMDSL_CACHE_DIR` chooses the folder (default `$XDG_CACHE_HOME/svmdsl/lowered`, else `~/.cache/svmdsl/lowered`);
set it to an empty string to turn the cache off.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import importlib.util
import os
import pickle
import shutil
import string
import tempfile
from importlib import resources
from pathlib import Path

from dsl import GRAMMAR_PACKAGE
from dsl.collector import collector_paused
from dsl.compiler.lowered import LoweredFile

CACHE_DIR_VARIABLE = "SVMDSL_CACHE_DIR"
#: Bumped when the entry layout changes (the source fingerprint covers changes of the cached classes).
_LAYOUT = "1"
_SUFFIX = ".lowered"
#: Hex digits of the source fingerprint that name a generation's subfolder.
_GENERATION_CHARS = 16
#: Builds whose entries are kept, the ones used last: a user with two installs of svmdsl (two virtual environments,
#: two worktrees at different commits) would otherwise have each remove the other's entries, and run cold each time.
_KEPT_GENERATIONS = 4
#: The package's own sources: any change to them may change what a file lowers to.
_SOURCE_SUFFIXES = (".py", ".lark")
_GRAMMAR_FOLDER = "grammar"
_PARSER_PACKAGE = "lark"


def default_folder() -> Path | None:
    """The folder `SVMDSL_CACHE_DIR` names, or the user's cache folder; None when the variable is empty or the user
    has no home folder."""
    chosen = os.environ.get(CACHE_DIR_VARIABLE)
    if chosen is not None:
        return Path(chosen) if chosen else None
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = str(Path.home() / ".cache")
        except (KeyError, RuntimeError):  # no HOME and no passwd entry (some containers): run without a cache
            return None
    return Path(base) / "svmdsl" / "lowered"  # svmdsl's other caches (the real-KVM backend's) live beside it


def source_files() -> list[tuple[str, Path]]:
    """svmdsl's sources, each by its name in the package: the `dsl` modules and the grammar, which an editable
    install maps from the repository's grammar/ folder (outside the `dsl` folder) and a wheel ships inside it; and
    the module of Lark that states its version."""
    package = Path(__file__).resolve().parent.parent
    grammar = Path(str(resources.files(GRAMMAR_PACKAGE)))
    named = [
        (path.relative_to(package).as_posix(), path)
        for path in package.rglob("*")
        if path.suffix in _SOURCE_SUFFIXES and path.relative_to(package).parts[0] != _GRAMMAR_FOLDER
    ]
    named += [(f"{_GRAMMAR_FOLDER}/{path.relative_to(grammar).as_posix()}", path) for path in grammar.rglob("*")]
    # Lark parses every file: its version (in its __init__, found without importing it) is part of the build.
    lark = importlib.util.find_spec(_PARSER_PACKAGE)
    if lark is not None and lark.origin is not None:
        named.append((f"{_PARSER_PACKAGE}/{Path(lark.origin).name}", Path(lark.origin)))
    return sorted((name, path) for name, path in named if path.suffix in _SOURCE_SUFFIXES)


def fingerprint(sources: list[tuple[str, Path]]) -> str:
    """A digest of the sources' names and contents. Contents, not modification times: every install of the same
    svmdsl writes its files anew, and a CI cache of `SVMDSL_CACHE_DIR` must stay valid across them."""
    digest = hashlib.sha256(_LAYOUT.encode())
    for name, path in sources:
        content = path.read_bytes()
        digest.update(f"{name}:{len(content)}\n".encode())
        digest.update(content)
    return digest.hexdigest()


@functools.cache
def source_fingerprint() -> str:
    """The fingerprint of this build of svmdsl (read once per process, in a few milliseconds)."""
    return fingerprint(source_files())


def _generation(folder: Path) -> Path:
    """Entries of this build of svmdsl live in a subfolder named by its source fingerprint."""
    return folder / source_fingerprint()[:_GENERATION_CHARS]


def _entry(folder: Path, source: Path, display: str, digest: str) -> Path:
    key = hashlib.sha256(f"{source}\0{display}\0{digest}".encode()).hexdigest()
    return _generation(folder) / f"{key}{_SUFFIX}"


def _is_generation(name: str) -> bool:
    return len(name) == _GENERATION_CHARS and all(c in string.hexdigits for c in name)


def _prune(folder: Path, keep: Path) -> None:
    """Drop the entries of all but the builds used last (every edit of svmdsl starts a new generation), so the
    folder stays small."""
    others = [p for p in folder.iterdir() if p != keep and p.is_dir() and _is_generation(p.name)]
    by_last_use = sorted(others, key=_last_use, reverse=True)
    for stale in by_last_use[_KEPT_GENERATIONS - 1 :]:
        shutil.rmtree(stale, ignore_errors=True)


def _last_use(generation: Path) -> int:
    try:
        return generation.stat().st_mtime_ns  # a store changes it; a process that only reads sets it (`_used`)
    except OSError:
        return 0


@functools.cache
def _used(generation: Path) -> None:
    """Mark the generation as used now (once per process), so that another build does not prune it."""
    with contextlib.suppress(OSError):
        os.utime(generation)


def _file_digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def fetch(folder: Path, source: Path, display: str, digest: str) -> LoweredFile | None:
    """The lowered file stored for this file (`source`: where it lies, resolved), content and display path, if its
    included files are unchanged."""
    try:
        with _entry(folder, source, display, digest).open("rb") as stored, collector_paused():
            includes, lowered = pickle.load(stored)
    except Exception:  # missing, truncated or from an incompatible build: lower the file again
        return None
    if not isinstance(lowered, LoweredFile) or any(_file_digest(p) != d for p, d in includes):
        return None
    _used(_generation(folder))
    return lowered


def store(folder: Path, source: Path, display: str, digest: str, lowered: LoweredFile) -> None:
    """Keep `lowered` for later processes (atomically; a folder that cannot be written is left alone)."""
    includes = tuple((path, _file_digest(path)) for path in lowered.includes)
    generation = _generation(folder)
    try:
        if not generation.is_dir():
            generation.mkdir(parents=True, exist_ok=True)
            _prune(folder, generation)
        handle, temporary = tempfile.mkstemp(dir=generation, suffix=".tmp")
    except OSError:
        return
    try:
        with os.fdopen(handle, "wb") as written:
            pickle.dump((includes, lowered), written, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(temporary, _entry(folder, source, display, digest))
    except OSError:
        Path(temporary).unlink(missing_ok=True)
