"""Direct collection of `.svm` files by the pytest plugin (issue 4, item 3), exercised with `pytester`."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

FIXTURES = Path(__file__).parent / "fixtures"

TWO_SCENARIOS = """\
// Two scenarios under architectural, with tags.
background:
  policies architectural
  paging shadow
  code at 0x1000: int3

@seed
scenario "INT3 cut short by a #PF":
  source "EX-01"
  guest executes int3
  vectoring hits #PF intercepted by L0
  run
  expect delivered #BP with return rip=0x1001

@nested-l1 @skip
scenario "INT3 delivered at once":
  source "EX-05"
  guest executes int3
  run
  expect delivery_count == 1
"""

INI = """\
[pytest]
svm_paths = scenarios
addopts = --strict-markers -p no:cacheprovider
"""


@pytest.fixture
def project(pytester: pytest.Pytester) -> pytest.Pytester:
    """A project with `svm_paths = scenarios` and one scenario file in it."""
    pytester.makefile(".ini", pytest=INI)
    (pytester.path / "scenarios").mkdir()
    (pytester.path / "scenarios" / "two.svm").write_text(TWO_SCENARIOS)
    return pytester


def test_one_item_per_scenario_and_policy_with_slug_node_ids(project: pytest.Pytester) -> None:
    result = project.runpytest("--collect-only", "-q")
    result.stdout.fnmatch_lines(
        [
            "scenarios/two.svm::int3_cut_short_by_a_pf[[]architectural[]]",
            "scenarios/two.svm::int3_delivered_at_once[[]architectural[]]",
            "*2 tests collected*",
        ]
    )


def test_outline_rows_are_items_of_their_own(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "hostile.svm").write_text((FIXTURES / "hostile.svm").read_text())
    result = project.runpytest("--collect-only", "-q", "scenarios/hostile.svm")
    result.stdout.fnmatch_lines(["*outline_at_at[[]architectural-row1[]]", "*outline_at_at[[]architectural-row2[]]"])


def test_held_scenarios_pass(project: pytest.Pytester) -> None:
    project.runpytest().assert_outcomes(passed=2)


def test_svm_files_outside_svm_paths_are_not_collected_unless_named(project: pytest.Pytester) -> None:
    """Fixture files elsewhere are left alone; naming a `.svm` file on the command line collects it."""
    (project.path / "elsewhere").mkdir()
    (project.path / "elsewhere" / "two.svm").write_text(TWO_SCENARIOS)
    project.runpytest("elsewhere").assert_outcomes()
    project.runpytest("elsewhere/two.svm").assert_outcomes(passed=2)


def test_dash_k_selects_by_scenario_name(project: pytest.Pytester) -> None:
    project.runpytest("-k", "cut_short").assert_outcomes(passed=1)
    project.runpytest("-k", "delivered and not cut").assert_outcomes(passed=1)


def test_tags_are_registered_markers(project: pytest.Pytester) -> None:
    """`-m` selects by tag under `--strict-markers`; a tag named like a pytest marker cannot skip the test."""
    project.runpytest("-m", "seed").assert_outcomes(passed=1)
    project.runpytest("-m", "nested_l1").assert_outcomes(passed=1)
    project.runpytest("-m", "tag_skip").assert_outcomes(passed=1)


def test_failure_shows_the_svm_line_caret_expected_actual_and_trace(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "fails.svm").write_text((FIXTURES / "fails.svm").read_text())
    result = project.runpytest("scenarios/fails.svm")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*INT3 with a wrong expected return address [[]architectural[]]*",
            "scenarios/fails.svm:11:3: expectation failed: expect delivered #BP with return rip=0x1000",
            "   11 |   expect delivered #BP with return rip=0x1000",
            "      |   ^*",
            "  expected: 0x1000",
            "  actual:   0x1001",
            "trace:",
        ]
    )
    assert "Traceback" not in result.stdout.str()
    assert "runtest" not in result.stdout.str()  # no framework internals in the report


def test_reportinfo_points_at_the_scenario_line(project: pytest.Pytester) -> None:
    items = project.getitems(project.path / "scenarios" / "two.svm")
    assert [item.location[1] + 1 for item in items] == [8, 16]  # pytest's line numbers are 0-based
    assert items[0].location[2] == "INT3 cut short by a #PF [architectural]"


def test_a_broken_file_is_a_clean_collection_error(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "broken.svm").write_text((FIXTURES / "broken.svm").read_text())
    result = project.runpytest()
    result.assert_outcomes(errors=1)  # pytest stops before running anything when collection fails
    result.stdout.fnmatch_lines(
        [
            "*ERROR collecting scenarios/broken.svm*",
            "scenarios/broken.svm:6:18: error: unknown fault '#PG'",
            "    6 |   vectoring hits #PG intercepted by L0",
            "  hint: did you mean #PF?",
        ]
    )
    assert "Traceback" not in result.stdout.str()


def test_junitxml_records_each_case_and_its_failure(project: pytest.Pytester) -> None:
    (project.path / "scenarios" / "fails.svm").write_text((FIXTURES / "fails.svm").read_text())
    project.runpytest("--junitxml=report.xml")
    root = ET.parse(project.path / "report.xml").getroot()
    cases = root.findall(".//testcase")
    assert len(cases) == 3
    failures = [case.find("failure") for case in cases if case.find("failure") is not None]
    assert len(failures) == 1
    failure = failures[0]
    assert failure is not None
    assert "scenarios/fails.svm:11:3" in (failure.text or "")


def test_works_under_xdist_with_two_workers(project: pytest.Pytester) -> None:
    """Items, failures and collection errors cross process boundaries (`-n 2`)."""
    (project.path / "scenarios" / "fails.svm").write_text((FIXTURES / "fails.svm").read_text())
    (project.path / "scenarios" / "broken.svm").write_text((FIXTURES / "broken.svm").read_text())
    result = project.runpytest_subprocess("-n", "2")
    result.assert_outcomes(passed=2, failed=1, errors=1)
    result.stdout.fnmatch_lines(["*scenarios/fails.svm:11:3: expectation failed*"])


#: Logs which xdist worker lowers which file, in order (conftest.py of the project below, loaded by each worker).
LOWERING_LOG = """
import os
from pathlib import Path

