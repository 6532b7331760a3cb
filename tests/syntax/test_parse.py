"""Parsing: sentence forms into AST nodes, outlines, includes, per-scenario recovery, picklable errors."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from dsl.engine.vocab import InjectionSource, Level, Outcome, PageTable
from dsl.errors import SvmError, SvmIncludeError, SvmSyntaxError
from dsl.syntax import ast, parse_file, parse_text
from dsl.syntax.expand import concrete_scenarios

MAILING_LIST = "guest executes INTO; vectoring hits #PF intercepted; expect reinject with next_rip=0x1001"


def statements(body: str) -> tuple[ast.Statement, ...]:
    svm = parse_text(f'scenario "t":\n{body}\n', "t.svm")
    scenario = svm.items[0]
    assert isinstance(scenario, ast.Scenario)
    return scenario.statements


def name(text: str) -> ast.Name:
    return ast.Name(text, loc=ast.Loc("t.svm", 0, 0))


def test_the_mailing_list_sentence_is_a_line_of_three_sentences() -> None:
    """Issue 3: the sentence engineers write on the mailing list is accepted verbatim."""
    execute, vectoring, expect = statements(MAILING_LIST)
    assert execute == ast.ExecuteStep(ast.Instruction((), name("into"), (), loc=execute.loc), loc=execute.loc)
    assert vectoring == ast.VectoringStep(name("#PF"), None, (), Level.L0, loc=vectoring.loc)
    assert isinstance(expect, ast.OutcomeExpectation)
    assert expect.outcome is Outcome.REINJECT
    assert [(c.field.text, c.value) for c in expect.checks] == [("next_rip", 0x1001)]


def test_a_scenario_fits_on_its_header_line() -> None:
    svm = parse_text(f'scenario "EX-03 in one line": {MAILING_LIST}\n')
    scenario = svm.items[0]
    assert isinstance(scenario, ast.Scenario)
    assert len(scenario.statements) == 3


def test_indentation_never_changes_meaning() -> None:
    """Gherkin's anti-pattern: here a mis-indented line means exactly what it says."""
    flat = statements("rip 0x1000\nguest executes int3\nexpect retry")
    ragged = statements("        rip 0x1000\n guest executes int3\n\t\t   expect retry")
    assert flat == ragged


def test_setup_sentences() -> None:
    parsed = statements(
        "\n".join(
            (
                "profile amd-no-nrips",
                "policies kvm-6.0, kvm-mainline",
                "nrips 0; paging npt; protection sev-es; variant seed-as-committed; int-n reading A",
                "mode compat32; cs base 0x10000; rip 0x2000; rflags IF, OF; interrupt shadow mov-ss",
                "cpl 3; gif 0; breakpoint dr0 at 0x1000; guest debug sw-bp",
                "page 0x7000 not present in host; idt gate #BP not present dpl 0 type trap",
                "vmcb next_rip 0x1000; vmcb12 event_inj 0x80000303",
                "l1 without nrips; l1 intercepts #PF, #UD, nmi, hlt",
                "code at 0x3000: cs int 0x80; code at 0x1001: bytes 48 89 c8",
            )
        )
    )
    kinds = [type(s).__name__ for s in parsed]
    assert kinds == [
        "ProfileSetting", "PoliciesSetting", "NripsSetting", "PagingSetting", "ProtectionSetting",
        "VariantSetting", "ReadingSetting", "ModeSetting", "CsBaseSetting", "RipSetting", "RflagsSetting",
        "InterruptShadowSetting", "CplSetting", "GifSetting", "BreakpointSetting", "GuestDebugSetting",
        "PageSetting", "IdtGateSetting", "VmcbFieldSetting", "VmcbFieldSetting", "L1FeatureSetting",
        "L1InterceptSetting", "CodeSetting", "CodeSetting",
    ]  # fmt: skip
    page = parsed[16]
    assert page == ast.PageSetting(0x7000, False, PageTable.HOST, loc=page.loc)
    gate = parsed[17]
    assert gate == ast.IdtGateSetting(name("#BP"), False, 0, name("trap"), loc=gate.loc)
    raw = parsed[23]
    assert isinstance(raw, ast.CodeSetting)
    assert raw.code == ast.RawBytes(bytes.fromhex("4889c8"), loc=raw.code.loc)


