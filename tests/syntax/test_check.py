"""The checker: what the grammar cannot catch, each reported with a clear message and a near name."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from dsl.compiler.check import check, check_file, load, with_checker_errors
from dsl.errors import Diagnostic, Severity, SvmCheckError, SvmError, SvmSyntaxError
from dsl.syntax import ast, parse_text


def diagnostics(text: str) -> list[Diagnostic]:
    return list(check(parse_text(text, "c.svm")))


def messages(text: str) -> list[str]:
    return [d.message for d in diagnostics(text)]


def scenario(*lines: str) -> str:
    return 'scenario "t":\n' + "".join(f"  {line}\n" for line in lines)


def test_a_correct_scenario_has_nothing_to_report() -> None:
    """EX-01 as the seed commit tells it."""
    assert (
        diagnostics(
            scenario(
                "policies kvm-5.19, kvm-6.0, kvm-mainline",
                "code at 0x1000: int3; rip 0x1000",
                "guest executes int3; vectoring hits #PF intercepted by L0",
                "under kvm-6.0, kvm-mainline: expect reinject with next_rip=0x1001",
            )
        )
        == []
    )


@pytest.mark.parametrize(
    ("line", "message", "hint"),
    [
        ("profile amd-nrip", "unknown hardware profile 'amd-nrip'", "did you mean amd-nrips?"),
        ("policies kvm-6.1", "unknown policy 'kvm-6.1'", "did you mean kvm-6.19?"),
        ("mode long", "unknown CPU mode 'long'", "did you mean long64?"),
        ("paging ept", "unknown paging mode 'ept'", "did you mean npt?"),
        ("protection sev_es", "unknown guest protection 'sev_es'", "did you mean sev-es?"),
        ("code at 0x1000: int80", "unknown mnemonic 'int80'", "did you mean int 80? (int3 is the one-byte CC form)"),
        ("code at 0x1000: nopp", "unknown mnemonic 'nopp'", "did you mean nop?"),
        ("idt gate #pf not present", "unknown vector '#pf'", "did you mean #PF?"),
        ("vectoring hits #npf intercepted", "unknown fault '#npf'", "did you mean #NPF?"),
        ("exit for cpuidd", "unknown exit reason 'cpuidd'", "did you mean cpuid?"),
        ("expect event_injj == 0", "unknown observable 'event_injj'", "did you mean event_inj?"),
        ("expect exit_code[frist] == 0x4e", "unknown pick 'frist'", "did you mean first?"),
        ("rflags IF, OFF", "unknown RFLAGS flag 'OFF'", "did you mean OF?"),
        ("breakpoint dr4 at 0x1000", "unknown debug register 'dr4'", "did you mean dr3?"),
    ],
)
def test_unknown_names_get_a_near_name(line: str, message: str, hint: str) -> None:
    (found,) = diagnostics(scenario(line))
    assert (found.message, found.hint) == (message, hint)
    assert found.expected is not None


def test_rip_out_of_range_for_the_mode() -> None:
    """H-30: RIP is 16 bits in real mode, 32 in protected32; the message says the limit."""
    (real,) = diagnostics(scenario("mode real", "rip 0x10000"))
    assert real.message == "rip 0x10000 is out of range in real mode"
    assert real.expected == "at most 0xffff (16-bit instruction pointer)"
    (prot,) = diagnostics(scenario("mode protected32", "rip 0x100000000"))
    assert prot.expected == "at most 0xffffffff (32-bit instruction pointer)"
    assert diagnostics(scenario("mode long64", "rip 0x100000000")) == []


def test_expectation_under_a_policy_the_scenario_does_not_run() -> None:
    (found,) = diagnostics(scenario("policies kvm-5.19, kvm-6.0", "under kvm-6.19: expect retry"))
    assert found.message == "expectation under kvm-6.19, which this scenario does not run"
    assert found.expected == "one of the scenario's policies: kvm-5.19, kvm-6.0"


def test_the_mainline_alias_is_the_newest_policy() -> None:
    """README § Policy names: kvm-mainline is kvm-7.1."""
    assert diagnostics(scenario("policies kvm-mainline", "under kvm-7.1: expect reinject")) == []


def test_same_setting_twice_with_different_values_in_one_block() -> None:
    (found,) = diagnostics(scenario("paging shadow", "paging npt"))
    assert found.message == "paging is set twice with different values"


def test_a_scenario_may_override_its_background() -> None:
    assert diagnostics("background:\n  paging shadow\n" + scenario("paging npt")) == []


def test_sev_with_nrips_off_is_noted_as_a_warning() -> None:
    """K-6.6-4, EX-37: kvm-6.6 and later refuse SEV without nrips; other policies allow it."""
    (found,) = diagnostics(scenario("protection sev", "nrips 0"))
    assert found.severity is Severity.WARNING
    assert "K-6.6-4" in found.message


def test_seed_as_committed_is_a_variant_of_kvm_6_0() -> None:
    """README: the seed as first committed differs from kvm-6.0 in K-6.0-20 only."""
    assert diagnostics(scenario("policies kvm-6.0", "variant seed-as-committed")) == []
    (found,) = diagnostics(scenario("policies kvm-6.2", "variant seed-as-committed"))
    assert "variant of kvm-6.0" in found.message


def test_l1_steps_need_an_l1() -> None:
    found = messages(scenario("inject #BP from L1 with next_rip=0x5002", "vectoring hits #PF intercepted by L1"))
    assert found == [
        "an injection from L1 needs an L1",
        "intercepted by L1, but this scenario has no L1",
    ]
    assert messages(scenario("l1 with nrips", "inject #BP from L1 with next_rip=0x5002")) == []


def test_injection_fields_depend_on_the_source() -> None:
    """Userspace gives an error code only; L1 writes vmcb12 rip/next_rip/cs_base (K-6.0-20)."""
    (found,) = diagnostics(scenario("inject #BP from userspace with next_rip=0x1001"))
    assert found.message == "unknown field for inject from userspace 'next_rip'"


def test_overlapping_code() -> None:
    (found,) = diagnostics(scenario("code at 0x1000: int 0x80", "code at 0x1001: nop"))
    assert found.message == "code at 0x1001 overlaps the code at 0x1000 (line 2)"


def test_duplicate_scenario_titles() -> None:
    (found,) = diagnostics(scenario("run") + scenario("run"))
    assert found.message == 'duplicate scenario title "t"'
    assert found.hint == "first used at line 1"


def test_unused_outline_column() -> None:
    text = 'scenario outline "o <a>":\n  rip <a>\n  examples:\n    | a | b |\n    | 1 | 2 |\n'
    assert messages(text) == ["column 'b' is not used by any <b> placeholder"]


def test_a_problem_from_one_row_names_the_row() -> None:
    text = 'scenario outline "o <p>":\n  policies <p>\n  examples:\n    | p |\n    | kvm-6.0 |\n    | kvm-6.9 |\n'
    (found,) = diagnostics(text)
    assert found.loc.line == 2
    assert found.hint == "did you mean kvm-6.19? (examples row at line 6: | kvm-6.9 |)"


def test_check_file_raises_one_error_with_every_problem() -> None:
    svm = parse_text(scenario("profile amd", "mode long") + 'scenario "u":\n  policies kvm\n', "c.svm")
    with pytest.raises(SvmCheckError) as caught:
        check_file(svm)
    assert [d.loc.line for d in caught.value.diagnostics] == [2, 3, 5]
    assert isinstance(caught.value, SvmError)


def test_check_file_returns_warnings_when_there_is_no_error() -> None:
    warnings = check_file(parse_text(scenario("profile amd-no-nrips", "nrips 1")))
    assert [w.severity for w in warnings] == [Severity.WARNING]


def test_the_executed_instruction_must_be_the_one_at_rip() -> None:
    (found,) = diagnostics(scenario("code at 0x1000: int3", "guest executes into"))
    assert found.message == "guest executes into, but the code at 0x1000 is int3 (line 2)"
    assert diagnostics(scenario("code at 0x1000: int3", "guest executes int3")) == []


def test_the_executed_instruction_is_found_at_cs_base_plus_rip_outside_64_bit_mode() -> None:
    """H-31: the linear RIP is CS.base + RIP except in 64-bit mode."""
    setup = ("mode protected32", "cs base 0x10000", "code at 0x11000: int3")
    assert diagnostics(scenario(*setup, "guest executes int3")) == []
    (found,) = diagnostics(scenario(*setup, "guest executes nop"))
    assert "the code at 0x11000 is int3" in found.message


def test_into_in_64_bit_mode_is_noted() -> None:
    """INTO raises #UD in 64-bit mode: legal to write, worth a warning."""
    (found,) = diagnostics(scenario("mode long64", "code at 0x1000: into"))
    assert found.severity is Severity.WARNING
    assert diagnostics(scenario("mode protected32", "code at 0x1000: into")) == []