import dsl.compiler.lower as lowering

_lower_file = lowering.lower_file


def _logged(text, file):
    with open(Path(__file__).parent / "lowered.log", "a") as log:
        log.write(f"{os.environ['PYTEST_XDIST_WORKER']} {Path(file).name}\\n")
    return _lower_file(text, file)


lowering.lower_file = _logged
"""


def test_xdist_workers_first_lower_their_share_of_the_files(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a cold cache, worker k of n first lowers every n-th file from the k-th into the disk cache, then collects
    them all, reading the others' shares back when they are there, instead of every worker parsing everything.

    When each file is lowered depends on how fast the workers start, but not the order: a worker lowers what is
    left of its share before any other file (one worker collecting in file order would lower a, b, c…).
    """
    files = ("a.svm", "b.svm", "c.svm", "d.svm", "e.svm", "f.svm")
    for name in files:
        (project.path / "scenarios" / name).write_text(TWO_SCENARIOS)
    (project.path / "scenarios" / "two.svm").unlink()
    project.makeconftest(LOWERING_LOG)
    monkeypatch.setenv("SVMDSL_CACHE_DIR", str(project.path / "svm-cache"))
    project.runpytest_subprocess("-n", "2").assert_outcomes(passed=12)
    lowered = [line.split() for line in (project.path / "lowered.log").read_text().splitlines()]
    assert {name for _, name in lowered} == set(files)
    for index, worker in enumerate(("gw0", "gw1")):
        share = files[index::2]
        order = [name in share for who, name in lowered if who == worker]
        assert order == sorted(order, reverse=True), f"{worker} lowered another worker's file before its own"


def test_pending_scenarios_are_xfail_not_strict(project: pytest.Pytester) -> None:
    """`@pending` marks a known gap: its failing cases are xfail, its holding ones xpass (as in generated modules)."""
    pending = (FIXTURES / "fails.svm").read_text().replace("@seed", "@seed @pending")
    (project.path / "scenarios" / "pending.svm").write_text(pending)
    project.runpytest("scenarios/pending.svm").assert_outcomes(xfailed=1)


