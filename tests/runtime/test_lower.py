"""Lowering (issue 4, item 1): checked scenarios become engine Programs and expectation checks, per policy and row."""

from __future__ import annotations

import pickle
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from dsl.compiler.lower import Comparison, Probe, lower_file, lower_svm
from dsl.engine import program as engine
from dsl.engine.vocab import (
    CpuMode,
    EventType,
    ExitCode,
    FaultKind,
    InjectionSource,
    Level,
    Observable,
    Outcome,
    PageTable,
    PagingMode,
    Pick,
    PolicyName,
    Vector,
)
from dsl.errors import SvmError
from dsl.syntax import vocabulary
from dsl.syntax.parse import parse_text

EX_01 = """\
background:
  profile amd-nrips
  paging shadow
  rip 0x1000

@seed
scenario "EX-01":
  source "EX-01"
  policies kvm-5.19, kvm-6.0, architectural
  code at 0x1000: int3
  guest executes int3
  vectoring hits #PF intercepted by L0
  run
  expect exit_int_info == 0x80000303
  expect delivered #BP with return rip=0x1001
  under kvm-5.19: expect retry
  under kvm-6.0, architectural: expect reinject with next_rip=0x1001
"""


def test_one_case_per_policy_with_the_scenarios_program() -> None:
    """EX-01: set-up, steps, profile and policy reach the engine as a Program; nothing about syntax does."""
    lowered = lower_file(EX_01, "ex01.svm")
    cases = lowered.cases
    assert [c.policy for c in cases] == [PolicyName.KVM_5_19, PolicyName.KVM_6_0, PolicyName.ARCHITECTURAL]
    program = cases[1].program
    assert program.policy is PolicyName.KVM_6_0
    assert program.options.paging is PagingMode.SHADOW
    assert program.setup.rip == 0x1000
    assert program.setup.code == (engine.CodeBytes(0x1000, b"\xcc"),)
    # The fault is armed before the guest executes: the engine delivers the #BP while executing the INT3.
    assert program.steps == (
        engine.VectoringFault(fault=FaultKind.PF, handled_by=Level.L0),
        engine.Execute(),
        engine.Run(),
    )
    assert cases[0].tags == ("seed",)
    assert cases[0].loc.line == 7  # the `scenario` line, not the tag line


def test_under_blocks_apply_only_to_their_policies() -> None:
    """`under kvm-5.19: expect retry` is checked under kvm-5.19 only; plain expectations under every policy."""
    by_policy = {c.policy: c.checks for c in lower_file(EX_01, "ex01.svm").cases}
    outcomes = {p: [c.expected for c in checks if c.target is Observable.OUTCOME] for p, checks in by_policy.items()}
    assert outcomes[PolicyName.KVM_5_19] == [Outcome.RETRY]
    assert outcomes[PolicyName.KVM_6_0] == [Outcome.REINJECT]
    retry = next(c for c in by_policy[PolicyName.KVM_5_19] if c.target is Observable.OUTCOME)
    assert retry.policies == (PolicyName.KVM_5_19,)  # each check knows the policies it was written for
    assert next(c for c in by_policy[PolicyName.KVM_5_19] if c.target is Observable.EXIT_INT_INFO).policies == ()
    assert all(any(c.target is Observable.EXIT_INT_INFO for c in checks) for checks in by_policy.values())


def test_short_forms_become_several_checks_at_the_same_line() -> None:
    """`expect delivered #BP with return rip=0x1001` checks that #BP was delivered and where it returned."""
    checks = lower_file(EX_01, "ex01.svm").cases[0].checks
    delivered = [c for c in checks if isinstance(c.target, Probe)]
    assert [(c.target, c.expected, c.vector, c.event_type) for c in delivered] == [
        (Probe.DELIVERED, True, Vector.BP, EventType.EXCEPTION),
        (Probe.RETURN_RIP, 0x1001, Vector.BP, EventType.EXCEPTION),
    ]
    assert {c.loc.line for c in delivered} == {15}
    assert delivered[0].text == "expect delivered #BP with return rip=0x1001"