def test_step_sentences() -> None:
    parsed = statements(
        "\n".join(
            (
                "inject int 0x20 from L1 with next_rip=0x6000, rip=0x6000",
                "inject #BP from guest debug",
                "vectoring of #NP hits #PF with error_code=0x2 handled by guest",
                "exit for vmmcall intercepted by L1",
                "code at 0x1000 modified to call 0x2000",
                "page 0x1000 unmapped in guest",
                "entry cancelled; save and restore with nested run pending; host re-enters; run",
            )
        )
    )
    inject = parsed[0]
    assert isinstance(inject, ast.InjectStep)
    assert inject.source is InjectionSource.L1
    assert (inject.field("next_rip"), inject.field("rip"), inject.field("cs_base")) == (0x6000, 0x6000, None)
    debug = parsed[1]
    assert isinstance(debug, ast.InjectStep)
    assert debug.source is InjectionSource.GUEST_DEBUG
    vectoring = parsed[2]
    assert isinstance(vectoring, ast.VectoringStep)
    assert (vectoring.during, vectoring.error_code, vectoring.handler) == (name("#NP"), 2, Level.GUEST)
    assert parsed[3] == ast.ExitStep(name("vmmcall"), Level.L1, loc=parsed[3].loc)
    assert [type(s).__name__ for s in parsed[6:]] == ["CancelEntryStep", "SaveRestoreStep", "ReenterStep", "RunStep"]


def test_expectation_sentences() -> None:
    parsed = statements(
        "\n".join(
            (
                "expect dropped; expect lost; expect vmexit invalid; expect host bug",
                "expect no spurious #DB; expect no #UD",
                "expect delivered int 0x80 with return rip=0x3002",
                'expect exit_code[last] != 0x46; expect tracepoints contains "#BP [reinjected]"',
                "under kvm-6.19: expect delivered #BP with return rip=0x1001; expect spurious_db == false",
            )
        )
    )
    outcomes = [s.outcome for s in parsed[:4] if isinstance(s, ast.OutcomeExpectation)]
    assert outcomes == [Outcome.DROPPED, Outcome.LOST, Outcome.VMEXIT_INVALID, Outcome.HOST_BUG]
    assert parsed[4] == ast.SpuriousDbExpectation(False, loc=parsed[4].loc)
    no_ud = parsed[5]
    assert isinstance(no_ud, ast.DeliveredExpectation)
    assert no_ud.negated
    field = parsed[7]
    assert isinstance(field, ast.FieldExpectation)
    assert (field.observable.text, field.pick, field.comparison, field.value) == (
        "exit_code", name("last"), ast.Comparison.NE, 0x46,
    )  # fmt: skip
    under = parsed[9]
    assert isinstance(under, ast.Under)
    assert [p.text for p in under.policies] == ["kvm-6.19"]
    assert len(under.expectations) == 2


def test_description_may_contain_any_character() -> None:
    svm = parse_text('scenario "t":\n  """\n  #PF; // not a comment: "quoted" @tag <x>\n    kept indent\n  """\n')
    scenario = svm.items[0]
    assert isinstance(scenario, ast.Scenario)
    assert scenario.description == '#PF; // not a comment: "quoted" @tag <x>\n  kept indent'


def test_outline_expands_one_scenario_per_row() -> None:
    svm = parse_text(
        'scenario outline "INT <n> at <addr>":\n'
        "  mode protected32; code at <addr>: int <n>\n"
        "  expect next_rip == <ret>\n"
        "  examples:\n"
        "    | n    | addr       | ret        |\n"
        "    | 0x80 | 0x3000     | 0x3002     |\n"
        "    | 0x20 | 0x08048000 | 0x08048002 |\n"
    )
    (outline,) = svm.items
    assert isinstance(outline, ast.ScenarioOutline)
    first, second = outline.scenarios
    assert (first.title, second.title) == ("INT 0x80 at 0x3000", "INT 0x20 at 0x08048000")
    assert first.example is not None
    assert first.example.cells == ("0x80", "0x3000", "0x3002")
    code = second.statements[1]
    assert isinstance(code, ast.CodeSetting)
    assert code.address == 0x08048000


def test_outline_placeholder_without_column_is_reported_at_the_placeholder() -> None:
    with pytest.raises(SvmSyntaxError) as caught:
        parse_text('scenario outline "t":\n  rip <addr>\n  examples:\n    | adr |\n    | 1 |\n', "o.svm")
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.loc.line, diagnostic.loc.column) == (2, 7)
    assert "placeholder <addr> has no column" in diagnostic.message


