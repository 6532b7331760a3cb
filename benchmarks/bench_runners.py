"""Benchmark of the runners (issue 4): `svmdsl run` and direct pytest collection against plain pytest.

For 1,000 and 10,000 generated scenarios (one case each), measured in one run on this machine:

- baseline: plain pytest running the same number of trivial tests (`def test_n(): pass`);
- direct:   pytest collecting and running the `.svm` files through the svmdsl plugin;
- svmdsl:   `svmdsl run` on the same files;

each of the last two `cold`, with an empty lowered-file cache (every file parsed, as on a fresh clone), and `warm`,
with the cache a previous run left (files read back, as in every later run; see `dsl.runtime.disk_cache`).

It prints seconds and the ratio to the baseline (per test: both sides run `size` of them), twice: wall-clock
time, and the CPU time of the command's processes (user + system, worker processes included), which a busy shared
machine disturbs less. Goals: direct ≤ 1.0×, svmdsl ≤ 0.5×. Every command runs in a fresh process (start-up
included, as a user sees it); each of `--repeat` rounds runs every command once, and the best of each is kept. The
baseline runs with `-p no:svmdsl`: plain pytest, without even svmdsl's plugin module. With two sizes or more, a last
line gives the wall time per test from the smallest size to the largest: the cost per scenario with start-up taken
out.

svmdsl's modules are byte-compiled first, as pip does when it installs a package (pytest's own modules are). An
editable install in an environment that sets PYTHONDONTWRITEBYTECODE, as this project's machines do, would
otherwise compile every svmdsl module again in every process: about 0.03 s of start-up for the pytest plugin and
0.05 s for `svmdsl run` that an installed svmdsl does not pay.

    python benchmarks/bench_runners.py [--sizes 1000 10000] [--repeat 1]
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs

import dsl

#: Scenarios (or trivial tests) per file, so that per-file costs are part of both sides alike.
PER_FILE = 100
GOAL_DIRECT = 1.0
GOAL_SVMDSL = 0.5

SCENARIO = """\
@bench
scenario "INT3 number {n}":
  source "EX-05"
  rip {rip:#x}
  code at {rip:#x}: int3
  guest executes int3
  run
  expect delivered #BP with return rip={ret:#x}

"""
TRIVIAL = "def test_{n}() -> None:\n    pass\n\n\n"
#: The lowered-file cache (`dsl.runtime.disk_cache`), one folder per runner inside the corpus folder.
CACHE_VARIABLE = "SVMDSL_CACHE_DIR"
INI = "[pytest]\nsvm_paths = scenarios\naddopts = -p no:cacheprovider\n"


def write_corpus(root: Path, size: int) -> None:
    """`size` scenarios in `root/scenarios/` and `size` trivial tests in `root/trivial/`, PER_FILE per file."""
    (root / "scenarios").mkdir(parents=True)
    (root / "trivial").mkdir()
    (root / "pytest.ini").write_text(INI)
    for first in range(0, size, PER_FILE):
        numbers = range(first, min(first + PER_FILE, size))
        header = "background:\n  policies architectural\n\n"
        body = "".join(SCENARIO.format(n=n, rip=0x1000 + 0x10 * n, ret=0x1001 + 0x10 * n) for n in numbers)
        (root / "scenarios" / f"bench_{first:06d}.svm").write_text(header + body)
        (root / "trivial" / f"test_trivial_{first:06d}.py").write_text("".join(TRIVIAL.format(n=n) for n in numbers))


@attrs.frozen
class Timing:
    """Wall-clock and CPU time (user + system of the command's processes) of a run, or the best of several."""

    wall: float
    cpu: float

    def best(self, other: Timing) -> Timing:
        return Timing(min(self.wall, other.wall), min(self.cpu, other.cpu))


UNMEASURED = Timing(float("inf"), float("inf"))


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@attrs.frozen
class Command:
    """One column of the report: a command, the lowered-file cache it uses, and whether that is emptied first."""

    argv: tuple[str, ...]
    cache: Path
    cold: bool = False

    def timed(self, cwd: Path) -> Timing:
        """The times of one run (which must succeed)."""
        env = {**os.environ, "NO_COLOR": "1", CACHE_VARIABLE: str(self.cache)}
        if self.cold:
            shutil.rmtree(self.cache, ignore_errors=True)
        start, start_cpu = time.perf_counter(), _children_cpu()
        completed = subprocess.run(self.argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        timing = Timing(time.perf_counter() - start, _children_cpu() - start_cpu)
        if completed.returncode != 0:
            raise SystemExit(f"benchmark command failed: {' '.join(self.argv)}\n{completed.stdout[-2000:]}")
        return timing


#: The columns of the report, in order.
RUNS = ("plain pytest", "direct cold", "direct warm", "svmdsl cold", "svmdsl warm")


def bench(size: int, repeat: int) -> tuple[Timing, ...]:
    """The best timings of RUNS over `repeat` rounds on a fresh corpus of `size` scenarios.

    Each round runs every command once, in RUNS order (a warm run reads what the cold run before it stored): a
    machine that gets faster or slower meanwhile weighs on every column alike, not on whichever ran then.
    """
    svmdsl = (str(Path(sys.executable).parent / "svmdsl"), "run", "scenarios")
    pytest = (sys.executable, "-m", "pytest", "-q")
    root = Path(tempfile.mkdtemp(prefix=f"bench-runners-{size}-"))
    pytest_cache, run_cache = root / "pytest-cache", root / "run-cache"
    commands = (
        Command((*pytest, "-p", "no:svmdsl", "trivial"), pytest_cache),
        Command((*pytest, "scenarios"), pytest_cache, cold=True),
        Command((*pytest, "scenarios"), pytest_cache),
        Command(svmdsl, run_cache, cold=True),
        Command(svmdsl, run_cache),
    )
    best = [UNMEASURED] * len(commands)
    try:
        write_corpus(root, size)
        for _ in range(repeat):
            best = [so_far.best(command.timed(root)) for so_far, command in zip(best, commands, strict=True)]
        return tuple(best)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def compile_svmdsl() -> None:
    """Write the bytecode of svmdsl's modules (a no-op where it is up to date, as in an installed package)."""
    compileall.compile_dir(Path(dsl.__file__).parent, quiet=1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000])
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args()
    compile_svmdsl()
    results = [(size, bench(size, args.repeat)) for size in args.sizes]
    for clock in ("wall", "cpu"):
        print(f"{clock + ' time':<9}" + "".join(f"  {run:>16}" for run in RUNS))
        for size, timings in results:
            seconds = [getattr(timing, clock) for timing in timings]
            baseline = seconds[0]
            cells = [f"{baseline:>15.2f}s"] + [f"{t:>7.2f}s {t / baseline:>6.2f}×" for t in seconds[1:]]
            print(f"{size:>9}" + "".join(f"  {cell:>16}" for cell in cells))
    if len(results) > 1:
        print(_marginal(results[0], results[-1]))
    print(f"goals: direct ≤ {GOAL_DIRECT}× plain pytest per test, svmdsl run ≤ {GOAL_SVMDSL}×")
    return 0


def _marginal(small: tuple[int, tuple[Timing, ...]], large: tuple[int, tuple[Timing, ...]]) -> str:
    """Wall time per test from the smallest size to the largest: the per-scenario cost without start-up."""
    (few, first), (many, last) = small, large
    each = [(b.wall - a.wall) / (many - few) for a, b in zip(first, last, strict=True)]
    cells = [f"{each[0] * 1e3:>13.3f}ms"] + [f"{t * 1e3:>6.3f}ms {t / each[0]:>6.2f}×" for t in each[1:]]
    return f"{'per test':<9}" + "".join(f"  {cell:>16}" for cell in cells) + f"  (wall, {few:,} → {many:,})"


if __name__ == "__main__":
    sys.exit(main())
