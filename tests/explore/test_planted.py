"""A divergence planted in a policy variant is found (exhaustive and random), and its counterexample reproduces it.

The variant is kvm-6.0 with one deliberate mistake: after learning the next RIP of an INTO (#OF) it writes a
next_rip one byte too far, so an NRIPS CPU pushes a wrong return address for a re-injected #OF (H-6, K-6.0-5).
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from dsl.engine import run
from dsl.engine.machine import Machine
from dsl.engine.policies import POLICIES
from dsl.engine.policies.kvm_6_0 import Kvm60
from dsl.engine.vocab import PolicyName, Vector
from dsl.explore.axes import AXES
from dsl.explore.compare import Divergence
from dsl.explore.counterexample import counterexamples, file_name, write
from dsl.explore.findings import ClassKey, compare
from dsl.explore.search import explore_exhaustive, explore_random
from dsl.explore.space import Configuration, Space, applicable, parse_restriction
from dsl.runtime.cli import main as svmdsl
from dsl.runtime.runner import run_case
from dsl.runtime.verdict import Verdict

KVM_6_0 = PolicyName.KVM_6_0
ARCHITECTURAL = PolicyName.ARCHITECTURAL
#: The simplest configuration that shows the planted mistake: a guest INTO (32-bit) cut short by an L0 #PF.
PLANTED_MINIMAL = Configuration(instruction="into", mode="protected32", vectoring="host")


class OffByOneInto(Kvm60):
    """kvm-6.0, except that the next_rip it writes for a re-injected #OF is one byte too far (planted)."""

    def update_soft_interrupt_rip(self, m: Machine, vector: int) -> bool:
        if not super().update_soft_interrupt_rip(m, vector):
            return False
        if vector == Vector.OF and m.cpu_nrips:
            m.vmcb.next_rip += 1
        return True


@pytest.fixture
def planted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(POLICIES, KVM_6_0, OffByOneInto())


def _space(*restrictions: str) -> Space:
    space = Space.default()
    for text in restrictions:
        space = parse_restriction(text, space)
    return space


#: A small space in which the real kvm-6.0 agrees with architectural everywhere.
SMALL = (
    "source=instruction",
    "instruction=int3,into",
    "mode=protected32",
    "cs_base=0x0",
    "profile=amd-nrips",
    "nrips=1",
    "second_exit=none",
    "code_change=none",
    "decode=ok",
    "debug=none",
    "shadow=none",
    "protection=none",
)


def test_the_real_kvm_6_0_agrees_with_architectural_in_the_small_space() -> None:
    """The control: without the planted mistake there is nothing to find (EX-03, EX-05, EX-06)."""
    found = explore_exhaustive(_space(*SMALL), (KVM_6_0,))
    assert found.explored > 0
    assert found.classes_of(KVM_6_0) == ()


@pytest.mark.usefixtures("planted")
def test_exhaustive_mode_finds_the_planted_wrong_return_address() -> None:
    found = explore_exhaustive(_space(*SMALL), (KVM_6_0,))
    assert found.classes_of(KVM_6_0) == (Divergence.WRONG_RETURN_ADDRESS,)
    ((_key, tally),) = found.classes
    assert tally.example == PLANTED_MINIMAL


@pytest.mark.usefixtures("planted")
def test_the_process_pool_finds_what_one_process_finds() -> None:
    space = _space(*SMALL[:2], "mode=protected32,compat32")
    assert explore_exhaustive(space, (KVM_6_0,), jobs=2) == explore_exhaustive(space, (KVM_6_0,), jobs=1)


@pytest.mark.usefixtures("planted")
def test_random_mode_shrinks_the_planted_divergence_to_a_minimal_case() -> None:
    """Hypothesis samples a wider space, then shrinks the class to a case where no axis can be simplified.

    Minimal here means: putting any axis back to its first value loses the divergence (or is not applicable).
    """
    space = _space(
        "source=instruction,userspace",
        "mode=long64,protected32,compat32",
        "protection=none",
        "decode=ok",
        "previous_exit=none",
        "code_change=none",  # the real kvm-6.0 pushes a wrong return address for rewritten code (EX-27)
    )
    found = explore_random(space, (KVM_6_0,), examples=80, seed=1)
    classes = dict(found.classes)
    key = ClassKey(KVM_6_0, Divergence.WRONG_RETURN_ADDRESS)
    assert key in classes
    example = classes[key].example
    assert key.divergence in compare(example, KVM_6_0, ARCHITECTURAL, run).divergences
    assert example.instruction == "into"
    for axis in AXES:
        simpler = attrs.evolve(example, **{axis.name: axis.values[0]})
        if simpler != example and applicable(simpler):
            assert key.divergence not in compare(simpler, KVM_6_0, ARCHITECTURAL, run).divergences, axis.name


def test_the_counterexample_reproduces_the_planted_mistake_under_svmdsl_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written under the planted variant, the file holds under it and fails under the real kvm-6.0."""
    with monkeypatch.context() as patch:
        patch.setitem(POLICIES, KVM_6_0, OffByOneInto())
        found = explore_exhaustive(_space(*SMALL), (KVM_6_0,))
        (path,) = write(tmp_path, counterexamples(found, run, tmp_path))
        assert path.name == file_name(ClassKey(KVM_6_0, Divergence.WRONG_RETURN_ADDRESS))
        assert svmdsl(["run", "--no-trace", str(path)]) == 0
    title = "kvm-6.0 vs architectural: wrong return address"
    assert run_case(path, title, "architectural").verdict is Verdict.HELD
    real = run_case(path, title, "kvm-6.0")
    assert real.verdict is Verdict.FAILED
    assert any("return rip" in mismatch.expectation for mismatch in real.mismatches)