def test_a_bad_cell_is_reported_at_its_placeholder_with_the_row() -> None:
    with pytest.raises(SvmSyntaxError) as caught:
        parse_text('scenario outline "t":\n  rip 0x1; nrips <n>\n  examples:\n    | n |\n    | 1 |\n    | on |\n')
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.loc.line, diagnostic.loc.column) == (2, 18)
    assert diagnostic.hint is not None
    assert "line 6" in diagnostic.hint
    assert "<n> = on" in diagnostic.hint


def test_background_applies_to_every_scenario_before_its_own_setup() -> None:
    svm = parse_text('background:\n  mode real\nscenario "a":\n  mode long64\nscenario "b":\n  run\n')
    a, b = concrete_scenarios(svm)
    assert [type(s).__name__ for s in a.statements] == ["ModeSetting", "ModeSetting"]
    assert [type(s).__name__ for s in b.statements] == ["ModeSetting", "RunStep"]


def test_one_error_per_broken_scenario_and_none_from_good_ones() -> None:
    """Recovery is per block: three broken scenarios give three errors, the good one none."""
    text = (
        'scenario "a":\n  rip\n'
        'scenario "good":\n  rip 0x1000\n'
        'scenario "b":\n  inject #BP frm userspace\n'
        'scenario "c":\n  expect next_rip = 1\n  expect also broken\n'
    )
    with pytest.raises(SvmSyntaxError) as caught:
        parse_text(text, "many.svm")
    assert [d.loc.line for d in caught.value.diagnostics] == [2, 6, 8]


def test_errors_pickle_with_their_diagnostics() -> None:
    """pytest-xdist sends errors between processes."""
    with pytest.raises(SvmError) as caught:
        parse_text('scenario "t":\n  rip x\n', "p.svm")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert type(copy) is type(caught.value)
    assert copy.diagnostics == caught.value.diagnostics
    assert str(copy) == str(caught.value)


def test_rendered_error_names_file_line_column_and_what_was_expected() -> None:
    with pytest.raises(SvmSyntaxError) as caught:
        parse_text('scenario "t":\n  rip x\n', "p.svm")
    assert str(caught.value).splitlines() == [
        "p.svm:2:7: error: expected a number (found 'x')",
        "    2 |   rip x",
        "      |       ^",
        "  expected: a number such as 0x1000",
    ]


def test_include_is_relative_to_the_including_file(tmp_path: Path) -> None:
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "common.svm").write_text("background:\n  paging npt\n")
    main = tmp_path / "main.svm"
    main.write_text('include "lib/common.svm"\nscenario "t":\n  run\n')
    svm = parse_file(main)
    (scenario,) = concrete_scenarios(svm)
    assert [type(s).__name__ for s in scenario.statements] == ["PagingSetting", "RunStep"]


def test_missing_include_is_reported_at_the_include_line(tmp_path: Path) -> None:
    main = tmp_path / "main.svm"
    main.write_text('scenario "t":\n  run\ninclude "nope.svm"\n')
    with pytest.raises(SvmIncludeError) as caught:
        parse_file(main)
    (diagnostic,) = caught.value.diagnostics
    assert (diagnostic.loc.file, diagnostic.loc.line) == (str(main), 3)
    assert diagnostic.message == 'cannot include "nope.svm": no such file'


def test_include_cycle_is_reported_with_the_chain(tmp_path: Path) -> None:
    (tmp_path / "a.svm").write_text('include "b.svm"\n')
    (tmp_path / "b.svm").write_text('include "a.svm"\n')
    with pytest.raises(SvmIncludeError) as caught:
        parse_file(tmp_path / "a.svm")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.message == "include cycle: a.svm → b.svm → a.svm"
    assert diagnostic.loc.file == str(tmp_path / "b.svm")


def test_errors_in_an_included_file_point_into_that_file(tmp_path: Path) -> None:
    (tmp_path / "common.svm").write_text("background:\n  mode\n")
    (tmp_path / "main.svm").write_text('include "common.svm"\n')
    with pytest.raises(SvmSyntaxError) as caught:
        parse_file(tmp_path / "main.svm")
    assert caught.value.diagnostics[0].loc.file == str(tmp_path / "common.svm")
