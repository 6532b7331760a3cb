"""The runtime API (issue 4, item 2): `run_case` verdicts, explanations, caching, terminal helpers."""

from __future__ import annotations

import io
import os
import pickle
import shutil
from pathlib import Path

import attrs
import pytest

import dsl
from dsl.runtime import session
from dsl.runtime.loader import clear_cache, load
from dsl.runtime.pytest_items import SvmCaseFailed
from dsl.runtime.runner import run_case
from dsl.runtime.session import run_paths
from dsl.runtime.term import Colour, Painter, Progress, wants_colour
from dsl.runtime.verdict import Verdict

FIXTURES = Path(__file__).parent / "fixtures"


def test_a_case_whose_expectations_hold_is_held() -> None:
    """EX-01 under architectural: #BP delivered once with return address 0x1001."""
    result = run_case(FIXTURES / "held.svm", "INT3 whose delivery hits an intercepted #PF", "architectural")
    assert result.verdict is Verdict.HELD, result.explain()
    assert result.checks == 3
    assert result.explain() == ""
    assert result.trace  # the engine's trace rides along for reports and docs


def test_a_failed_expectation_carries_location_text_expected_actual_and_trace() -> None:
    result = run_case(FIXTURES / "fails.svm", "INT3 with a wrong expected return address", "architectural")
    assert result.verdict is Verdict.FAILED
    mismatch = result.mismatches[0]
    assert (mismatch.line, mismatch.column) == (11, 3)
    assert mismatch.expectation == "expect delivered #BP with return rip=0x1000"
    assert (mismatch.expected, mismatch.actual) == ("0x1000", "0x1001")
    assert "   11 |   expect delivered #BP with return rip=0x1000\n      |   ^" in mismatch.excerpt
    explained = result.explain()
    assert "fails.svm:11:3: expectation failed: expect delivered #BP with return rip=0x1000" in explained
    assert "trace:" in explained


def test_policy_aliases_name_the_same_case() -> None:
    """`kvm-mainline` is kvm-7.1 (spec README § Policy names)."""
    text = (FIXTURES / "fails.svm").read_text().replace("policies architectural", "policies kvm-mainline")
    assert "kvm-mainline" in text


def test_a_file_that_does_not_parse_gives_an_error_verdict_not_an_exception() -> None:
    result = run_case(FIXTURES / "broken.svm", "broken", "architectural")
    assert result.verdict is Verdict.ERROR
    assert "unknown fault '#PG'" in (result.error or "")


def test_unknown_scenario_or_policy_says_what_exists() -> None:
    near = run_case(FIXTURES / "held.svm", "INT3 whose delivery hits an intercepted #PG", "architectural")
    assert near.verdict is Verdict.ERROR
    assert "did you mean 'INT3 whose delivery hits an intercepted #PF'?" in (near.error or "")
    policy = run_case(FIXTURES / "held.svm", "INT3 whose delivery hits an intercepted #PF", "xen")
    assert "its policies: architectural, kvm-5.19" in (policy.error or "")


def test_an_unknown_profile_is_an_error_verdict() -> None:
    result = run_case(FIXTURES / "held.svm", "INT3 whose delivery hits an intercepted #PF", "kvm-5.19", profile="z80")
    assert result.verdict is Verdict.ERROR
    assert "unknown hardware profile 'z80'" in (result.error or "")


def test_a_profile_override_runs_the_case_on_other_hardware() -> None:
    """H-6: without NRIPS the CPU pushes RIP; the case still runs and reports under the override."""
    result = run_case(
        FIXTURES / "held.svm", "INT3 whose delivery hits an intercepted #PF", "kvm-5.19", profile="amd-no-nrips"
    )
    assert result.verdict is not Verdict.ERROR, result.explain()
    assert result.result is not None


def test_results_and_failures_pickle_for_xdist() -> None:
    result = run_case(FIXTURES / "fails.svm", "INT3 with a wrong expected return address", "architectural")
    assert pickle.loads(pickle.dumps(result)) == result
    failure = pickle.loads(pickle.dumps(SvmCaseFailed(result)))
    assert failure.result == result


def test_each_file_is_loaded_once_and_again_after_an_edit(tmp_path: Path) -> None:
    target = tmp_path / "held.svm"
    shutil.copy(FIXTURES / "held.svm", target)
    first = load(target)
    assert load(target) is first
    target.write_text(target.read_text().replace("return rip=0x1001", "return rip=0x1002"))
    os.utime(target, ns=(first.path.stat().st_atime_ns, first.path.stat().st_mtime_ns + 1_000_000))
    second = load(target)
    assert second is not first
    assert second.digest != first.digest
    clear_cache()


def test_run_paths_marks_divergences_from_architectural(tmp_path: Path) -> None:
    """kvm-5.19 retries where architectural re-injects (EX-01): the guest sees a different outcome."""
    shutil.copy(FIXTURES / "held.svm", tmp_path / "held.svm")
    report = run_paths((str(tmp_path),))
    diverges = {e.result.key.policy: e.diverges for e in report.entries}
    assert diverges == {"kvm-5.19": True, "architectural": None}
    assert report.per_policy()["kvm-5.19"].divergences == 1


