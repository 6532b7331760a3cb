"""Searching: refusals and engine defects are counted, not fatal; the random mode honours its seed."""

from __future__ import annotations

from dsl.engine import EngineError, Program, Result, run
from dsl.engine.vocab import CpuMode, PolicyName
from dsl.explore.search import explore_exhaustive, explore_random
from dsl.explore.space import Space, parse_restriction

KVM_6_0 = PolicyName.KVM_6_0
SPACE = parse_restriction("source=instruction", parse_restriction("protection=none", Space.default()))


def refuse_compat32(program: Program) -> Result:
    if program.setup.mode is CpuMode.COMPAT_32:
        raise EngineError("setup.mode", program.setup.mode.value, "a mode this stand-in accepts")
    return run(program)


def crash_in_protected32(program: Program) -> Result:
    if program.setup.mode is CpuMode.PROTECTED_32:
        raise ZeroDivisionError("a defect")
    return run(program)


def test_a_configuration_the_engine_refuses_is_counted_with_the_reason() -> None:
    space = parse_restriction("mode=long64,compat32", SPACE)
    found = explore_exhaustive(space, (KVM_6_0,), run=refuse_compat32)
    refused = sum(1 for c in space.configurations() if c.mode == CpuMode.COMPAT_32.value)
    assert refused > 0
    assert found.skipped == refused
    assert found.explored == space.size() - refused
    assert "setup.mode = compat32: expected a mode this stand-in accepts" in found.refusals[0]


def test_an_engine_defect_in_one_configuration_does_not_end_the_exploration() -> None:
    space = parse_restriction("mode=long64,protected32", SPACE)
    found = explore_exhaustive(space, (KVM_6_0,), run=crash_in_protected32)
    assert found.explored > 0
    assert found.skipped > 0
    assert found.refusals[0].startswith("engine defect: ZeroDivisionError('a defect')")


def test_the_random_mode_is_reproducible_for_a_seed() -> None:
    space = parse_restriction("mode=long64", parse_restriction("source=userspace-unbacked", SPACE))
    first = explore_random(space, (KVM_6_0,), examples=20, seed=7)
    assert first == explore_random(space, (KVM_6_0,), examples=20, seed=7)
    assert first.explored == min(20, space.size())  # distinct configurations, as many as asked for
