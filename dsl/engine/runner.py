"""`run(program) -> Result`: the engine's single entry point."""

from __future__ import annotations

from dsl.engine.errors import EngineError
from dsl.engine.program import Program
from dsl.engine.result import Result


def run(program: Program) -> Result:
    """Run one Program under its hardware profile and policy and return what was observed."""
    raise EngineError("policy", program.policy.value, "a policy the engine implements (work in progress)")
