"""The two ways to search the space: exhaustive (serial, or chunked over a process pool) and random (Hypothesis).

Parallelism stays on one machine (`concurrent.futures`); beyond one machine the space runs as pytest cases under
pytest-xdist (`dsl.explore.pytest_space`), not through a distribution of our own.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from typing import TYPE_CHECKING

import attrs

from dsl.engine import run as engine_run
from dsl.engine.errors import EngineError
from dsl.engine.vocab import PolicyName
from dsl.explore.axes import AXES
from dsl.explore.findings import ClassKey, ClassTally, Exploration, RunProgram, Tally, compare, tally
from dsl.explore.space import Configuration, Space, applicable

if TYPE_CHECKING:
    from hypothesis.strategies import SearchStrategy

#: Configurations per task sent to a worker: large enough that pickling is noise, small enough to balance.
CHUNK_SIZE = 200
#: Tasks kept in flight per worker, so the generator is consumed lazily however large the space.
IN_FLIGHT_PER_WORKER = 4

#: Examples `find` may try to meet a class again before shrinking it (the sample may have been lucky).
MIN_SHRINK_EXAMPLES = 50
#: Sampling rounds random mode may take to collect the distinct configurations asked for.
MAX_SAMPLING_ROUNDS = 8

#: Called with how many more configurations are done (progress display).
Advance = Callable[[int], None]


def _chunks(configs: Iterable[Configuration], size: int) -> Iterator[tuple[Configuration, ...]]:
    iterator = iter(configs)
    while chunk := tuple(itertools.islice(iterator, size)):
        yield chunk


def explore_exhaustive(
    space: Space,
    policies: tuple[PolicyName, ...],
    reference: PolicyName = PolicyName.ARCHITECTURAL,
    *,
    jobs: int = 1,
    run: RunProgram = engine_run,
    advance: Advance | None = None,
) -> Exploration:
    """Every applicable configuration of `space` under every policy, compared with `reference`."""
    return explore_configurations(space.configurations(), policies, reference, jobs=jobs, run=run, advance=advance)


def explore_configurations(
    configs: Iterable[Configuration],
    policies: tuple[PolicyName, ...],
    reference: PolicyName = PolicyName.ARCHITECTURAL,
    *,
    jobs: int = 1,
    run: RunProgram = engine_run,
    advance: Advance | None = None,
) -> Exploration:
    """`configs` under every policy, compared with `reference`: in this process, or chunked over `jobs` workers."""
    found = Tally()
    chunks = _chunks(configs, CHUNK_SIZE)
    if jobs <= 1:
        for chunk in chunks:
            found = found.merge(tally(chunk, policies, reference, run))
            if advance is not None:
                advance(len(chunk))
        return Exploration.from_tally(found, policies, reference)
    limit = jobs * IN_FLIGHT_PER_WORKER
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        pending: dict[Future[Tally], int] = {}

        def collect(until: int) -> Tally:
            merged = Tally()
            while len(pending) > until:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    merged = merged.merge(future.result())
                    finished = pending.pop(future)
                    if advance is not None:
                        advance(finished)
            return merged

        for chunk in chunks:
            pending[pool.submit(tally, chunk, policies, reference, run)] = len(chunk)
            found = found.merge(collect(until=limit - 1))
        found = found.merge(collect(until=0))
    return Exploration.from_tally(found, policies, reference)


class HypothesisMissing(RuntimeError):
    """Random mode needs Hypothesis, which is not installed."""


def explore_random(
    space: Space,
    policies: tuple[PolicyName, ...],
    reference: PolicyName = PolicyName.ARCHITECTURAL,
    *,
    examples: int = 200,
    seed: int = 0,
    run: RunProgram = engine_run,
    advance: Advance | None = None,
) -> Exploration:
    """`examples` random configurations of `space`; each class found is then shrunk by Hypothesis to a minimal case.

    Counts are over the random sample. Deterministic for a given seed (derandomized, no example database).
    """
    try:
        from hypothesis import HealthCheck, Phase, find, given, settings
        from hypothesis import seed as hypothesis_seed
        from hypothesis.errors import NoSuchExample
    except ImportError as missing:  # Hypothesis comes with the test extra only
        raise HypothesisMissing(
            "svmdsl explore --random needs Hypothesis: pip install 'svm-dsl[explore]' (or pip install hypothesis)"
        ) from missing

    configurations = _strategy(space)
    sampled: list[Configuration] = []
    quiet = settings(
        max_examples=examples,
        database=None,
        derandomize=False,
        deadline=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )

    @quiet
    @given(configurations)
    def sample(config: Configuration) -> None:
        sampled.append(config)

    # Hypothesis repeats examples and gives up early on a strongly filtered space: sample again with derived
    # seeds until `examples` distinct configurations are in hand (or the space seems smaller than that).
    distinct: dict[Configuration, None] = {}
    for round_number in range(MAX_SAMPLING_ROUNDS):
        before = len(distinct)
        hypothesis_seed(seed * MAX_SAMPLING_ROUNDS + round_number)(sample)()
        distinct.update(dict.fromkeys(sampled))
        if len(distinct) >= examples or len(distinct) == before:
            break
    found = Tally()
    for config in list(distinct)[:examples]:
        found = found.merge(tally((config,), policies, reference, run))
        if advance is not None:
            advance(1)
    # No explain phase: it re-runs every shrunk example many times to annotate a report nobody prints here.
    shrink = settings(
        max_examples=max(examples, MIN_SHRINK_EXAMPLES),
        database=None,
        derandomize=True,
        deadline=None,
        phases=(Phase.generate, Phase.shrink),
        suppress_health_check=list(HealthCheck),
    )
    shrunk: dict[ClassKey, ClassTally] = {}
    for key, summary in found.classes.items():

        def shows(config: Configuration, key: ClassKey = key) -> bool:
            return _shows(config, key, reference, run)

        try:
            minimal = find(configurations, shows, settings=shrink)
        except NoSuchExample:
            minimal = summary.example  # found by sampling but not again while shrinking: keep the sampled one
        best = simplify(min(minimal, summary.example, key=lambda c: c.rank), key, space, reference, run)
        shrunk[key] = ClassTally(summary.count, summary.confirmed, best)
    return Exploration.from_tally(Tally(shrunk, found.explored, found.skipped, found.refusals), policies, reference)


def simplify(
    config: Configuration, key: ClassKey, space: Space, reference: PolicyName, run: RunProgram
) -> Configuration:
    """Finish Hypothesis' shrink: move one axis at a time to a simpler selected value while the class persists.

    Hypothesis shrinks the draws in order, so it cannot trade a later axis for an earlier one; this descent stops
    only where no single axis can be simplified (a local minimum in the axes' order).
    """
    improved = True
    while improved:
        improved = False
        for axis in AXES:
            values = space.values(axis.name)
            current = config.value(axis.name)
            for value in values[: values.index(current)]:
                candidate = attrs.evolve(config, **{axis.name: value})
                if applicable(candidate) and _shows(candidate, key, reference, run):
                    config, improved = candidate, True
                    break
    return config


def _shows(config: Configuration, key: ClassKey, reference: PolicyName, run: RunProgram) -> bool:
    try:
        return key.divergence in compare(config, key.policy, reference, run).divergences
    except EngineError:
        return False


def _strategy(space: Space) -> SearchStrategy[Configuration]:
    """Configurations of `space`: each axis sampled from its selected values (shrinking towards the first)."""
    from hypothesis import strategies

    fields = {axis.name: strategies.sampled_from(space.values(axis.name)) for axis in AXES}
    return strategies.builds(Configuration, **fields).filter(applicable)
