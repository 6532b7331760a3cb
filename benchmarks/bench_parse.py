"""Parsing throughput: lines of `.svm` per second, next to a baseline measured in the same run.

Run as `python benchmarks/bench_parse.py [--lines 50000] [--repeat 3]`. Prints rates and ratios; nothing here
asserts on time. The corpus is generated: the language test corpus (every worked example and the selftest) is
repeated with renamed scenarios until it has the requested number of lines, in files of about 500 lines.

- baseline: `str.splitlines` plus a trivial regular-expression tokenizer over every line (what any line-based
  reader pays at least);
- parse:    `dsl.syntax.parse_text` (Lark LALR, contextual lexer, AST transformer, outline expansion);
- check:    parse + `dsl.compiler.check.check` (names, ranges, assembler, contradictions).

Goal: parse ≥ 20,000 lines/s.
"""

from __future__ import annotations

import argparse
import re
import time
from collections.abc import Callable
from pathlib import Path

from dsl.compiler.check import check
from dsl.syntax import parse_text

CORPUS = Path(__file__).parents[1] / "tests" / "syntax" / "corpus" / "valid"
TARGET_LINES_PER_SECOND = 20_000
LINES_PER_FILE = 500
_TOKEN = re.compile(r'"[^"\n]*"|#?[\w.\-]+|\S')
_TITLE = re.compile(r'^(\s*scenario(?: outline)? ")', re.MULTILINE)


def generated_files(total_lines: int) -> list[str]:
    """Corpus files without includes, titles made unique per copy, grouped into files of ~LINES_PER_FILE lines."""
    sources = [p.read_text() for p in sorted(CORPUS.glob("*.svm")) if "include " not in p.read_text()]
    files: list[str] = []
    current: list[str] = []
    lines = 0
    copy = 0
    while lines < total_lines:
        for source in sources:
            copy += 1
            current.append(_TITLE.sub(rf"\g<1>copy {copy}: ", source))
            count = source.count("\n")
            lines += count
            if sum(c.count("\n") for c in current) >= LINES_PER_FILE:
                files.append("".join(current))
                current = []
    if current:
        files.append("".join(current))
    return files


def baseline(text: str) -> int:
    """Split into lines and tokenize each with one regular expression."""
    return sum(len(_TOKEN.findall(line)) for line in text.splitlines())


def parse(text: str) -> int:
    return len(parse_text(text, "bench.svm").items)


def parse_and_check(text: str) -> int:
    return len(check(parse_text(text, "bench.svm")))


def rate(work: Callable[[str], int], files: list[str], repeat: int) -> float:
    """Best lines per second over `repeat` passes over all files."""
    lines = sum(f.count("\n") for f in files)
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for text in files:
            work(text)
        best = min(best, time.perf_counter() - start)
    return lines / best


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
    print(f"baseline (splitlines + regex tokens): {base:12,.0f} lines/s")
    for label, work in (("parse", parse), ("parse + check", parse_and_check)):
        measured = rate(work, files, options.repeat)
        verdict = "meets" if measured >= TARGET_LINES_PER_SECOND else "below"
        print(
            f"{label:36}: {measured:12,.0f} lines/s  ({base / measured:5.1f}× slower than the baseline; "
            f"{verdict} the {TARGET_LINES_PER_SECOND:,} lines/s goal)"
        )


if __name__ == "__main__":
    main()
