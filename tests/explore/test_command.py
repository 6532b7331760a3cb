"""`svmdsl explore` on the command line: usage errors, the table, the counterexample folder."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest

from dsl.explore.command import add_parser
from dsl.explore.table import TABLE_BEGIN, TABLE_END
from dsl.runtime.cli import main as svmdsl

SMALL = ["--axis", "source=instruction", "--axis", "mode=long64", "--axis", "protection=none", "--jobs", "1"]


def explore(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="svmdsl")
    add_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["explore", *argv])
    result: int = args.handler(args)
    return result


def test_an_unknown_axis_value_is_a_usage_error_naming_the_axis(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stopped:
        explore(["--axis", "vectoring=sometimes"])
    assert stopped.value.code == 2
    assert "unknown value sometimes for vectoring; expected one or more of none, host" in capsys.readouterr().err


def test_comparing_a_policy_with_itself_only_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert explore(["--policy", "kvm-6.0", "--against", "kvm-6.0"]) == 2
    assert "no policy to compare" in capsys.readouterr().err


def test_the_markdown_table_is_printed_between_markers(capsys: pytest.CaptureFixture[str]) -> None:
    assert explore([*SMALL, "--markdown", "--policy", "kvm-5.19"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(TABLE_BEGIN)
    assert out.rstrip().endswith(TABLE_END)
    assert "| kvm-5.19 | lost event |" in out


def test_output_writes_one_counterexample_per_class(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert explore([*SMALL, "--policy", "kvm-5.19", "--markdown", "-o", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    named = [line.split("|")[5].strip() for line in captured.out.splitlines() if line.startswith("| kvm-5.19 |")]
    assert named
    assert sorted(p.name for p in tmp_path.glob("*.svm")) == sorted(named)
    assert f"counterexample(s) in {tmp_path}" in captured.err


def test_policies_can_be_compared_with_each_other(capsys: pytest.CaptureFixture[str]) -> None:
    """--against: what kvm-6.19 changed relative to kvm-6.6 (K-6.19-3: the opcode check)."""
    assert explore([*SMALL, "--policy", "kvm-6.19", "--against", "kvm-6.6", "--axis", "source=userspace-unbacked"]) == 0
    assert "compared with kvm-6.6" in capsys.readouterr().out


def test_svmdsl_runs_explore_through_its_own_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert svmdsl(["explore", *SMALL, "--policy", "kvm-6.0", "--axis", "source=userspace-unbacked"]) == 0
    assert "kvm-6.0  wrong return address" in capsys.readouterr().out


def test_random_mode_without_hypothesis_says_how_to_get_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "hypothesis", None)  # an import of it now fails as if it were not installed
    assert explore([*SMALL, "--random", "5"]) == 2
    assert "needs Hypothesis: pip install 'svm-dsl[explore]'" in capsys.readouterr().err


def test_update_rewrites_the_table_between_the_markers_only(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    page = tmp_path / "page.md"
    page.write_text(f"# Title\n\n{TABLE_BEGIN}\nold table\n{TABLE_END}\n\nAfter.\n", encoding="utf-8")
    assert explore([*SMALL, "--policy", "kvm-5.19", "--update", str(page)]) == 0
    text = page.read_text(encoding="utf-8")
    assert text.startswith(f"# Title\n\n{TABLE_BEGIN}\n| policy |")
    assert text.endswith(f"{TABLE_END}\n\nAfter.\n")
    assert "old table" not in text
    capsys.readouterr()


def test_update_of_a_file_without_markers_is_an_error_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page = tmp_path / "plain.md"
    page.write_text("no table here\n", encoding="utf-8")
    assert explore([*SMALL, "--policy", "kvm-5.19", "--update", str(page)]) == 2
    assert f"{page}: no table between" in capsys.readouterr().err
    assert page.read_text(encoding="utf-8") == "no table here\n"


def test_a_selection_with_nothing_to_explore_says_which_rule_empties_it(capsys: pytest.CaptureFixture[str]) -> None:
    """H-23: INTO does not exist in 64-bit mode, so `into` with only `long64` leaves nothing."""
    assert explore(["--axis", "instruction=into", "--axis", "mode=long64"]) == 2
    assert "no configuration to explore (INTO is invalid in 64-bit mode" in capsys.readouterr().err
