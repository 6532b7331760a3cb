"""Find the scenario files under the paths given on the command line."""

from __future__ import annotations

from pathlib import Path

import attrs

from dsl import SCENARIO_SUFFIX


class PathProblem(Exception):
    """A command-line path that does not exist or holds no scenario file."""


@attrs.frozen
class ScenarioFile:
    """A `.svm` file and the topic it belongs to: the top folder under the path it was found through."""

    path: Path
    topic: str
    root: Path  # the command-line path it was found under (a folder, or the file itself)

    @property
    def relative(self) -> Path:
        """The path below its root folder (just the name for a file given directly)."""
        return self.path.relative_to(self.root) if self.root != self.path else Path(self.path.name)


def scenario_files(paths: tuple[str, ...]) -> tuple[ScenarioFile, ...]:
    """Every `.svm` file under `paths` (files or folders), sorted, without duplicates; PathProblem if a path is bad."""
    found: dict[Path, ScenarioFile] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise PathProblem(f"{raw}: no such file or folder")
        if path.is_file():
            if path.suffix != SCENARIO_SUFFIX:
                raise PathProblem(f"{raw}: not a scenario file (expected a {SCENARIO_SUFFIX} file or a folder)")
            found.setdefault(path.resolve(), ScenarioFile(path, topic=_topic_of_file(path), root=path))
            continue
        for file in sorted(path.rglob(f"*{SCENARIO_SUFFIX}")):
            if file.is_file() and not _hidden(file.relative_to(path)):
                relative = file.relative_to(path)
                topic = relative.parts[0] if len(relative.parts) > 1 else _topic_of_file(file)
                found.setdefault(file.resolve(), ScenarioFile(file, topic=topic, root=path))
    return tuple(sorted(found.values(), key=lambda f: f.path.as_posix()))


def nothing_found(paths: tuple[str, ...]) -> str:
    """What every command says of paths that hold no scenario file: an error (a mistyped folder, most often), not
    a run, check or generation that did nothing and passed."""
    return f"no scenarios found under {', '.join(paths)}"


def _topic_of_file(path: Path) -> str:
    """A file given directly, or lying directly in the folder given, counts under its folder's name."""
    return path.resolve().parent.name or "."


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)