def test_raw_checks_keep_comparison_pick_and_typed_values() -> None:
    text = """\
scenario "raw":
  source "test"
  policies kvm-6.0
  guest executes
  run
  expect exit_code[last] != hlt; expect delivered == #BP; expect outcome == reinject
  expect tracepoints contains "kvm_inj_exception"
"""
    checks = lower_file(text, "raw.svm").cases[0].checks
    assert [(c.target, c.comparison, c.expected, c.pick) for c in checks] == [
        (Observable.EXIT_CODE, Comparison.NE, ExitCode.HLT, Pick.LAST),
        (Observable.DELIVERED, Comparison.EQ, Vector.BP, Pick.FOCUS),
        (Observable.OUTCOME, Comparison.EQ, Outcome.REINJECT, Pick.FOCUS),
        (Observable.TRACEPOINTS, Comparison.CONTAINS, "kvm_inj_exception", Pick.FOCUS),
    ]
    assert [c.text for c in checks[:2]] == ["expect exit_code[last] != hlt", "expect delivered == #BP"]


WORDS = """\
scenario "words":
  source "test"
  policies kvm-6.0
  guest executes
  run
  expect {observable} == {word}
"""


def _lowered_value(observable: str, word: str) -> object:
    (check,) = lower_file(WORDS.format(observable=observable, word=word), "words.svm").cases[0].checks
    return check.expected


@pytest.mark.parametrize("word", vocabulary.DELIVERED_TYPES)
def test_every_delivered_type_word_of_the_language_lowers_to_its_event_type(word: str) -> None:
    """The language's list of type words is the one the lowering reads (`expect delivered_type == soft`)."""
    assert _lowered_value("delivered_type", word) is EventType[word.upper()]


@pytest.mark.parametrize("observable", vocabulary.VECTOR_OBSERVABLES)
def test_every_vector_observable_of_the_language_reads_a_vector_name(observable: str) -> None:
    assert _lowered_value(observable, "#PF") is Vector.PF


@pytest.mark.parametrize("observable", vocabulary.EXIT_CODE_OBSERVABLES)
def test_every_exit_code_observable_of_the_language_reads_an_exit_word(observable: str) -> None:
    assert _lowered_value(observable, "npf") == ExitCode.NPF


def test_outline_rows_become_numbered_cases_located_at_their_row() -> None:
    text = """\
scenario outline "INT <n>":
  source "test"
  policies architectural
  mode protected32
  code at 0x1000: int <n>
  guest executes int <n>
  run
  expect delivered int <n>
  examples:
  | n    |
  | 0x20 |
  | 0x80 |
"""
    cases = lower_file(text, "outline.svm").cases
    assert [(c.scenario, c.row, c.loc.line) for c in cases] == [("INT <n>", 1, 11), ("INT <n>", 2, 12)]
    assert [c.program.setup.code[0].data for c in cases] == [b"\xcd\x20", b"\xcd\x80"]
    assert cases[0].program.setup.mode is CpuMode.PROTECTED_32
    assert cases[1].checks[0].event_type is EventType.SOFT


def test_l1_injection_becomes_an_l1_vmrun_with_vmcb12_fields() -> None:
    """K-6.0-20: L1 writes vmcb12 EVENTINJ (+ next_rip) and executes VMRUN."""
    text = """\
scenario "L1 injects #BP":
  source "EX-39"
  policies kvm-6.0
  l1 with nrips
  vmcb12 rip 0x4000
  inject #BP from L1 with next_rip=0x4001
  vectoring hits #NPF intercepted by L0
  run
  expect reinject
"""
    program = lower_file(text, "nested.svm").cases[0].program
    assert program.setup.nesting == engine.Nesting(l1_nrips=True)
    assert program.steps[0] == engine.L1Vmrun(event_inj=0x80000303, rip=0x4000, next_rip=0x4001)


RAW_FROM_L1 = """\
scenario "L1 writes a raw EVENTINJ":
  source "H-8; K-7.1-6"
  policies kvm-7.1
  l1 with nrips
  rip 0x5000
  code at 0x5000: nop
  inject event {raw} from L1 with rip=0x5000
  run
"""


@pytest.mark.parametrize(
    "raw",
    [
        0x80000503,  # reserved type 5: the VMRUN fails (H-8)
        0x80000703,  # reserved type 7
        0x00000303,  # V = 0: no event at all, not a valid #BP
        0x80000B0E,  # #PF with EV set, as written
    ],
)
def test_a_raw_event_from_l1_reaches_vmcb12_eventinj_as_written(raw: int) -> None:
    """H-8, K-7.1-6: L1 may write any 32 bits into vmcb12 EVENTINJ; the engine decides what the VMRUN makes of them."""
    lowered = lower_file(RAW_FROM_L1.format(raw=f"{raw:#010x}"), "raw.svm")
    (vmrun,) = [s for s in lowered.cases[0].program.steps if isinstance(s, engine.L1Vmrun)]
    assert vmrun.event_inj == raw