def test_jobs_zero_starts_workers_only_for_a_large_library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`svmdsl run`'s default: a small library runs in this process (its entries keep the engine's Result); one of
    POOL_MIN_BYTES or more runs in one worker per core (results stay in the workers); verdicts are the same."""
    for name in ("held.svm", "fails.svm"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    monkeypatch.setattr(session, "available_cores", lambda: 2)
    here = run_paths((str(tmp_path),), jobs=0)
    assert all(entry.result.result is not None for entry in here.entries)
    monkeypatch.setattr(session, "POOL_MIN_BYTES", 1)
    pooled = run_paths((str(tmp_path),), jobs=0)
    assert all(entry.result.result is None for entry in pooled.entries)
    assert [e.result.verdict for e in pooled.entries] == [e.result.verdict for e in here.entries]
    assert Verdict.FAILED in {e.result.verdict for e in here.entries}


def test_the_package_exports_the_runtime_lazily() -> None:
    assert dsl.run_case is run_case
    assert dsl.Verdict is Verdict
    with pytest.raises(AttributeError):
        _ = dsl.nothing_here  # type: ignore[attr-defined]


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal_and_never_with_no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert wants_colour(_Terminal())
    assert not wants_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not wants_colour(_Terminal())
    assert Painter(enabled=False)("held", Colour.GREEN) == "held"
    assert Painter(enabled=True)("held", Colour.GREEN) == "\x1b[32mheld\x1b[0m"


STEPS = 250


def test_progress_is_drawn_only_on_a_terminal() -> None:
    quiet = io.StringIO()
    progress = Progress(quiet, total=STEPS, label="run")
    for _ in range(STEPS):
        progress.advance()
    progress.finish()
    assert quiet.getvalue() == ""
    shown = _Terminal()
    progress = Progress(shown, total=STEPS, label="run")
    for _ in range(STEPS):
        progress.advance()
    assert f"run [{STEPS}/{STEPS}]" in shown.getvalue()


def test_a_defect_while_lowering_costs_one_file_not_the_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An unexpected exception in the pipeline becomes that file's error (no traceback unless SVMDSL_DEBUG)."""
    import dsl.compiler.lower as lowering

    def broken(text: str, file: str) -> None:
        raise KeyError("oops")

    monkeypatch.delenv("SVMDSL_DEBUG", raising=False)
    monkeypatch.setattr(lowering, "lower_file", broken)
    shutil.copy(FIXTURES / "held.svm", tmp_path / "held.svm")
    loaded = load(tmp_path / "held.svm")
    assert loaded.error is not None
    assert "internal error while reading this file: KeyError" in loaded.error.render()
    clear_cache()


def test_a_reserved_event_type_from_l1_fails_the_vmrun_end_to_end(tmp_path: Path) -> None:
    """H-8, K-7.1-6: L1 injects a valid event of reserved type 5; the nested VMRUN fails with VMEXIT_INVALID.

    kvm-7.1 refuses it itself and L1 sees exit code -1 in vmcb12; the CPU refuses it (H-8) either way.
    """
    scenario = tmp_path / "reserved.svm"
    scenario.write_text(
        'scenario "L1 injects a reserved type":\n'
        '  source "H-8; K-7.1-6"\n'
        "  policies kvm-7.1, architectural\n"
        "  l1 with nrips\n"
        "  rip 0x5000\n"
        "  code at 0x5000: nop\n"
        "  inject event 0x80000503 from L1 with rip=0x5000\n"
        "  run\n"
        "  expect vmexit invalid\n"
        "  expect delivery_count == 0\n"
        "  under kvm-7.1: expect vmcb12_exit_code == -1\n"
    )
    for policy in ("kvm-7.1", "architectural"):
        result = run_case(scenario, "L1 injects a reserved type", policy)
        assert result.verdict is Verdict.HELD, result.explain()
        assert result.outcome == "vmexit_invalid"


def test_the_trace_is_rendered_from_the_result_only_when_asked_for_and_can_be_left_out() -> None:
    """Held cases never show their trace, so it is drawn from the engine's Result lazily; reports may drop it."""
    result = run_case(FIXTURES / "held.svm", "INT3 whose delivery hits an intercepted #PF", "architectural")
    assert result.rendered_trace is None
    assert result.result is not None
    assert len(result.trace) == len(result.result.trace)
    assert result.trace[0].startswith("  1. ")
    assert attrs.evolve(result, trace=()).trace == ()


@pytest.mark.parametrize("policy", ["kvm-6.0", "kvm-mainline"])
def test_the_mailing_list_sentence_holds_as_written(policy: str) -> None:
    """EX-03/EX-06: `guest executes INTO; vectoring hits #PF intercepted; expect reinject with next_rip=0x1001`.

    With no re-entry step the story plays out before the expectations are read, so the requeued #OF is
    re-injected (not read as lost while it waits in KVM's queue).
    """
    title = "INTO whose delivery hits an intercepted #PF, in one line"
    result = run_case(FIXTURES / "one_liner.svm", title, policy)
    assert result.verdict is Verdict.HELD, result.explain()
