"""`svmdsl explore`: search the configuration space, print the divergence table, write counterexamples.

Wired into `dsl/runtime/cli.py` by `add_parser(commands)`; the parser stores the handler as `args.handler`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from dsl.engine.vocab import PolicyName, policy_by_name, policy_names
from dsl.explore.axes import AXES, AXIS_NAMES
from dsl.explore.space import AxisError, Space, parse_restriction

if TYPE_CHECKING:
    from dsl.explore.findings import Exploration

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_INTERNAL = 3
DEFAULT_POLICIES: tuple[str, ...] = ("kvm-5.19", "kvm-6.0", "kvm-mainline")

_DESCRIPTION = """\
Run every configuration of the selected space under each policy and under the reference (architectural unless
--against names another policy), group the differences into divergence classes, print one row per class, and
write one minimal .svm counterexample per class into DIR (which `svmdsl run DIR` runs as is)."""


def _restriction(text: str) -> str:
    """argparse type: check `NAME=v1,v2` early, so a typo is a usage error naming the axis and its values."""
    try:
        parse_restriction(text, Space.default())
    except AxisError as problem:
        raise argparse.ArgumentTypeError(str(problem)) from None
    return text


def _axes_epilog() -> str:
    lines = ["axes (default selection in brackets; NAME=all selects every value):"]
    width = max(len(axis.name) for axis in AXES)
    for axis in AXES:
        values = ", ".join(f"[{v}]" if v in axis.default else v for v in axis.values)
        lines.append(f"  {axis.name:<{width}}  {values}")
    return "\n".join(lines)


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    """Add `explore` to the `svmdsl` sub-commands."""
    parser = subparsers.add_parser(
        "explore",
        help="search the configuration space for divergences from architectural",
        description=_DESCRIPTION,
        epilog=_axes_epilog(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="NAME",
        choices=policy_names(),
        help=f"a policy to explore (repeatable; default: {', '.join(DEFAULT_POLICIES)})",
    )
    parser.add_argument(
        "--against",
        default=PolicyName.ARCHITECTURAL.value,
        metavar="NAME",
        choices=policy_names(),
        help="the reference every policy is compared with (default: architectural)",
    )
    parser.add_argument(
        "--axis",
        action="append",
        default=[],
        type=_restriction,
        metavar="NAME=V1,V2",
        help="restrict (or widen) one axis to these values (repeatable; see the list below)",
    )
    parser.add_argument(
        "--random",
        type=int,
        default=0,
        metavar="N",
        help="sample N random configurations (Hypothesis) and shrink each class to a minimal case",
    )
    parser.add_argument("--seed", type=int, default=0, metavar="N", help="the random mode's seed (default 0)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=0,
        metavar="N",
        help="worker processes for exhaustive mode (default: one per core)",
    )
    parser.add_argument("-o", "--output", metavar="DIR", help="write one .svm counterexample per class into DIR")
    parser.add_argument("--markdown", action="store_true", help="print the table as Markdown (docs/exploration.md)")
    parser.add_argument(
        "--update",
        action="append",
        default=[],
        metavar="FILE",
        help="replace the Markdown table between the explore-table markers in FILE (repeatable)",
    )
    parser.set_defaults(handler=explore_command)
    return parser


def build_space(restrictions: list[str]) -> Space:
    space = Space.default()
    for text in restrictions:
        space = parse_restriction(text, space)
    return space


def _policies(names: list[str]) -> tuple[PolicyName, ...]:
    chosen = [policy_by_name(name) for name in (names or DEFAULT_POLICIES)]
    return tuple(dict.fromkeys(p for p in chosen if p is not None))


def explore_command(args: argparse.Namespace) -> int:
    """Run the exploration the arguments describe; 0 on success whatever was found, 2 on bad usage."""
    # The engine, the language front end and Hypothesis load here, so that `svmdsl --help` stays fast.
    from dsl.engine import run as engine_run
    from dsl.explore.counterexample import CounterexampleError, counterexamples, write
    from dsl.explore.search import HypothesisMissing
    from dsl.explore.table import TableError, render_markdown, render_text

    try:
        space = build_space(args.axis)
    except AxisError as problem:
        print(f"svmdsl explore: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    reference = policy_by_name(args.against) or PolicyName.ARCHITECTURAL
    policies = tuple(p for p in _policies(args.policy) if p is not reference)
    if not policies:
        print("svmdsl explore: error: no policy to compare with the reference", file=sys.stderr)
        return EXIT_USAGE
    if args.random < 0 or args.jobs < 0:
        print("svmdsl explore: error: --random and --jobs take a number >= 0", file=sys.stderr)
        return EXIT_USAGE
    if next(space.configurations(), None) is None:
        print(
            f"svmdsl explore: error: the selected axes leave no configuration to explore ({_why_empty(space)})",
            file=sys.stderr,
        )
        return EXIT_USAGE
    try:
        exploration = _explore(args, space, policies, reference)
    except HypothesisMissing as problem:
        print(f"svmdsl explore: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    sys.stdout.write(render_markdown(exploration) if args.markdown else render_text(exploration))
    for name in args.update:
        try:
            _update(Path(name), render_markdown(exploration))
        except (OSError, TableError) as problem:
            print(f"svmdsl explore: error: {name}: {problem}", file=sys.stderr)
            return EXIT_USAGE
    if args.output:
        folder = Path(args.output)
        try:
            paths = write(folder, counterexamples(exploration, engine_run, folder))
        except CounterexampleError as bug:
            print(f"svmdsl explore: internal error: {bug}", file=sys.stderr)
            return EXIT_INTERNAL
        print(f"{len(paths)} counterexample(s) in {folder} (run them: svmdsl run {folder})", file=sys.stderr)
    return EXIT_OK


def _explore(
    args: argparse.Namespace, space: Space, policies: tuple[PolicyName, ...], reference: PolicyName
) -> Exploration:
    from dsl.explore.search import explore_exhaustive, explore_random
    from dsl.runtime.session import available_cores
    from dsl.runtime.term import Progress

    total = args.random if args.random else space.size()
    progress = Progress(sys.stderr, total=total, label="svmdsl explore")
    try:
        if args.random:
            return explore_random(
                space, policies, reference, examples=args.random, seed=args.seed, advance=progress.advance
            )
        jobs = args.jobs or available_cores()
        return explore_exhaustive(space, policies, reference, jobs=jobs, advance=progress.advance)
    finally:
        progress.finish()


def _why_empty(space: Space) -> str:
    """The exclusion that rules out the simplest selected combination (a hint for the user)."""
    from dsl.explore.space import Configuration, exclusion

    simplest = Configuration(**{name: space.values(name)[0] for name in AXIS_NAMES})
    return exclusion(simplest) or "no combination is applicable"


def _update(path: Path, table: str) -> None:
    """Rewrite the marked table in `path` (only when it changed)."""
    from dsl.explore.table import replace_table

    text = path.read_text(encoding="utf-8")
    updated = replace_table(text, table)
    if updated != text:
        path.write_text(updated, encoding="utf-8")
