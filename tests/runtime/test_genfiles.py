"""Files written by `svmdsl gen` (issue 4, item 4): headers, hand-edit detection, staleness, atomic writes."""

from __future__ import annotations

from pathlib import Path

from dsl.runtime.genfiles import FILE_MODE, Change, apply, compose, plan, read_header, unified_diff, write_atomically

BODY = '"""A generated module."""\n\nX = 1\n'


def test_header_records_inputs_and_body_hashes() -> None:
    """The header names the inputs' hash and the body's, and a fresh file's body matches."""
    header = read_header(compose(BODY, "ab" * 32))
    assert header is not None
    assert header.inputs_digest == "ab" * 32
    assert header.body_intact


def test_an_edited_body_no_longer_matches_its_header() -> None:
    """Editing a generated file by hand is detectable from the file alone."""
    edited = compose(BODY, "ab" * 32).replace("X = 1", "X = 2")
    header = read_header(edited)
    assert header is not None
    assert not header.body_intact


def test_a_file_without_our_header_is_not_ours() -> None:
    assert read_header(BODY) is None
    assert read_header("") is None


def test_plan_creates_updates_and_leaves_unchanged(tmp_path: Path) -> None:
    """Only files whose content changes are written; equal files are left alone."""
    (tmp_path / "test_same.py").write_text(compose(BODY, "0" * 64))
    (tmp_path / "test_old.py").write_text(compose(BODY, "0" * 64))
    wanted = {
        "test_same.py": compose(BODY, "0" * 64),
        "test_old.py": compose(BODY + "Y = 2\n", "1" * 64),
        "test_new.py": compose(BODY, "2" * 64),
    }
    changes = {c.path.name: c.change for c in plan(tmp_path, wanted).changes}
    assert changes == {"test_same.py": Change.UNCHANGED, "test_old.py": Change.UPDATE, "test_new.py": Change.CREATE}


def test_generated_files_no_scenario_produces_are_removed_but_foreign_files_stay(tmp_path: Path) -> None:
    """A module whose .svm file is gone is removed; a hand-written file without our header is never touched."""
    (tmp_path / "test_gone.py").write_text(compose(BODY, "0" * 64))
    (tmp_path / "test_mine.py").write_text("def test_mine() -> None:\n    pass\n")
    gen_plan = plan(tmp_path, {})
    assert [(c.path.name, c.change) for c in gen_plan.pending] == [("test_gone.py", Change.REMOVE)]
    apply(gen_plan)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test_mine.py"]


def test_hand_edited_files_are_flagged(tmp_path: Path) -> None:
    """A generated file edited by hand, or a same-named file we did not write, counts as hand-edited."""
    (tmp_path / "test_a.py").write_text(compose(BODY, "0" * 64).replace("X = 1", "X = 3"))
    (tmp_path / "test_b.py").write_text(BODY)
    gen_plan = plan(tmp_path, {"test_a.py": compose(BODY, "0" * 64), "test_b.py": compose(BODY, "0" * 64)})
    assert sorted(c.path.name for c in gen_plan.hand_edited) == ["test_a.py", "test_b.py"]


def test_apply_writes_exact_content_with_unix_newlines(tmp_path: Path) -> None:
    out = tmp_path / "generated"
    content = compose(BODY, "0" * 64)
    apply(plan(out, {"test_x.py": content}))
    assert (out / "test_x.py").read_bytes() == content.encode()
    assert not [p for p in out.iterdir() if p.name.endswith(".tmp")]


def test_written_files_are_readable_by_anyone_and_their_folders_created(tmp_path: Path) -> None:
    """mkstemp alone leaves the file owner-only: `svmdsl gen`, `fmt` and `docs` all write through here."""
    target = tmp_path / "new" / "folder" / "page.html"
    write_atomically(target, "text\n")
    assert target.read_text() == "text\n"
    assert target.stat().st_mode & 0o777 == FILE_MODE


def test_diff_names_the_file_relative_to_the_output_folder(tmp_path: Path) -> None:
    (tmp_path / "test_x.py").write_text(compose(BODY, "0" * 64))
    change = plan(tmp_path, {"test_x.py": compose(BODY + "Z = 0\n", "0" * 64)}).pending[0]
    diff = unified_diff(change, "generated/")
    assert diff.startswith("--- a/generated/test_x.py\n+++ b/generated/test_x.py\n")
    assert "+Z = 0" in diff


def test_rewriting_a_file_keeps_its_permission_bits(tmp_path: Path) -> None:
    """`svmdsl fmt` rewrites a user's .svm in place: an executable or group-writable file stays so."""
    target = tmp_path / "scenario.svm"
    target.write_text("old\n")
    target.chmod(0o664)
    write_atomically(target, "new\n")
    assert target.read_text() == "new\n"
    assert target.stat().st_mode & 0o777 == 0o664
