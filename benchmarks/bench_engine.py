"""Engine throughput: scenario executions per second against a trivial baseline measured in the same run.

Run as `python benchmarks/bench_engine.py`. Prints ratios only; nothing here asserts on time. The scenarios are
the headline worked examples (EX-01, EX-02, EX-21, EX-39) under kvm-6.0 and kvm-7.1, and the case
benchmarks/bench_runners.py writes thousands of (INT3, run, #BP delivered, architectural); the baseline builds the
same Program and runs a do-nothing function, so the ratio shows what the model itself costs.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from dsl.engine import (
    CodeBytes,
    Event,
    Execute,
    ExitFor,
    Inject,
    L1Vmrun,
    Nesting,
    Program,
    Run,
    Setup,
    VectoringFault,
    run,
)
from dsl.engine.vocab import EventType, ExitCode, FaultKind, InjectionSource, PolicyName, Vector

#: Enough repetitions for a stable rate on a shared two-core machine, short enough for a quick check.
ROUNDS = 4000
TARGET_PER_SECOND = 20_000


def scenarios() -> tuple[tuple[str, Program], ...]:
    int3 = Setup(code=(CodeBytes(0x1000, b"\xcc"),))
    bp = Event(Vector.BP, EventType.EXCEPTION)
    return (
        ("EX-01 kvm-6.0", Program(int3, (VectoringFault(FaultKind.PF), Execute(), Run()), policy=PolicyName.KVM_6_0)),
        (
            "EX-02 kvm-7.1",
            Program(
                int3,
                (VectoringFault(FaultKind.PF), VectoringFault(FaultKind.PF), Execute(), Run()),
                policy=PolicyName.KVM_7_1,
            ),
        ),
        (
            "EX-21 kvm-5.19",
            Program(
                int3, (ExitFor(ExitCode.NPF), Inject(InjectionSource.USERSPACE, bp), Run()), policy=PolicyName.KVM_5_19
            ),
        ),
        (
            "EX-39 kvm-7.1",
            Program(
                Setup(nesting=Nesting()),
                (L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002), VectoringFault(FaultKind.NPF), Run()),
                policy=PolicyName.KVM_7_1,
            ),
        ),
        ("runner case arch", Program(int3, (Execute(), Run()), policy=PolicyName.ARCHITECTURAL)),
    )


def _rate(action: Callable[[], object], rounds: int) -> float:
    start = time.process_time()  # CPU time: the machine is shared, wall time is noisy
    for _ in range(rounds):
        action()
    return rounds / max(time.process_time() - start, 1e-9)


def _baseline(program: Program) -> object:
    """A trivial stand-in for `run`: touches the program and returns."""
    return program.policy


def main() -> None:
    print(f"{'scenario':<18} {'runs/s':>10} {'baseline/s':>12} {'ratio':>8} {'vs 20k/s':>9}")
    for name, program in scenarios():
        run(program)  # warm the decode cache
        rate = _rate(lambda program=program: run(program), ROUNDS)
        baseline = _rate(lambda program=program: _baseline(program), ROUNDS)
        print(f"{name:<18} {rate:>10.0f} {baseline:>12.0f} {baseline / rate:>7.0f}x {rate / TARGET_PER_SECOND:>8.2f}")


if __name__ == "__main__":
    main()