def test_a_template_mistake_is_reported_once_not_once_per_row() -> None:
    """One error, not a cascade: a typo on a line without placeholders is the same in every row."""
    text = (
        'scenario outline "o <n>":\n  code at 0x1000: nopp\n  rip <n>\n  examples:\n    | n |\n    | 1 |\n    | 2 |\n'
    )
    (found,) = diagnostics(text)
    assert found.message == "unknown mnemonic 'nopp'"
    assert found.hint == "did you mean nop?"


def test_placeholders_are_substituted_in_citations_and_description() -> None:
    text = (
        'scenario outline "o":\n  source "<ex>"\n  """\n  about <ex>\n  """\n  run\n'
        "  examples:\n    | ex |\n    | EX-05 |\n"
    )
    (outline,) = parse_text(text).items
    assert isinstance(outline, ast.ScenarioOutline)
    (expanded,) = outline.scenarios
    assert (expanded.sources, expanded.description) == (("EX-05",), "about EX-05")
    assert diagnostics(text) == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("expect spurious_db == 1", "spurious_db is true or false"),
        ('expect tracepoints == "x"', "tracepoints is a list of lines: check one with contains"),
        ('expect next_rip contains "x"', "contains checks a list (tracepoints), not next_rip"),
        ('expect next_rip == "0x1001"', 'a "string" compares only with contains, not with next_rip'),
    ],
)
def test_values_of_the_wrong_kind(line: str, message: str) -> None:
    (found,) = diagnostics(scenario(line))
    assert found.message == message


