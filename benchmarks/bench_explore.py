"""Exploration throughput: configurations explored per second against a baseline measured in the same run.

Run as `python benchmarks/bench_explore.py [N]` (N configurations of the default space, 3000 unless given). Prints
rates and ratios only; nothing here asserts on time. The baseline runs the engine on the very programs exploration
runs (one per policy plus the reference) and does nothing else, so "serial / baseline" is what building,
comparing and tallying cost on top of the model, and "parallel / serial" what the process pool gains.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable

from dsl.engine import Program, run
from dsl.engine.vocab import PolicyName
from dsl.explore.build import build_program
from dsl.explore.search import explore_configurations
from dsl.explore.space import Space

POLICIES = (PolicyName.KVM_5_19, PolicyName.KVM_6_0, PolicyName.KVM_7_1)
DEFAULT_COUNT = 3000
ROUNDS = 3
WARM_UP = 200


def _timed(work: Callable[[], object]) -> float:
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _run_all(programs: list[Program]) -> None:
    """The baseline: the engine alone, results dropped at once (as exploration drops them after comparing)."""
    for program in programs:
        run(program)


def main(count: int) -> None:
    configs = tuple(itertools.islice(Space.default().configurations(), count))
    programs = [build_program(c, p) for c in configs for p in (*POLICIES, PolicyName.ARCHITECTURAL)]
    jobs = os.cpu_count() or 1

    _run_all(programs[:WARM_UP])  # imports, caches: not part of any measurement
    # Best of ROUNDS, interleaved, so that load from other processes on a shared machine hits all three alike.
    baseline = serial = parallel = float("inf")
    for _ in range(ROUNDS):
        baseline = min(baseline, _timed(lambda: _run_all(programs)))
        serial = min(serial, _timed(lambda: explore_configurations(configs, POLICIES, jobs=1)))
        parallel = min(parallel, _timed(lambda: explore_configurations(configs, POLICIES, jobs=jobs)))

    rate = {name: len(configs) / seconds for name, seconds in (("baseline", baseline), ("serial", serial))}
    rate["parallel"] = len(configs) / parallel
    print(f"{len(configs)} configurations, {len(POLICIES)} policies + architectural, {jobs} core(s)")
    for name, value in rate.items():
        print(f"  {name:<9} {value:9.0f} configurations/s")
    print(f"  serial / baseline   {rate['serial'] / rate['baseline']:.2f}")
    print(f"  parallel / serial   {rate['parallel'] / rate['serial']:.2f}")
    print(
        f"  default space ({Space.default().size()} configurations) at the parallel rate: "
        f"{Space.default().size() / rate['parallel']:.1f} s"
    )


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_COUNT)
