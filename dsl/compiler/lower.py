"""Lowering: a scenario file becomes engine `Program`s and expectation checks, one `Case` per scenario × policy
(× outline row). See `dsl.compiler.lowered` for the data; `lower_setup` and `lower_expect` for the pieces.

Problems are reported per scenario (one diagnostic each, every scenario looked at) as one `SvmCheckError`.
"""

from __future__ import annotations

import attrs

from dsl.compiler.check import check_file
from dsl.compiler.lower_expect import lower_expectations
from dsl.compiler.lower_names import Context, LowerError, exit_reason, raise_collected
from dsl.compiler.lower_setup import Configured, code_bytes, configure, l1_vmrun_from_vmcb12, linear, lower_step
from dsl.compiler.lowered import Case, Check, Comparison, LoweredFile, LoweredScenario, Probe
from dsl.engine import program as engine
from dsl.engine.vocab import InjectionSource, Level
from dsl.errors import Loc
from dsl.syntax import ast
from dsl.syntax.expand import background_settings
from dsl.syntax.parse import parse_text

_SCENARIO_KEYWORD = "scenario"

__all__ = ["Case", "Check", "Comparison", "LoweredFile", "LoweredScenario", "Probe", "lower_file", "lower_svm"]


def lower_file(text: str, file: str) -> LoweredFile:
    """Parse, check and lower `.svm` text (`file` names it in diagnostics and resolves includes).

    Raises `SvmError` (syntax, check or lowering problems, every scenario looked at); warnings ride along.
    """
    svm = parse_text(text, file)
    warnings = check_file(svm)
    return attrs.evolve(lower_svm(svm, text), warnings=warnings, includes=included_paths(svm))


def included_paths(svm: ast.SvmFile) -> tuple[str, ...]:
    """The paths of the files `svm` includes, directly or through other includes, in first-include order."""
    paths: list[str] = []
    pending = [svm]
    while pending:
        for include in pending.pop(0).includes:
            if include.file is not None and include.file.path not in paths:
                paths.append(include.file.path)
                pending.append(include.file)
    return tuple(paths)


def lower_svm(svm: ast.SvmFile, text: str) -> LoweredFile:
    """Lower a parsed and checked file whose source text is `text`."""
    ctx = Context(svm.path, text)
    background = background_settings(svm)
    scenarios: list[LoweredScenario] = []
    seen: dict[str, Loc] = {}
    for item in svm.scenarios:
        try:
            if item.title in seen:
                first = seen[item.title]
                raise ctx.error(item.loc, f"duplicate scenario title {item.title!r} (first at line {first.line})")
            seen[item.title] = item.loc
            scenarios.append(_lower_item(ctx, item, background))
        except LowerError as problem:
            ctx.diagnostics.append(problem.diagnostic)
    raise_collected(ctx)
    return LoweredFile(svm.path, tuple(scenarios))


def _lower_item(
    ctx: Context, item: ast.Scenario | ast.ScenarioOutline, background: tuple[ast.Setting, ...]
) -> LoweredScenario:
    title_loc = _title_loc(ctx, item.loc)
    if isinstance(item, ast.Scenario):
        cases = _cases(ctx, item, background, title=item.title, row=None, loc=title_loc)
        return LoweredScenario(item.title, title_loc, item.tags, cases)
    rows = {row.loc.line: number for number, row in enumerate(item.examples.rows, start=1)}
    outline_cases: list[Case] = []
    for scenario in item.scenarios:
        example = scenario.example
        assert example is not None  # every scenario of an outline comes from a row
        outline_cases.extend(
            _cases(ctx, scenario, background, title=item.title, row=rows[example.loc.line], loc=example.loc)
        )
    return LoweredScenario(item.title, title_loc, item.tags, outline_cases)


def _title_loc(ctx: Context, loc: Loc) -> Loc:
    """Where the `scenario` keyword is: a scenario's location starts at its tags, reports point at its title."""
    for number in range(loc.line, len(ctx.lines) + 1):
        line = ctx.line(number)
        stripped = line.lstrip()
        if stripped.startswith(_SCENARIO_KEYWORD):
            return Loc(loc.file, number, len(line) - len(stripped) + 1)
    return loc