def test_userspace_injection_and_page_steps() -> None:
    text = """\
scenario "userspace #BP":
  source "EX-21"
  policies kvm-6.0
  page 0x7000 not present in host
  inject #BP from userspace
  page 0x7000 mapped in host
  run
  expect delivered #BP
"""
    program = lower_file(text, "user.svm").cases[0].program
    assert program.setup.pages == (engine.PagePresence(0x7000, PageTable.HOST, False),)
    assert program.steps[:2] == (
        engine.Inject(InjectionSource.USERSPACE, engine.Event(Vector.BP, EventType.EXCEPTION)),
        engine.SetPage(0x7000, PageTable.HOST, True),
    )


def test_lowered_cases_pickle() -> None:
    """Cases cross process boundaries under pytest-xdist."""
    cases = lower_file(EX_01, "ex01.svm").cases
    assert pickle.loads(pickle.dumps(cases)) == cases


def test_an_executed_instruction_that_is_not_at_rip_is_an_error_at_its_line() -> None:
    text = """\
scenario "mismatch":
  source "test"
  policies kvm-6.0
  code at 0x1000: hlt
  guest executes int3
"""
    with pytest.raises(SvmError) as raised:
        lower_file(text, "mismatch.svm")
    assert raised.value.loc.line == 5
    assert "guest executes int3" in raised.value.render()


INSIDE_A_BLOCK = """\
scenario "RIP inside a longer code at":
  source "test"
  policies kvm-6.0
  rip 0x1001
  code at 0x1000: {code}
  guest executes int3
"""


def test_rip_inside_a_longer_code_block_uses_the_bytes_already_there() -> None:
    """The instruction at RIP comes from the `code at` block that covers it: no second, overlapping block."""
    program = lower_file(INSIDE_A_BLOCK.format(code="bytes 90 cc 90"), "inside.svm").cases[0].program
    assert program.setup.code == (engine.CodeBytes(0x1000, b"\x90\xcc\x90"),)


@pytest.mark.parametrize(
    ("code", "executed", "message"),
    [
        ("bytes 90 f4 90", "int3", "the code at 0x1001 is f4, not this instruction (cc)"),
        ("bytes 90 cd", "int 0x80", "the code at 0x1001 is cd, not this instruction (cd 80)"),  # runs past the end
    ],
)
def test_rip_inside_a_longer_code_block_with_other_bytes_is_an_error_naming_them(
    code: str, executed: str, message: str
) -> None:
    """Lowering's own check (the checker reports the same first): the bytes at RIP, not at the block's start."""
    text = INSIDE_A_BLOCK.format(code=code).replace("guest executes int3", f"guest executes {executed}")
    with pytest.raises(SvmError) as raised:
        lower_svm(parse_text(text, "inside.svm"), text)
    assert raised.value.loc.line == 6
    assert message in raised.value.render()


def test_problems_are_reported_for_every_scenario_not_only_the_first() -> None:
    text = """\
scenario "first":
  source "test"
  policies kvm-6.0
  code at 0x1000: hlt
  guest executes int3

scenario "second":
  source "test"
  policies kvm-6.0
  code at 0x1000: nop
  guest executes int3
"""
    with pytest.raises(SvmError) as raised:
        lower_file(text, "two.svm")
    assert [d.loc.line for d in raised.value.diagnostics] == [5, 11]


def _syntax_objects(value: object, where: str = "") -> Iterator[str]:
    """Where in `value` (attrs fields, tuples, dicts) an object of a `dsl.syntax` class sits."""
    if type(value).__module__.startswith("dsl.syntax"):
        yield f"{where}: {type(value).__name__}"
    elif attrs.has(type(value)):
        for field in attrs.fields(type(value)):
            yield from _syntax_objects(getattr(value, field.name), f"{type(value).__name__}.{field.name}")
    elif isinstance(value, tuple | list | frozenset):
        for item in value:
            yield from _syntax_objects(item, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _syntax_objects(key, where)
            yield from _syntax_objects(item, where)


@pytest.mark.parametrize("folder", ["scenarios", "tests"])
def test_lowered_cases_hold_plain_values_only(folder: str) -> None:
    """Nothing of the syntax reaches the engine: numbers lose their source spelling (`ast.Number`) when lowered."""
    root = Path(__file__).resolve().parents[2] / folder
    found = set()
    for path in sorted(root.rglob("*.svm")):
        try:
            lowered = lower_file(path.read_text(encoding="utf-8"), path.name)
        except SvmError:  # the fixtures of bad input
            continue
        found.update(_syntax_objects(lowered))
    assert not found
