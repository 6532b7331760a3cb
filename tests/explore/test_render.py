"""Counterexample text: generated from data without injecting syntax, and checked before it is written."""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.engine import run
from dsl.engine.vocab import PolicyName
from dsl.explore.counterexample import CounterexampleError, counterexamples, render, validate, write
from dsl.explore.findings import compare
from dsl.explore.render import quote
from dsl.explore.search import explore_exhaustive
from dsl.explore.space import Configuration, Space, parse_restriction
from dsl.runtime.cli import main as svmdsl
from dsl.syntax import parse_text


@pytest.mark.parametrize("title", ['a "quoted" title', "back\\slash", "two\nlines", '"; run\nscenario "x":'])
def test_a_quoted_title_parses_back_as_itself(title: str) -> None:
    svm = parse_text(f"scenario {quote(title)}:\n  policies kvm-6.0\n", "t.svm")
    (scenario,) = svm.scenarios
    assert scenario.title == " ".join(title.split())


def test_a_counterexample_whose_expectations_do_not_hold_is_never_written() -> None:
    compared = compare(Configuration(source="userspace-unbacked"), PolicyName.KVM_6_0, PolicyName.ARCHITECTURAL, run)
    text = render(compared, compared.divergences[0], PolicyName.ARCHITECTURAL)
    validate(text, "ok.svm", compared, PolicyName.ARCHITECTURAL)
    tampered = text.replace("expect final_rip == 0x1002", "expect final_rip == 0x1003")
    assert tampered != text
    with pytest.raises(CounterexampleError, match=r"does not hold under kvm-6\.0"):
        validate(tampered, "tampered.svm", compared, PolicyName.ARCHITECTURAL)


def test_a_counterexample_names_its_source_so_it_can_join_the_library() -> None:
    """Issue 7: 'ready to paste into scenarios/', where every scenario must name its source (issue 5)."""
    compared = compare(Configuration(source="userspace-unbacked"), PolicyName.KVM_6_0, PolicyName.ARCHITECTURAL, run)
    text = render(compared, compared.divergences[0], PolicyName.ARCHITECTURAL)
    (scenario,) = parse_text(text, "cex.svm").scenarios
    (source,) = scenario.sources
    assert source.startswith("svmdsl explore (source=userspace-unbacked); kvm-6.0: ")
    assert "K-6.0-5" in source  # the rules kvm-6.0's outcome rests on
    assert "; architectural: " in source


def test_counterexamples_of_a_space_run_as_written_under_svmdsl_run(tmp_path: Path) -> None:
    """The issue's acceptance: `svmdsl run` accepts the folder as is and every expectation holds."""
    space = parse_restriction("source=instruction,userspace,userspace-unbacked", Space.default())
    space = parse_restriction("protection=none", parse_restriction("mode=long64", space))
    found = explore_exhaustive(space, (PolicyName.KVM_5_19, PolicyName.KVM_7_1))
    paths = write(tmp_path, counterexamples(found, run, tmp_path))
    assert len(paths) == len(found.classes) > 0
    assert svmdsl(["run", "--no-trace", str(tmp_path)]) == 0
    assert svmdsl(["fmt", "--check", str(tmp_path)]) == 0  # written in the language's canonical form
    again = write(tmp_path, counterexamples(found, run, tmp_path))
    assert [p.read_text(encoding="utf-8") for p in again] == [p.read_text(encoding="utf-8") for p in paths]


def test_each_counterexample_states_how_the_policy_and_the_reference_differ(tmp_path: Path) -> None:
    """A class about RFLAGS shows the flag (EX-17: the committing skip clears the STI shadow under nrips=0)."""
    config = Configuration(nrips="0", vectoring="host", shadow="sti")
    compared = compare(config, PolicyName.KVM_6_0, PolicyName.ARCHITECTURAL, run)
    text = render(compared, compared.divergences[0], PolicyName.ARCHITECTURAL)
    assert "under kvm-6.0: expect interrupt_shadow == false" in text
    assert "under architectural: expect interrupt_shadow == true" in text


def test_a_class_no_longer_found_loses_its_file_but_other_files_stay(tmp_path: Path) -> None:
    """The folder always shows the current classes; files written by hand are never touched."""
    mine = tmp_path / "notes.svm"
    mine.write_text('scenario "by hand":\n  policies kvm-6.0\n', encoding="utf-8")
    space = parse_restriction("source=userspace-unbacked", parse_restriction("mode=long64", Space.default()))
    found = explore_exhaustive(space, (PolicyName.KVM_6_0,))
    (old,) = write(tmp_path, counterexamples(found, run, tmp_path)[:1])
    assert write(tmp_path, ()) == ()
    assert not old.exists()
    assert mine.exists()