OUTCOME_WITH = scenario(
    "policies kvm-6.0",
    "code at 0x1000: int3",
    "guest executes int3; vectoring hits #PF intercepted by L0",
    "expect reinject with next_rip=0x1001, spurious_db=false, delivered=#BP, exit_code=npf, evidence=V",
    "expect delivered with delivered_type=soft, requeued_event=none",
)


def test_outcome_checks_take_the_values_of_their_observable() -> None:
    """Follow-up 2: `expect <outcome> with k=v` takes true/false, vectors and words as `expect k == v` does."""
    assert diagnostics(OUTCOME_WITH) == []
    (scenario_,) = parse_text(OUTCOME_WITH).items
    assert isinstance(scenario_, ast.Scenario)
    reinject, delivered = (s for s in scenario_.statements if isinstance(s, ast.OutcomeExpectation))
    assert [c.value for c in reinject.checks] == [
        0x1001,
        False,
        ast.Name("#BP", loc=ast.Loc("", 0, 0)),
        ast.Name("npf", loc=ast.Loc("", 0, 0)),
        ast.Name("V", loc=ast.Loc("", 0, 0)),
    ]
    assert delivered.outcome is ast.Outcome.DELIVERED
    assert [c.value for c in delivered.checks] == [
        ast.Name("soft", loc=ast.Loc("", 0, 0)),
        ast.Name("none", loc=ast.Loc("", 0, 0)),
    ]


@pytest.mark.parametrize(
    ("line", "message", "hint"),
    [
        ("expect reinject with spurious_db=1", "spurious_db is true or false", None),
        ("expect reinject with next_rip=true", "next_rip is not a flag: true and false do not apply", None),
        ("expect reinject with delivered=#BPP", "unknown vector '#BPP'", "did you mean #BP?"),
        ("expect reinject with next_rip=reinject", "next_rip is a number, not 'reinject'", None),
        ("expect retry with evidence=X", "unknown evidence tag 'X'", None),
        ("expect retry with outcome=retyr", "unknown outcome 'retyr'", "did you mean retry?"),
        ("expect retry with exit_code=hltt", "unknown exit reason 'hltt'", "did you mean hlt?"),
        ("expect retry with delivered_type=sfot", "unknown event type 'sfot'", "did you mean soft?"),
        ('expect retry with rip="0x1000"', 'a "string" compares only with contains, not with rip', None),
        ("expect retry with rip=0x1000, rip=0x1001", "rip is given twice", None),
        ("expect delivered == #BPP", "unknown vector '#BPP'", "did you mean #BP?"),
    ],
)
def test_outcome_check_values_are_validated_per_observable(line: str, message: str, hint: str | None) -> None:
    """Follow-up 2: each value is checked against what its observable can hold."""
    (found,) = diagnostics(scenario(line))
    assert (found.message, found.hint) == (message, hint)


