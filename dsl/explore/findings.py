"""What an exploration found: per policy and divergence class, how many configurations show it and the simplest one.

`Tally` is the mergeable summary a worker returns for its chunk (small, picklable); `Exploration` is the final,
sorted result the table and the counterexamples are made from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

from dsl.engine.errors import EngineError
from dsl.engine.program import Program
from dsl.engine.result import Result
from dsl.engine.vocab import PolicyName
from dsl.explore.build import build_program, subject_event, with_policy
from dsl.explore.compare import Divergence, classify
from dsl.explore.space import Configuration

#: The engine entry point, or a stand-in (a planted policy in the tests): Program → Result.
RunProgram = Callable[[Program], Result]


@attrs.frozen
class ClassKey:
    """A divergence class of one policy."""

    policy: PolicyName
    divergence: Divergence


@attrs.frozen
class ClassTally:
    """How many configurations show the class, how many of them rest on confirmed rules, and the simplest one."""

    count: int
    confirmed: int
    example: Configuration

    def merge(self, other: ClassTally) -> ClassTally:
        simplest = min(self.example, other.example, key=lambda c: c.rank)
        return ClassTally(self.count + other.count, self.confirmed + other.confirmed, simplest)


@attrs.frozen
class Tally:
    """The summary of some configurations: classes found, configurations explored and skipped."""

    classes: dict[ClassKey, ClassTally] = attrs.field(factory=dict)
    explored: int = 0
    skipped: int = 0
    #: One message per distinct reason the engine refused a configuration (capped), for the report.
    refusals: tuple[str, ...] = ()

    def merge(self, other: Tally) -> Tally:
        classes = dict(self.classes)
        for key, found in other.classes.items():
            classes[key] = classes[key].merge(found) if key in classes else found
        refusals = tuple(dict.fromkeys(self.refusals + other.refusals))[:MAX_REFUSALS]
        return Tally(classes, self.explored + other.explored, self.skipped + other.skipped, refusals)


MAX_REFUSALS = 10


@attrs.frozen
class Compared:
    """One configuration under one policy and the reference: the results and the classes they differ in."""

    config: Configuration
    policy: PolicyName
    actual: Result
    reference: Result
    divergences: tuple[Divergence, ...]


def compare(config: Configuration, policy: PolicyName, reference: PolicyName, run: RunProgram) -> Compared:
    """Run `config` under `policy` and `reference` and classify the difference (EngineError propagates)."""
    program = build_program(config, policy)
    actual = run(program)
    expected = run(with_policy(program, reference))
    divergences = classify(actual, expected, subject_event(config).vector)
    return Compared(config, policy, actual, expected, divergences)


def tally(
    configs: Iterable[Configuration], policies: tuple[PolicyName, ...], reference: PolicyName, run: RunProgram
) -> Tally:
    """Explore `configs` (in one process): run each under the reference once and under every policy."""
    classes: dict[ClassKey, ClassTally] = {}
    explored = skipped = 0
    refusals: list[str] = []
    for config in configs:
        try:
            expected = run(build_program(config, reference))
            results = [(policy, run(build_program(config, policy))) for policy in policies]
        except Exception as refused:  # one engine defect must not end a long exploration
            skipped += 1
            reason = str(refused) if isinstance(refused, EngineError) else f"engine defect: {refused!r}"
            reason = f"{reason} (at {config.describe()})"
            if len(refusals) < MAX_REFUSALS:
                refusals.append(reason)
            continue
        explored += 1
        subject = subject_event(config).vector
        for policy, actual in results:
            for divergence in classify(actual, expected, subject):
                key = ClassKey(policy, divergence)
                found = ClassTally(1, int(actual.confirmed), config)
                classes[key] = classes[key].merge(found) if key in classes else found
    return Tally(classes, explored, skipped, tuple(refusals))


@attrs.frozen
class Exploration:
    """The outcome of one exploration, classes sorted by policy (in the order asked) then class order."""

    policies: tuple[PolicyName, ...]
    reference: PolicyName
    classes: tuple[tuple[ClassKey, ClassTally], ...]
    explored: int
    skipped: int
    refusals: tuple[str, ...] = ()

    @classmethod
    def from_tally(cls, found: Tally, policies: tuple[PolicyName, ...], reference: PolicyName) -> Exploration:
        order = list(Divergence)
        ranked = sorted(
            found.classes.items(), key=lambda item: (policies.index(item[0].policy), order.index(item[0].divergence))
        )
        return cls(policies, reference, tuple(ranked), found.explored, found.skipped, found.refusals)

    def classes_of(self, policy: PolicyName) -> tuple[Divergence, ...]:
        return tuple(key.divergence for key, _ in self.classes if key.policy is policy)
