"""Deterministic output, written only when changed, and a check mode that fails on stale pages (issue 6 §6)."""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

import pytest
from docs_support import FIXTURE_LIBRARY, read_site

from dsl.docs import command
from dsl.docs.build import build_site, render
from dsl.docs.output import MANIFEST
from dsl.runtime.discover import PathProblem


def _copy_library(tmp_path: Path) -> Path:
    library = tmp_path / "library"
    shutil.copytree(FIXTURE_LIBRARY, library)
    return library


def test_rendering_twice_gives_identical_bytes() -> None:
    """Two renders of the same scenarios are byte-identical."""
    _, first = render([str(FIXTURE_LIBRARY)])
    _, second = render([str(FIXTURE_LIBRARY)])
    assert first == second


def test_output_does_not_depend_on_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No absolute paths: building from another directory writes the same bytes."""
    here = tmp_path / "a"
    there = tmp_path / "b"
    build_site([str(FIXTURE_LIBRARY)], here)
    monkeypatch.chdir(FIXTURE_LIBRARY)
    build_site(["."], there)
    assert read_site(here) == read_site(there)
    for name, data in read_site(here).items():
        assert str(FIXTURE_LIBRARY).encode() not in data, name
        assert str(tmp_path).encode() not in data, name
        assert b"\r\n" not in data, name


def test_no_timestamps(tmp_path: Path) -> None:
    """Output is sorted and carries no build time: a later build of unchanged input changes no byte."""
    out = tmp_path / "site"
    build_site([str(FIXTURE_LIBRARY)], out)
    before = {name: (out / name).stat().st_mtime_ns for name in read_site(out)}
    again = build_site([str(FIXTURE_LIBRARY)], out)
    assert not again.stale
    assert again.changes.unchanged == len(before)
    after = {name: (out / name).stat().st_mtime_ns for name in read_site(out)}
    assert after == before, "unchanged files are not rewritten"


def test_check_reports_stale_pages_and_writes_nothing(tmp_path: Path) -> None:
    """--check after an edit of a scenario: stale, with a diff summary; nothing on disk changes."""
    library = _copy_library(tmp_path)
    out = tmp_path / "site"
    build_site([str(library)], out)
    assert not build_site([str(library)], out, check=True).stale
    stale = library / "seed" / "stale.svm"
    stale.write_text(stale.read_text(encoding="utf-8").replace("0x2222", "0x1001"), encoding="utf-8")
    before = read_site(out)
    result = build_site([str(library)], out, check=True)
    assert result.stale
    assert "seed/stale.html" in result.changes.changed
    summary = result.changes.summary()
    assert "~ seed/stale.html" in summary
    assert "+++ seed/stale.html (now)" in summary
    assert read_site(out) == before


def test_pages_of_removed_files_are_removed_and_nothing_else(tmp_path: Path) -> None:
    """The manifest names what a build wrote: a page whose file went away is removed, other files stay."""
    library = _copy_library(tmp_path)
    out = tmp_path / "site"
    build_site([str(library)], out)
    (out / "notes.txt").write_text("mine\n", encoding="utf-8")
    (library / "seed" / "stale.svm").unlink()
    check = build_site([str(library)], out, check=True)
    assert "seed/stale.html" in check.changes.removed
    build_site([str(library)], out)
    assert not (out / "seed" / "stale.html").exists()
    assert not (out / "seed" / "stale").exists(), "the folder of its diagrams is pruned"
    assert (out / "notes.txt").read_text(encoding="utf-8") == "mine\n"
    assert "seed/stale.md" not in (out / MANIFEST).read_text(encoding="utf-8")


def test_manifest_cannot_make_the_build_delete_outside_the_folder(tmp_path: Path) -> None:
    """A hand-edited manifest naming `../x` is ignored."""
    out = tmp_path / "site"
    victim = tmp_path / "victim.txt"
    victim.write_text("keep\n", encoding="utf-8")
    out.mkdir()
    (out / MANIFEST).write_text("../victim.txt\n", encoding="utf-8")
    build_site([str(FIXTURE_LIBRARY)], out)
    assert victim.read_text(encoding="utf-8") == "keep\n"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="svmdsl")
    commands = parser.add_subparsers(dest="command")
    command.add_parser(commands)
    return parser.parse_args(argv)


def test_command_builds_then_checks(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`svmdsl docs PATH -o DIR` writes the site; `--check` exits 0 when fresh and 1 with a summary when stale."""
    library = _copy_library(tmp_path)
    out = tmp_path / "site"
    args = _parse(["docs", str(library), "-o", str(out)])
    assert args.handler(args) == command.EXIT_OK
    written = capsys.readouterr().out
    assert "added" in written
    assert "2 failed" in written, "the summary says how many expectations failed (shown on the pages)"
    check = _parse(["docs", str(library), "-o", str(out), "--check"])
    assert check.handler(check) == command.EXIT_OK
    assert "up to date" in capsys.readouterr().out
    os.remove(out / "index.md")
    assert check.handler(check) == command.EXIT_STALE
    report = capsys.readouterr().out
    assert "is stale" in report
    assert "+ index.md" in report


def test_command_rejects_a_missing_path(tmp_path: Path) -> None:
    """A path that does not exist is the CLI's usage error (PathProblem), not a traceback from the docs."""
    args = _parse(["docs", str(tmp_path / "nowhere"), "-o", str(tmp_path / "site")])
    with pytest.raises(PathProblem, match="no such file or folder"):
        args.handler(args)


def test_command_rejects_an_output_that_is_a_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An output path that is a file: a one-line error, exit 2."""
    target = tmp_path / "site"
    target.write_text("", encoding="utf-8")
    args = _parse(["docs", str(FIXTURE_LIBRARY), "-o", str(target)])
    assert args.handler(args) == command.EXIT_USAGE
    assert "not a folder" in capsys.readouterr().err