def warnings_and_errors(text: str) -> list[tuple[Severity, str]]:
    return [(d.severity, d.message) for d in diagnostics(text)]


def test_a_reserved_event_type_from_l1_is_a_warning_not_an_error() -> None:
    """Follow-up 3 (H-8, K-7.1-6): a valid EVENTINJ of reserved type 5 makes L1's VMRUN fail; a scenario about
    that failure must be writable, so the checker only warns."""
    for line in ("inject event 0x80000503 from L1", "vmcb12 event_inj 0x80000503"):
        found = warnings_and_errors(scenario("policies kvm-7.1", "l1 with nrips", line, "run"))
        assert found == [
            (
                Severity.WARNING,
                "event 0x80000503 has the reserved type 5: the VMRUN fails (VMEXIT_INVALID, H-8, K-7.1-6)",
            )
        ]


def test_raw_events_of_a_defined_type_or_not_valid_pass_silently() -> None:
    """Follow-up 3: type 3 (exception) is defined; without bit 31 the hardware ignores the TYPE field (H-8)."""
    for raw in ("0x80000303", "0x00000503"):
        line = f"inject event {raw} from L1"
        assert diagnostics(scenario("policies kvm-7.1", "l1 with nrips", line)) == []


def test_a_reserved_event_type_cannot_come_from_userspace() -> None:
    """Follow-up 3: KVM_SET_VCPU_EVENTS names exceptions, interrupts and NMIs; only vmcb12 carries a raw value."""
    (found,) = diagnostics(scenario("policies kvm-7.1", "inject event 0x80000603 from userspace"))
    assert found.severity is Severity.ERROR
    assert found.message == "event 0x80000603 has the reserved type 6, which KVM_SET_VCPU_EVENTS cannot carry"
    assert found.hint is not None
    assert "vmcb12" in found.hint


def test_a_raw_event_wider_than_32_bits_is_out_of_range() -> None:
    """Follow-up 3: EVENTINJ's event is its low 32 bits (the error code is a separate field)."""
    assert messages(scenario("policies kvm-7.1", "l1 with nrips", "inject event 0x180000303 from L1")) == [
        "event 0x180000303 is out of range"
    ]


def test_a_later_guest_executes_is_not_checked_against_the_starting_rip() -> None:
    """Follow-up 4: after a retry (RIP stays) or a skip (RIP advances, K-5.19-7) the checker cannot know RIP, so
    a second `guest executes` is never a false error — here the INT3 retried after its delivery was cut short."""
    retried = scenario(
        "policies kvm-5.19",
        "code at 0x1000: int3",
        "code at 0x1001: nop",
        "guest executes int3; vectoring hits #PF intercepted by L0",
        "run",
        "guest executes int3",
        "guest executes nop",
        "run",
    )
    assert diagnostics(retried) == []


def test_a_later_branch_is_checked_for_its_shape_not_for_its_reach_from_the_starting_rip() -> None:
    """Follow-up 4: `jmp short 0x2010` is out of reach of RIP 0x1000, but RIP may be near it by then."""
    later = scenario("code at 0x1000: int3", "code at 0x2000: jmp short 0x2010", "guest executes int3", "run")
    assert diagnostics(later + "  guest executes jmp short 0x2010\n") == []
    (found,) = diagnostics(later + "  guest executes call short 0x2010\n")
    assert found.message == "'call' has no short form"


def test_the_first_guest_executes_is_still_checked() -> None:
    """Follow-up 4: before any step RIP is the `rip` setting, so a mismatch there is a real error."""
    (found,) = diagnostics(scenario("code at 0x1000: int3", "guest executes into", "run", "guest executes int3"))
    assert found.message == "guest executes into, but the code at 0x1000 is int3 (line 2)"