def test_collection_keeps_lowered_files_in_svmdsl_cache_dir_for_the_next_run(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second run (or another xdist worker) reads the lowered file back instead of parsing it again."""
    import dsl.compiler.lower as lowering
    from dsl.runtime.loader import clear_cache

    def unlowerable(text: str, file: str) -> None:
        raise AssertionError("parsed again although the cache holds this file")

    cache = project.path / "svm-cache"
    monkeypatch.setenv("SVMDSL_CACHE_DIR", str(cache))
    clear_cache()
    project.runpytest().assert_outcomes(passed=2)
    assert len(list(cache.rglob("*.lowered"))) == 1
    clear_cache()
    monkeypatch.setattr(lowering, "lower_file", unlowerable)
    project.runpytest().assert_outcomes(passed=2)
    clear_cache()


def _order(items: str) -> str:
    """A conftest that runs the cases of `a.svm` (`a[0]`, `a[1]`) and `b.svm` (`b[…]`) as `items` lists them."""
    return f"""
def pytest_collection_modifyitems(items):
    by_file = {{}}
    for item in items:
        by_file.setdefault(item.path.name, []).append(item)
    a, b = by_file["a.svm"], by_file["b.svm"]
    items[:] = [{items}]
"""


#: Runs one file's first case, then the other file's, then the first file's second: pytest tears `a.svm` down
#: after its first item and sets it up again for its second.
INTERLEAVE = _order("a[0], b[0], a[1], b[1]")
#: Runs `a.svm`'s two cases, then `b.svm`'s first, then `a.svm`'s first again (as a rerun plugin does): `a.svm` has
#: let go of its cases after its last item, and its set-up reads the file again.
RERUN = _order("a[0], a[1], b[0], a[0]")


def _two_files(project: pytest.Pytester) -> None:
    for name in ("a.svm", "b.svm"):
        (project.path / "scenarios" / name).write_text(TWO_SCENARIOS)
    (project.path / "scenarios" / "two.svm").unlink()


def test_an_item_that_runs_again_after_its_file_let_go_reads_the_file_again(project: pytest.Pytester) -> None:
    """A file lets go of its cases after its last item; an item that runs again later (a rerun) still finds its
    case."""
    _two_files(project)
    project.makeconftest(RERUN)
    project.runpytest("-v").assert_outcomes(passed=4)


def test_a_shuffled_order_reads_each_file_once_and_lets_go_of_it_after_its_last_item(
    project: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest tears a file down whenever the next item is another file's (pytest-randomly's orders do it almost at
    every item): the file keeps its cases while any of its items is still to run, then lets go of them."""
    import dsl.compiler.lower as lowering
    from dsl.runtime.loader import clear_cache

    lowered: list[str] = []
    lower_file = lowering.lower_file

    def counting(text: str, file: str) -> object:
        lowered.append(Path(file).name)
        return lower_file(text, file)

    _two_files(project)
    project.makeconftest(
        INTERLEAVE
        + """
svm_files = []

def pytest_collectreport(report):
    svm_files.extend(node for node in report.result if type(node).__name__ == "SvmFile")

def pytest_runtest_setup(item):
    held = [node.path.name for node in svm_files if node.holding]
    print(f"before {item.path.name}::{item.name}: holding {' '.join(held)}.")
"""
    )
    monkeypatch.setenv("SVMDSL_CACHE_DIR", "")
    monkeypatch.setattr(lowering, "lower_file", counting)
    clear_cache()
    result = project.runpytest("-s")
    clear_cache()
    result.assert_outcomes(passed=4)
    assert sorted(lowered) == ["a.svm", "b.svm"]
    result.stdout.fnmatch_lines(
        [
            "*before a.svm::int3_cut_short_by_a_pf*: holding a.svm b.svm.",
            "*before b.svm::int3_cut_short_by_a_pf*: holding a.svm b.svm.",
            "*before a.svm::int3_delivered_at_once*: holding a.svm b.svm.",
            "*before b.svm::int3_delivered_at_once*: holding b.svm.",
        ]
    )


def test_a_file_changed_before_its_items_come_back_is_a_clean_error(project: pytest.Pytester) -> None:
    """Read again after it was edited, the file no longer holds the collected cases: the item says so, without a
    traceback, instead of running something else under the collected name."""
    _two_files(project)
    project.makeconftest(
        RERUN
        + """
def pytest_runtest_call(item):
    if item.path.name == "b.svm":
        edited = item.path.with_name("a.svm")
        edited.write_text(edited.read_text().replace("return rip=0x1001", "return rip=0x1002"))
"""
    )
    result = project.runpytest()
    result.assert_outcomes(passed=3, errors=1)
    result.stdout.fnmatch_lines(["*scenarios/a.svm changed after its cases were collected: run pytest again*"])
    assert "dsl/runtime" not in result.stdout.str()  # no frame of the plugin (its long traceback has no "Traceback")


def test_a_file_none_of_whose_items_was_selected_lets_go_of_its_cases_after_collection(
    project: pytest.Pytester,
) -> None:
    """pytest never tears down a file none of whose items runs: it lets go of its cases when collection ends,
    instead of holding them to the end of the session."""
    _two_files(project)
    project.makeconftest(
        """
import pytest

svm_files = []

def pytest_collectreport(report):
    svm_files.extend(node for node in report.result if type(node).__name__ == "SvmFile")

@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session):
    files = {item.parent for item in session.items}
    print("selected files:", sorted(f.path.name for f in files))
    for node in svm_files:
        print(f"{node.path.name} holding={node.holding}")
"""
    )
    result = project.runpytest("-s", "-k", "a.svm")
    result.assert_outcomes(passed=2, deselected=2)
    result.stdout.fnmatch_lines(["selected files: ['a.svm']", "a.svm holding=True", "b.svm holding=False"])


@pytest.mark.parametrize("workers", [(), ("-n", "2")], ids=["one process", "xdist"])
def test_a_session_without_svm_files_does_not_load_the_compiler_or_the_engine(
    pytester: pytest.Pytester, workers: tuple[str, ...]
) -> None:
    """The plugin is loaded wherever svmdsl is installed: plain Python test runs must not pay for the engine, not
    even in an xdist worker (which looks for its share of scenario files)."""
    pytester.makepyfile(
        test_plain="""
        import sys

        def test_nothing_heavy_was_imported():
            heavy = ("dsl.engine", "dsl.compiler", "lark", "attr")
            assert not [name for name in sys.modules if name.startswith(heavy)]
        """
    )
    pytester.runpytest_subprocess("-p", "svmdsl", *workers).assert_outcomes(passed=1)
