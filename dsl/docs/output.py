"""Put the rendered site on disk: only files whose bytes changed, each atomically; or, in check mode, say what
would change. A manifest lists the files the last build wrote, so files of pages that disappeared are removed
(and reported as stale) without ever touching anything else in the folder.
"""

from __future__ import annotations

import difflib
from pathlib import Path, PurePosixPath

import attrs

from dsl.runtime.genfiles import write_atomically

#: Lists the files of the last build, one relative path per line.
MANIFEST = ".svmdsl-docs"
#: A stale file's diff is cut after this many lines (the summary still names every file).
DIFF_LINES_PER_FILE = 12
ENCODING = "utf-8"


class OutputError(Exception):
    """The output folder cannot be used (it is a file, or a path would leave it)."""


@attrs.frozen
class Changes:
    """What differs between the rendered site and the folder: files to add, rewrite and remove."""

    added: tuple[str, ...]
    changed: tuple[str, ...]
    removed: tuple[str, ...]
    unchanged: int
    diffs: tuple[str, ...] = ()  # a short unified diff per changed file

    @property
    def stale(self) -> bool:
        return bool(self.added or self.changed or self.removed)

    def summary(self) -> str:
        """One line per file that differs, then a short diff of each changed one."""
        lines = [f"+ {name}" for name in self.added]
        lines += [f"~ {name}" for name in self.changed]
        lines += [f"- {name}" for name in self.removed]
        lines += self.diffs
        return "\n".join(lines) + ("\n" if lines else "")


def compare(files: dict[str, str], out_dir: Path) -> Changes:
    """What writing `files` into `out_dir` would change (the manifest included)."""
    wanted = _with_manifest(files)
    added, changed, diffs = [], [], []
    unchanged = 0
    for name in sorted(wanted):
        target = _inside(out_dir, name)
        current = _read(target)
        if current is None:
            added.append(name)
        elif current != wanted[name].encode(ENCODING):
            changed.append(name)
            diffs.append(_diff(name, current, wanted[name]))
        else:
            unchanged += 1
    removed = sorted(set(_previous(out_dir)) - set(wanted))
    return Changes(tuple(added), tuple(changed), tuple(removed), unchanged, tuple(diffs))


def write(files: dict[str, str], out_dir: Path) -> Changes:
    """Bring `out_dir` up to date with `files`; returns what changed."""
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: not a folder")
    changes = compare(files, out_dir)
    wanted = _with_manifest(files)
    for name in (*changes.added, *changes.changed):
        write_atomically(_inside(out_dir, name), wanted[name])
    for name in changes.removed:
        target = _inside(out_dir, name)
        target.unlink(missing_ok=True)
        _prune_empty(target.parent, out_dir)
    return changes


def _with_manifest(files: dict[str, str]) -> dict[str, str]:
    return {**files, MANIFEST: "".join(f"{name}\n" for name in sorted(files))}


def _previous(out_dir: Path) -> tuple[str, ...]:
    listed = _read(out_dir / MANIFEST)
    if listed is None:
        return ()
    names = [line for line in listed.decode(ENCODING, errors="replace").splitlines() if line]
    return (*(name for name in names if _safe(name)), MANIFEST)


def _safe(name: str) -> bool:
    """A manifest line names a file below the folder (a hand-edited manifest must not delete elsewhere)."""
    path = PurePosixPath(name)
    return not path.is_absolute() and ".." not in path.parts and bool(path.parts)


def _inside(out_dir: Path, name: str) -> Path:
    if not _safe(name):
        raise OutputError(f"{name}: not a path inside the output folder")
    return out_dir.joinpath(*PurePosixPath(name).parts)


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        return None


def _diff(name: str, current: bytes, wanted: str) -> str:
    old = current.decode(ENCODING, errors="replace").splitlines()
    lines = list(difflib.unified_diff(old, wanted.splitlines(), f"{name} (on disk)", f"{name} (now)", lineterm=""))
    if len(lines) > DIFF_LINES_PER_FILE:
        lines = [*lines[:DIFF_LINES_PER_FILE], f"… ({len(lines) - DIFF_LINES_PER_FILE} more diff lines)"]
    return "\n".join(lines)


def _prune_empty(folder: Path, out_dir: Path) -> None:
    while folder != out_dir and folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()
        folder = folder.parent