def _cases(
    ctx: Context,
    scenario: ast.Scenario,
    background: tuple[ast.Setting, ...],
    *,
    title: str,
    row: int | None,
    loc: Loc,
) -> tuple[Case, ...]:
    configured = configure(ctx, background + scenario.settings)
    if not configured.policies:
        raise ctx.error(
            scenario.loc,
            f"scenario {title!r} names no policy to run under",
            expected="a `policies …` line in the scenario or in a background",
        )
    written = scenario.steps  # a property that filters the statements: taken once
    configured = _with_executed_code(ctx, written, configured)
    configured = _with_l1_exit_intercepts(ctx, written, configured)
    steps = arm_before_execute([lower_step(ctx, step, configured) for step in written])
    injects_from_l1 = any(isinstance(step, ast.InjectStep) and step.source is InjectionSource.L1 for step in written)
    if configured.vmcb12 and not injects_from_l1:
        steps.insert(0, l1_vmrun_from_vmcb12(configured))
    if not any(isinstance(step, engine.Reenter | engine.Run) for step in steps):
        # A story that never re-enters would leave a requeued event undelivered and read as "lost": play it out,
        # so that `guest executes int3; vectoring hits #PF intercepted; expect reinject …` means what it says.
        steps.append(engine.Run())
    cases = []
    for policy in configured.policies:
        program = engine.Program(
            setup=configured.setup,
            steps=tuple(steps),
            profile=configured.profile,
            policy=policy,
            options=configured.options,
        )
        checks = lower_expectations(ctx, scenario.expectations, policy, configured.policies)
        shown = scenario.title if scenario.title != title else ""
        cases.append(Case(title, loc, policy, row, program, checks, tags=scenario.tags, title=shown))
    return tuple(cases)


def arm_before_execute(steps: list[engine.Step]) -> list[engine.Step]:
    """`guest executes int3; vectoring hits #PF` → the engine's order: arm the fault, then execute.

    A scenario states what happens to the delivery of the event the guest just raised; the engine delivers that
    event while executing, so a fault must be armed before (`VectoringFault` cuts short the *next* delivery).
    Vectoring steps that directly follow an execute step move in front of it, in their order.
    """
    ordered: list[engine.Step] = []
    for step in steps:
        if isinstance(step, engine.VectoringFault) and ordered and isinstance(ordered[-1], engine.Execute):
            ordered.insert(len(ordered) - 1, step)
        else:
            ordered.append(step)
    return ordered


def _with_executed_code(ctx: Context, written: tuple[ast.Step, ...], configured: Configured) -> Configured:
    """`guest executes int3` as the first execute step places the instruction at RIP, or checks it is there.

    RIP may lie anywhere inside a `code at` block (after a `nop`, say): the bytes there are the instruction, and
    a block of its own would overlap it (the checker refuses overlapping blocks).
    """
    first = next((s for s in written if isinstance(s, ast.ExecuteStep)), None)
    if first is None or first.instruction is None:
        return configured
    setup = configured.setup
    address = linear(setup, setup.rip)
    wanted = code_bytes(ctx, first.instruction, address, setup.mode)
    holder = next((c for c in setup.code if c.address <= address < c.address + len(c.data)), None)
    if holder is None:
        code = (*setup.code, engine.CodeBytes(address, wanted))
        return attrs.evolve(configured, setup=attrs.evolve(setup, code=code))
    at_rip = holder.data[address - holder.address :][: len(wanted)]
    if at_rip != wanted:
        raise ctx.error(
            first.instruction.loc,
            f"the code at {address:#x} is {at_rip.hex(' ')}, not this instruction ({wanted.hex(' ')})",
            expected="the instruction that `code at` placed at RIP",
        )
    return configured


def _with_l1_exit_intercepts(ctx: Context, written: tuple[ast.Step, ...], configured: Configured) -> Configured:
    """`exit for hlt intercepted by L1` implies that L1 intercepts hlt."""
    reasons = tuple(
        exit_reason(ctx, step.reason) for step in written if isinstance(step, ast.ExitStep) and step.handler is Level.L1
    )
    if not reasons:
        return configured
    nesting = configured.setup.nesting or engine.Nesting()
    exits = nesting.intercepted_exits + tuple(r for r in reasons if r not in nesting.intercepted_exits)
    setup = attrs.evolve(configured.setup, nesting=attrs.evolve(nesting, intercepted_exits=exits))
    return attrs.evolve(configured, setup=setup)
