"""Parsing throughput: lines of `.svm` per second, next to a baseline measured in the same run.

Run as `python benchmarks/bench_parse.py [--lines 50000] [--repeat 3]`. Prints rates and ratios; nothing here
asserts on time. The corpus is generated: the language test corpus (every worked example and the selftest) is
repeated with renamed scenarios until it has the requested number of lines, in files of about 500 lines.

- baseline: `str.splitlines` plus a trivial regular-expression tokenizer over every line (what any line-based
  reader pays at least);
- parse:    `dsl.syntax.parse_text` (Lark's LALR tables run by lark-cython, contextual lexer, AST built inside
            the parser, outline expansion);
- check:    parse + `dsl.compiler.check.check` (names, ranges, assembler, contradictions).

Goal: parse ≥ 20,000 lines/s. Each rate is printed by the wall clock and per CPU-second of this process: on a
shared, loaded machine the second is the one that stays comparable between runs.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

import attrs

from dsl.compiler.check import check
from dsl.syntax import parse_text

CORPUS = Path(__file__).parents[1] / "tests" / "syntax" / "corpus" / "valid"
TARGET_LINES_PER_SECOND = 20_000
LINES_PER_FILE = 500
_TOKEN = re.compile(r'"[^"\n]*"|#?[\w.\-]+|\S')
_TITLE = re.compile(r'^(\s*scenario(?: outline)? ")', re.MULTILINE)
#: Where a corpus file's scenarios start: its first tag or scenario line.
_BODY = re.compile(r"^(@|scenario\b)", re.MULTILINE)
#: Generated files are parsed as if they sat in the corpus folder, so their includes resolve.
BENCH_FILE = str(CORPUS / "bench.svm")


def generated_files(total_lines: int) -> list[str]:
    """The corpus, titles made unique per copy, grouped into files of ~LINES_PER_FILE lines.

    A corpus file is a head (its `include` and `background:` lines, which apply to the whole file) and a body
    (its scenarios). Bodies with the same head share generated files, which repeat that head once: a file holds
    one background, as it must (a second is an error, and would have every scenario checked against both).
    """
    heads: dict[str, list[str]] = {}
    for path in sorted(CORPUS.glob("*.svm")):
        text = path.read_text()
        match = _BODY.search(text)
        if match is not None:  # a file without scenarios is only included
            heads.setdefault(text[: match.start()], []).append(text[match.start() :])
    files: list[str] = []
    pending = {head: [head] for head in heads}
    lines = 0
    copy = 0
    while lines < total_lines:
        for head, bodies in heads.items():
            for body in bodies:
                copy += 1
                pending[head].append(_TITLE.sub(rf"\g<1>copy {copy}: ", body))
                lines += body.count("\n")
            if sum(piece.count("\n") for piece in pending[head]) >= LINES_PER_FILE:
                files.append("".join(pending[head]))
                pending[head] = [head]
    files.extend("".join(pieces) for pieces in pending.values() if len(pieces) > 1)
    return files


def baseline(text: str) -> int:
    """Split into lines and tokenize each with one regular expression."""
    return sum(len(_TOKEN.findall(line)) for line in text.splitlines())


def parse(text: str) -> int:
    return len(parse_text(text, BENCH_FILE).items)


def parse_and_check(text: str) -> int:
    return len(check(parse_text(text, BENCH_FILE)))


@attrs.frozen
class Rate:
    """Best lines per second of one measurement, by the wall clock and by this process's CPU time.

    On a shared machine the wall-clock rate falls with the load; the CPU-time rate moves much less, so it is the
    one to compare between runs (the ratio to the baseline, measured in the same run, is meaningful for both).
    """

    wall: float
    cpu: float


def rate(work: Callable[[str], int], files: list[str], repeat: int) -> Rate:
    """Best lines per second over `repeat` passes over all files."""
    lines = sum(f.count("\n") for f in files)
    best_wall = best_cpu = float("inf")
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        for text in files:
            work(text)
        best_wall = min(best_wall, time.perf_counter() - wall)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return Rate(lines / best_wall, lines / best_cpu)


def main() -> None:
    arguments = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    arguments.add_argument("--lines", type=int, default=50_000, help="size of the generated corpus")
    arguments.add_argument("--repeat", type=int, default=3, help="passes per measurement (the best is kept)")
    options = arguments.parse_args()
    files = generated_files(options.lines)
    parse(files[0])  # build the parser (and Lark's grammar cache) outside the measurement
    total = sum(f.count("\n") for f in files)
    print(f"corpus: {total} lines in {len(files)} files")
    base = rate(baseline, files, options.repeat)
    print(f"{'baseline (splitlines + regex tokens)':36}: {base.wall:12,.0f} lines/s  {base.cpu:12,.0f} lines/CPU-s")
    for label, work in (("parse", parse), ("parse + check", parse_and_check)):
        measured = rate(work, files, options.repeat)
        verdict = "meets" if measured.cpu >= TARGET_LINES_PER_SECOND else "below"
        print(
            f"{label:36}: {measured.wall:12,.0f} lines/s  {measured.cpu:12,.0f} lines/CPU-s  "
            f"({base.cpu / measured.cpu:5.1f}× the baseline's CPU time; "
            f"{verdict} the {TARGET_LINES_PER_SECOND:,} lines/s goal)"
        )


if __name__ == "__main__":
    main()
