"""Lowered scenario files kept on disk between processes (pytest workers, repeated pytest runs).

Parsing dominates the cost of collecting `.svm` files; a file whose content, included files and svmdsl itself
are unchanged lowers to the same cases, so they are read back instead (pickled `LoweredFile`s). The key holds the
file's content digest, the path it is reported under and a fingerprint of svmdsl's own sources; included files
are checked by their digests on every read. Anything unreadable is a miss: the cache never changes a verdict.
Only the current build's entries are kept: the first store of a new build removes the others.

`SVMDSL_CACHE_DIR` chooses the folder (default `$XDG_CACHE_HOME/svmdsl/lowered`, else `~/.cache/svmdsl/lowered`);
set it to an empty string to turn the cache off.
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import shutil
import string
import tempfile
from pathlib import Path

from dsl.collector import collector_paused
from dsl.compiler.lowered import LoweredFile

CACHE_DIR_VARIABLE = "SVMDSL_CACHE_DIR"
#: Bumped when the entry layout changes (the source fingerprint covers changes of the cached classes).
_LAYOUT = "1"
_SUFFIX = ".lowered"
#: Hex digits of the source fingerprint that name a generation's subfolder.
_GENERATION_CHARS = 16
#: The package's own sources: any change to them may change what a file lowers to.
_SOURCE_SUFFIXES = (".py", ".lark")


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


@functools.cache
def source_fingerprint() -> str:
    """A digest of every svmdsl source file's name, size and modification time (one walk per process)."""
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha256(_LAYOUT.encode())
    for source in sorted(p for p in package.rglob("*") if p.suffix in _SOURCE_SUFFIXES):
        stat = source.stat()
        digest.update(f"{source.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _generation(folder: Path) -> Path:
    """Entries of this build of svmdsl live in a subfolder named by its source fingerprint."""
    return folder / source_fingerprint()[:_GENERATION_CHARS]


def _entry(folder: Path, display: str, digest: str) -> Path:
    key = hashlib.sha256(f"{display}\0{digest}".encode()).hexdigest()
    return _generation(folder) / f"{key}{_SUFFIX}"


def _is_generation(name: str) -> bool:
    return len(name) == _GENERATION_CHARS and all(c in string.hexdigits for c in name)


def _prune(folder: Path, keep: Path) -> None:
    """Drop the entries of other builds (every edit of svmdsl starts a new generation), so the folder stays small."""
    for stale in folder.iterdir():
        if stale != keep and stale.is_dir() and _is_generation(stale.name):
            shutil.rmtree(stale, ignore_errors=True)


def _file_digest(path: str) -> str | None:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return None


def fetch(folder: Path, display: str, digest: str) -> LoweredFile | None:
    """The lowered file stored for this content and display path, if its included files are unchanged."""
    try:
        with _entry(folder, display, digest).open("rb") as stored, collector_paused():
            includes, lowered = pickle.load(stored)
    except Exception:  # missing, truncated or from an incompatible build: lower the file again
        return None
    if not isinstance(lowered, LoweredFile) or any(_file_digest(p) != d for p, d in includes):
        return None
    return lowered


def store(folder: Path, display: str, digest: str, lowered: LoweredFile) -> None:
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
        os.replace(temporary, _entry(folder, display, digest))
    except OSError:
        Path(temporary).unlink(missing_ok=True)
