"""`svmdsl docs PATH… -o DIR [--check]`: the argument parser and the handler.

Wired into `dsl/runtime/cli.py`: `add_parser(commands)` next to the other sub-commands; the handler is stored
as the parser's `handler` default, so the dispatcher calls `args.handler(args)` when `args.command == "docs"`.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dsl.docs.build import BuildResult

EXIT_OK = 0
EXIT_STALE = 1
EXIT_USAGE = 2

_DESCRIPTION = """\
Run every scenario under PATH (files or folders) and write a static site into DIR: an index with the
policy × scenario matrix and one page per .svm file, as HTML and as Markdown, showing this run's verdicts.
Works offline; regenerating changes nothing unless a scenario or a result changed."""


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `docs` to the `svmdsl` sub-commands (`subparsers` is what `add_subparsers()` returned)."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "docs",
        help="write the spec-by-example site (HTML + Markdown) with this run's verdicts",
        description=_DESCRIPTION,
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help=".svm files or folders (searched recursively)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder of the site")
    parser.add_argument(
        "--check", action="store_true", help="write nothing; print what is stale and exit 1 if anything is"
    )
    parser.set_defaults(handler=docs_command)
    return parser


def docs_command(args: argparse.Namespace) -> int:
    """Build (or check) the site; print a summary. A bad path raises `PathProblem` for the CLI to report."""
    # Imported here so that `svmdsl --help` does not load the engine, Jinja2 and Pygments.
    from dsl.docs.build import build_site
    from dsl.docs.collect import DocsError
    from dsl.docs.output import OutputError

    try:
        result = build_site(tuple(args.paths), args.output, check=args.check)
    except (DocsError, OutputError) as problem:
        print(f"svmdsl docs: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    if result.checked:
        return _report_check(result)
    changes = result.changes
    print(
        f"svmdsl docs: {result.pages} pages in {result.out_dir}: {len(changes.added)} added, "
        f"{len(changes.changed)} updated, {len(changes.removed)} removed, {changes.unchanged} unchanged"
    )
    print(_verdicts(result))
    return EXIT_OK


def _report_check(result: BuildResult) -> int:
    if not result.stale:
        print(f"svmdsl docs: {result.out_dir} is up to date ({result.pages} pages)")
        return EXIT_OK
    changes = result.changes
    count = len(changes.added) + len(changes.changed) + len(changes.removed)
    print(f"svmdsl docs: {result.out_dir} is stale: {count} file(s) differ (run without --check to update)")
    sys.stdout.write(changes.summary())
    return EXIT_STALE


def _verdicts(result: BuildResult) -> str:
    parts = [f"{result.cases} cases", f"{result.failed} failed", f"{result.errors} could not run"]
    if result.broken_files:
        parts.append(f"{result.broken_files} file(s) with errors")
    parts.append(f"{result.divergences} diverge from architectural")
    return "svmdsl docs: the pages show " + ", ".join(parts)
