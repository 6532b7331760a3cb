"""`build_site(paths, out_dir, check=False)`: run the scenarios, render the site, write it (or check it)."""

from __future__ import annotations

from pathlib import Path

import attrs

from dsl.docs.collect import collect
from dsl.docs.model import Site, Status
from dsl.docs.output import Changes, compare, write
from dsl.docs.render import render_site


@attrs.frozen
class BuildResult:
    """What a build did (or, with `check`, would do), and the verdicts the pages show."""

    out_dir: Path
    changes: Changes
    checked: bool  # True: nothing was written
    pages: int
    cases: int
    failed: int
    errors: int
    broken_files: int
    divergences: int

    @property
    def stale(self) -> bool:
        """The folder differs from what this build renders (after a write: it did before writing)."""
        return self.changes.stale


def render(paths: tuple[str, ...] | list[str]) -> tuple[Site, dict[str, str]]:
    """The site's content and its files (relative path → text), without touching the disk."""
    site = collect(tuple(str(path) for path in paths))
    return site, render_site(site)


def build_site(paths: tuple[str, ...] | list[str], out_dir: Path | str, check: bool = False) -> BuildResult:
    """Document every scenario under `paths` into `out_dir`: HTML and Markdown pages, one per file, and an index.

    Runs the engine through the runtime, so the pages show this run's verdicts. Writes only files whose bytes
    change, atomically; with `check`, writes nothing and reports what is stale. Raises `PathProblem` for a path
    that does not exist, `DocsError` / `OutputError` when the paths or the folder cannot be used.
    """
    site, files = render(paths)
    target = Path(out_dir)
    changes = compare(files, target) if check else write(files, target)
    cases = [case for file in site.files for scenario in file.scenarios for case in scenario.cases]
    return BuildResult(
        out_dir=target,
        changes=changes,
        checked=check,
        pages=len(site.files) + 1,
        cases=len(cases),
        failed=site.count(Status.FAILED),
        errors=site.count(Status.ERROR),
        broken_files=sum(1 for file in site.files if file.error is not None),
        divergences=site.divergences,
    )
