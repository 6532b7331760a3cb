"""Every configuration written as `.svm` lowers back to the very program that was explored.

This is what lets a counterexample reproduce under `svmdsl run`: the text is generated from the program (set-up
and steps), and the language's front end must read it back unchanged — including its own conventions, such as
arming a `vectoring hits` written after `guest executes` before the execution.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from dsl.compiler.lower import lower_file
from dsl.engine.vocab import PolicyName
from dsl.explore.axes import AXES
from dsl.explore.build import build_program
from dsl.explore.render import setup_lines, step_lines
from dsl.explore.space import Configuration, applicable

configurations = st.builds(Configuration, **{axis.name: st.sampled_from(axis.values) for axis in AXES}).filter(
    applicable
)


@given(configurations)
def test_a_configuration_reads_back_as_the_same_program(config: Configuration) -> None:
    program = build_program(config, PolicyName.KVM_6_0)
    lines = ["policies kvm-6.0", *setup_lines(program), *step_lines(program)]
    text = 'scenario "round trip":\n' + "".join(f"  {line}\n" for line in lines)
    (scenario,) = lower_file(text, "roundtrip.svm").scenarios
    (case,) = scenario.cases
    assert case.program == program, text
