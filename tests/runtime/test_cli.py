"""The `svmdsl` command through the real console script (issue 4, item 2): exit codes, reports, gen, bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

FIXTURES = Path(__file__).parent / "fixtures"
SCHEMA = Path(__file__).resolve().parents[2] / "docs" / "report-schema.json"


def _script() -> str:
    beside = Path(sys.executable).parent / "svmdsl"
    return str(beside) if beside.exists() else shutil.which("svmdsl") or "svmdsl"


def svmdsl(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("SVMDSL_DEBUG", None)
    return subprocess.run(
        [_script(), *args], capture_output=True, text=True, cwd=cwd, env=env, stdin=subprocess.DEVNULL, check=False
    )


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """A small scenario library with two topics: `seed/held.svm` and `edge/fails.svm`."""
    for topic, name in (("seed", "held.svm"), ("edge", "fails.svm")):
        (tmp_path / "scenarios" / topic).mkdir(parents=True)
        shutil.copy(FIXTURES / name, tmp_path / "scenarios" / topic / name)
    return tmp_path


def assert_no_traceback(completed: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in completed.stdout + completed.stderr


def test_help_lists_every_command() -> None:
    completed = svmdsl("--help")
    assert completed.returncode == 0
    for command in ("run", "check", "gen", "fmt", "policies"):
        assert command in completed.stdout
    assert "exit status" in completed.stdout


def test_python_dash_m_is_the_same_command() -> None:
    completed = subprocess.run([sys.executable, "-m", "dsl", "policies"], capture_output=True, text=True, check=False)
    assert completed.returncode == 0
    assert "architectural" in completed.stdout


def test_policies_lists_each_policy_and_profile_once() -> None:
    """One line per policy (aliases included) and per hardware profile."""
    lines = svmdsl("policies").stdout.splitlines()
    names = [line.split()[1] for line in lines]
    for name in ("kvm-5.19", "kvm-6.0", "kvm-7.1", "kvm-mainline", "xen", "architectural", "amd-nrips", "qemu-tcg"):
        assert names.count(name) == 1


@pytest.mark.parametrize(
    "args",
    [(), ("run",), ("run", "--bogus", "x"), ("run", "--policy", "kvm-9.9", "x"), ("frobnicate",), ("gen", "x")],
)
def test_bad_usage_exits_2_with_a_message(args: tuple[str, ...]) -> None:
    completed = svmdsl(*args)
    assert completed.returncode == 2
    assert "error" in completed.stderr
    assert_no_traceback(completed)


def test_a_missing_path_exits_2_naming_it(tmp_path: Path) -> None:
    completed = svmdsl("run", str(tmp_path / "nowhere"))
    assert completed.returncode == 2
    assert "nowhere: no such file or folder" in completed.stderr
    assert_no_traceback(completed)


def test_a_file_that_is_not_a_scenario_exits_2(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    completed = svmdsl("check", str(tmp_path / "notes.txt"))
    assert completed.returncode == 2
    assert "not a scenario file" in completed.stderr


def test_run_exits_0_when_everything_held(library: Path) -> None:
    completed = svmdsl("run", "scenarios/seed", cwd=library)
    assert completed.returncode == 0, completed.stdout
    assert "held" in completed.stdout
    assert "failed" not in completed.stdout.split("\n", 1)[1].split("case(s)")[0]


def test_run_failure_points_at_the_svm_line_with_expected_actual_and_trace(library: Path) -> None:
    """A failure names file:line:col, shows the line with a caret, expected vs actual, and the engine trace."""
    completed = svmdsl("run", "scenarios/", cwd=library)
    assert completed.returncode == 1
    out = completed.stdout
    assert "scenarios/edge/fails.svm:11:3: expectation failed: expect delivered #BP with return rip=0x1000" in out
    assert "   11 |   expect delivered #BP with return rip=0x1000" in out
    assert "      |   ^" in out
    assert "expected: 0x1000" in out
    assert "actual:   0x1001" in out
    assert "trace:" in out
    assert "\x1b[" not in out  # NO_COLOR and not a terminal
    assert_no_traceback(completed)


def test_run_summary_counts_topics_policies_and_divergences(library: Path) -> None:
    """The closing summary: scenarios per topic, per policy, and divergences from architectural."""
    out = svmdsl("run", "scenarios/", cwd=library).stdout
    assert "scenarios per topic: edge 1, seed 1" in out
    assert "divergences from architectural" in out
    kvm_line = next(line for line in out.splitlines() if line.strip().startswith("kvm-5.19"))
    assert kvm_line.split()[-1] == "1"  # kvm-5.19 retries where architectural re-injects: what the guest sees differs


def test_run_policy_filter_runs_only_that_policy(library: Path) -> None:
    completed = svmdsl("run", "scenarios/seed", "--policy", "kvm-5.19", "--format", "json", cwd=library)
    report = json.loads(completed.stdout)
    assert {case["policy"] for case in report["cases"]} == {"kvm-5.19"}


def test_run_profile_override_is_recorded(library: Path) -> None:
    completed = svmdsl("run", "scenarios/seed", "--profile", "amd-no-nrips", "--format", "json", cwd=library)
    report = json.loads(completed.stdout)
    assert {case["profile"] for case in report["cases"]} == {"amd-no-nrips"}


def test_json_report_follows_the_documented_schema(library: Path) -> None:
    """`--format json` validates against docs/report-schema.json, for a run with failures and file errors."""
    shutil.copy(FIXTURES / "broken.svm", library / "scenarios" / "seed" / "broken.svm")
    completed = svmdsl("run", "scenarios/", "--format", "json", cwd=library)
    assert completed.returncode == 1
    report = json.loads(completed.stdout)
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    assert report["ok"] is False
    assert report["summary"]["file_errors"] == 1
    failed = [case for case in report["cases"] if case["verdict"] == "failed"]
    assert failed[0]["failures"][0]["line"] == 11
    assert "^" in failed[0]["failures"][0]["excerpt"]


def test_run_reports_a_broken_file_without_traceback(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "broken.svm", tmp_path / "broken.svm")
    completed = svmdsl("run", "broken.svm", cwd=tmp_path)
    assert completed.returncode == 1
    assert "broken.svm:6:18: error: unknown fault '#PG'" in completed.stdout
    assert_no_traceback(completed)


def test_check_exit_codes(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "held.svm", tmp_path / "held.svm")
    shutil.copy(FIXTURES / "broken.svm", tmp_path / "broken.svm")
    assert svmdsl("check", "held.svm", cwd=tmp_path).returncode == 0
    broken = svmdsl("check", ".", cwd=tmp_path)
    assert broken.returncode == 1
    assert "did you mean #PF?" in broken.stdout


def test_check_reports_a_syntax_error_without_hiding_other_scenarios_check_errors(tmp_path: Path) -> None:
    """Issue 3: one error per broken scenario, in file order, once each; a scenario that parsed is still checked."""
    (tmp_path / "mixed.svm").write_text(
        "@t\n"
        'scenario "a":\n'
        "  guest executes int3;\n"
        "  expect reinject with next_rip=\n"
        "\n"
        'scenario "b":\n'
        "  policies kvm-6.0\n"
        "  under kvm-5.19: expect retry\n"
    )
    completed = svmdsl("check", "mixed.svm", cwd=tmp_path)
    assert completed.returncode == 1
    syntax = "mixed.svm:3:23: error: unexpected end of the line"
    checker = "mixed.svm:8:9: error: expectation under kvm-5.19, which this scenario does not run"
    assert completed.stdout.count(syntax) == 1
    assert completed.stdout.count(checker) == 1
    assert completed.stdout.index(syntax) < completed.stdout.index(checker)
    assert "2 errors" in completed.stdout
    assert_no_traceback(completed)


def test_gen_then_check_is_clean_and_deterministic(library: Path) -> None:
    first = svmdsl("gen", "scenarios/", "-o", "generated/", cwd=library)
    assert first.returncode == 0, first.stderr
    names = sorted(p.name for p in (library / "generated").iterdir())
    assert names == ["conftest.py", "test_edge__fails.py", "test_seed__held.py"]
    before = {p.name: p.read_bytes() for p in (library / "generated").iterdir()}
    assert svmdsl("gen", "scenarios/", "-o", "generated/", cwd=library).returncode == 0
    assert {p.name: p.read_bytes() for p in (library / "generated").iterdir()} == before
    check = svmdsl("gen", "--check", "scenarios/", "-o", "generated/", cwd=library)
    assert check.returncode == 0
    assert b"/" + str(library).encode().lstrip(b"/") not in b"".join(before.values())  # no absolute paths


def test_gen_check_prints_a_diff_when_stale(library: Path) -> None:
    assert svmdsl("gen", "scenarios/", "-o", "generated/", cwd=library).returncode == 0
    held = library / "scenarios" / "seed" / "held.svm"
    held.write_text(held.read_text().replace("// Fixture", "\n// Fixture"))  # every line moves down by one
    check = svmdsl("gen", "--check", "scenarios/", "-o", "generated/", cwd=library)
    assert check.returncode == 1
    assert "--- a/generated/test_seed__held.py" in check.stdout
    assert "-        line=8," in check.stdout
    assert "+        line=9," in check.stdout


def test_gen_never_overwrites_a_hand_edited_file_without_force(library: Path) -> None:
    assert svmdsl("gen", "scenarios/", "-o", "generated/", cwd=library).returncode == 0
    module = library / "generated" / "test_seed__held.py"
    edited = module.read_text() + "\n# my note\n"
    module.write_text(edited)
    refused = svmdsl("gen", "scenarios/", "-o", "generated/", cwd=library)
    assert refused.returncode == 1
    assert "edited by hand" in refused.stderr
    assert module.read_text() == edited
    assert svmdsl("gen", "scenarios/", "-o", "generated/", "--force", cwd=library).returncode == 0
    assert "# my note" not in module.read_text()


def test_gen_with_broken_input_writes_nothing(tmp_path: Path) -> None:
    shutil.copy(FIXTURES / "broken.svm", tmp_path / "broken.svm")
    completed = svmdsl("gen", "broken.svm", "-o", "out", cwd=tmp_path)
    assert completed.returncode == 1
    assert not (tmp_path / "out").exists()
    assert_no_traceback(completed)


def test_generated_modules_for_hostile_titles_run_under_pytest(tmp_path: Path) -> None:
    """Quotes, triple quotes, Jinja syntax and non-ASCII in titles; tags `skip` and `def` must not change pytest."""
    (tmp_path / "scenarios").mkdir()
    shutil.copy(FIXTURES / "hostile.svm", tmp_path / "scenarios" / "hostile.svm")
    assert svmdsl("gen", "scenarios/", "-o", "generated/", cwd=tmp_path).returncode == 0
    completed = subprocess.run(
        [sys.executable, "-m", "pytest", "generated", "-q", "--strict-markers", "-p", "no:cacheprovider", "-rA"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        check=False,
    )
    assert "3 passed" in completed.stdout, completed.stdout
    assert "skipped" not in completed.stdout


def test_fmt_check_lists_files_that_would_change_and_fmt_rewrites_them(tmp_path: Path) -> None:
    """`svmdsl fmt --check` exits 1 naming the file; `svmdsl fmt` rewrites it; then `--check` is clean."""
    messy = tmp_path / "messy.svm"
    messy.write_text((FIXTURES / "held.svm").read_text().replace("  policies kvm-5.19", "      policies   kvm-5.19"))
    check = svmdsl("fmt", "--check", "messy.svm", cwd=tmp_path)
    assert check.returncode == 1
    assert "would reformat messy.svm" in check.stdout
    assert svmdsl("fmt", "messy.svm", cwd=tmp_path).returncode == 0
    assert svmdsl("fmt", "--check", "messy.svm", cwd=tmp_path).returncode == 0
    assert svmdsl("check", "messy.svm", cwd=tmp_path).returncode == 0


def test_fmt_on_a_file_that_does_not_parse_reports_it_and_leaves_it_alone(tmp_path: Path) -> None:
    broken = tmp_path / "broken.svm"
    before = 'scenario "no colon"\n  policies architectural\n'
    broken.write_text(before)
    completed = svmdsl("fmt", "broken.svm", cwd=tmp_path)
    assert completed.returncode == 1
    assert broken.read_text() == before
    assert "broken.svm:1:" in completed.stderr
    assert_no_traceback(completed)


def test_run_with_nothing_to_run_says_why_and_fails(library: Path, tmp_path: Path) -> None:
    """A run that runs nothing is not a success: an empty folder, or a policy no scenario names."""
    (tmp_path / "empty").mkdir()
    empty = svmdsl("run", str(tmp_path / "empty"))
    assert empty.returncode == 1
    assert "no scenarios found" in empty.stderr
    unnamed = svmdsl("run", "scenarios/", "--policy", "bhyve", cwd=library)
    assert unnamed.returncode == 1
    assert "runs under bhyve" in unnamed.stderr


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (("check",), 1),
        (("fmt",), 1),
        (("fmt", "--check"), 1),
        (("gen", "-o", "out"), 1),
        (("gen", "--check", "-o", "out"), 1),
        (("docs", "-o", "site"), 2),  # docs and the real-KVM backend report it as their other usage errors
        (("docs", "--check", "-o", "site"), 2),
        (("compare",), 2),
        (("run", "--backend", "qemu-kvm"), 2),
    ],
)
def test_every_command_given_a_folder_without_scenarios_says_so_fails_and_writes_nothing(
    tmp_path: Path, command: tuple[str, ...], status: int
) -> None:
    """A mistyped folder must not pass as a check, a formatting, a generation or a site that had nothing to do (in
    CI, `gen --check tests/` would otherwise pass forever), nor fetch a kernel to compare nothing."""
    (tmp_path / "empty").mkdir()
    completed = svmdsl(*command[:1], "empty", *command[1:], cwd=tmp_path)
    assert completed.returncode == status
    assert "no scenarios found under empty" in completed.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty"]
    assert_no_traceback(completed)


def test_gen_removes_the_modules_of_a_library_emptied_of_its_scenarios(library: Path) -> None:
    """The one case where a folder without scenarios is work for `gen`: the modules generated from it go."""
    assert svmdsl("gen", "scenarios/seed", "-o", "generated", cwd=library).returncode == 0
    assert (library / "generated" / "test_held.py").exists()
    (library / "scenarios" / "seed" / "held.svm").unlink()
    stale = svmdsl("gen", "--check", "scenarios/seed", "-o", "generated", cwd=library)
    assert stale.returncode == 1
    assert "stale" in stale.stderr
    removed = svmdsl("gen", "scenarios/seed", "-o", "generated", cwd=library)
    assert removed.returncode == 0
    assert "removed" in removed.stdout
    assert not (library / "generated" / "test_held.py").exists()


def test_pending_cases_are_reported_apart_but_still_fail_the_run(tmp_path: Path) -> None:
    """`@pending` marks a known gap: a failing case of it is listed as `pending`; the exit status stays 1."""
    pending = (FIXTURES / "fails.svm").read_text().replace("@seed", "@seed @pending")
    (tmp_path / "pending.svm").write_text(pending)
    completed = svmdsl("run", "pending.svm", cwd=tmp_path)
    assert completed.returncode == 1
    assert "pending (known gaps" in completed.stdout
    assert "0 failed, 0 error, 1 pending" in completed.stdout
    report = json.loads(svmdsl("run", "pending.svm", "--format", "json", cwd=tmp_path).stdout)
    jsonschema.validate(report, json.loads(SCHEMA.read_text()))
    assert report["ok"] is False
    assert report["cases"][0]["verdict"] == "failed"
    assert report["cases"][0]["pending"] is True


def test_generating_part_of_a_library_keeps_the_rest(library: Path) -> None:
    """`gen` on one folder neither removes the modules of other folders nor drops their markers."""
    assert svmdsl("gen", "scenarios/", "-o", "generated/", cwd=library).returncode == 0
    (library / "scenarios" / "seed" / "held.svm").rename(library / "scenarios" / "seed" / "kept.svm")
    partial = svmdsl("gen", "scenarios/seed", "-o", "generated/", cwd=library)
    assert partial.returncode == 0, partial.stderr
    names = sorted(p.name for p in (library / "generated").iterdir())
    assert names == ["conftest.py", "test_edge__fails.py", "test_kept.py"]  # held's module went with its file
    assert '"seed",' in (library / "generated" / "conftest.py").read_text()


def test_an_edit_that_changes_no_case_leaves_generated_modules_up_to_date(library: Path) -> None:
    """Changing an expectation or a comment (same titles, lines, policies, tags) needs no regeneration."""
    assert svmdsl("gen", "scenarios/", "-o", "generated/", cwd=library).returncode == 0
    held = library / "scenarios" / "seed" / "held.svm"
    held.write_text(held.read_text().replace("// Fixture for", "// A fixture for").replace("0x1001", "0x1002"))
    assert svmdsl("gen", "--check", "scenarios/", "-o", "generated/", cwd=library).returncode == 0