@pytest.mark.parametrize(
    ("placed", "executed"),
    [
        ("code at 0x1000: bytes cc 90", "int3"),  # INT3 followed by a NOP
        ("code at 0x1000: bytes cd 80 cc", "int 0x80"),
        ("code at 0x0fff: bytes 90 cc 90", "int3"),  # RIP inside a longer `code at`
    ],
)
def test_only_the_first_instruction_at_rip_is_compared(placed: str, executed: str) -> None:
    """Follow-up 5: a `code at` may place several instructions; the one at RIP is what the guest executes."""
    assert diagnostics(scenario(placed, f"guest executes {executed}")) == []


def test_a_different_first_instruction_at_rip_is_still_an_error() -> None:
    """Follow-up 5: `bytes 66 cd 80` is `data16 int 0x80`, not `int 0x80` (the prefix is part of it, K-5.19-7)."""
    (found,) = diagnostics(scenario("code at 0x1000: bytes 66 cd 80", "guest executes int 0x80"))
    assert found.message == "guest executes int 0x80, but the code at 0x1000 is bytes 66 cd 80 (line 2)"
    (inside,) = diagnostics(scenario("code at 0x0fff: bytes 90 90 cc", "guest executes int3"))
    assert inside.message == "guest executes int3, but the code at 0x1000 is bytes 90 cc (line 2)"


BROKEN_THEN_UNCHECKED = (
    'scenario "broken":\n  rip\n\nscenario "runs one policy":\n  policies kvm-6.0\n  under kvm-5.19: expect retry\n'
)


def syntax_error_with_checks(text: str) -> SvmSyntaxError:
    with pytest.raises(SvmSyntaxError) as caught:
        parse_text(text, "c.svm")
    return with_checker_errors(caught.value, text, "c.svm")


def test_a_syntax_error_does_not_hide_the_checker_errors_of_other_scenarios() -> None:
    """Issue 3: each broken scenario reports at least one error, in file order, the syntax error first here."""
    error = syntax_error_with_checks(BROKEN_THEN_UNCHECKED)
    assert [d.loc.line for d in error.diagnostics] == [2, 6]
    assert "does not run" in error.diagnostics[1].message


def test_the_combined_error_pickles_as_a_syntax_error() -> None:
    """pytest-xdist workers send a file's error to the controller."""
    error = syntax_error_with_checks(BROKEN_THEN_UNCHECKED)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is SvmSyntaxError
    assert copy.diagnostics == error.diagnostics


def test_a_broken_background_leaves_the_scenarios_unchecked() -> None:
    """Without their background the scenarios would be checked against settings that are not theirs."""
    text = "background:\n  policies kvm-6.0,\n\n" + BROKEN_THEN_UNCHECKED.split("\n\n", 1)[1]
    error = syntax_error_with_checks(text)
    assert [d.loc.line for d in error.diagnostics] == [2]


def test_a_missing_include_leaves_the_scenarios_unchecked() -> None:
    """An included file holds the background the scenarios rely on; without it, only the include is reported."""
    text = 'include "nowhere.svm"\n\n' + BROKEN_THEN_UNCHECKED.split("\n\n", 1)[1]
    with pytest.raises(SvmError) as caught:
        parse_text(text, "c.svm")
    assert isinstance(caught.value, SvmSyntaxError)
    combined = with_checker_errors(caught.value, text, "c.svm")
    assert [d.loc.line for d in combined.diagnostics] == [1]


def test_a_background_that_parsed_still_applies_to_the_scenarios_checked_beside_a_syntax_error() -> None:
    """Issue 3 with a background: its policies are the ones the expectation is checked against."""
    text = (
        'background:\n  policies kvm-6.0\n\nscenario "x":\n  rip\n\n@t\nscenario "y":\n  under kvm-5.19: expect retry\n'
    )
    error = syntax_error_with_checks(text)
    assert [d.loc.line for d in error.diagnostics] == [5, 9]


def test_load_of_a_missing_file_is_still_one_clear_error(tmp_path: Path) -> None:
    """Recovering the parsed blocks needs the text; a file that cannot be read keeps its own error."""
    with pytest.raises(SvmError) as caught:
        load(tmp_path / "absent.svm")
    assert "cannot read" in caught.value.diagnostics[0].message
