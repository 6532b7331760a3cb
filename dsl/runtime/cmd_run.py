"""`svmdsl run`: run scenarios, print the table, the failures and the summary (or the JSON report)."""

from __future__ import annotations

import argparse
import sys

from dsl.runtime import report_json, report_text
from dsl.runtime.session import run_paths
from dsl.runtime.term import Painter, Progress, wants_colour
from dsl.runtime.verdict import CaseResult

EXIT_OK = 0
EXIT_FAILED = 1


def run_command(args: argparse.Namespace) -> int:
    progress: Progress | None = None

    def on_total(total: int) -> None:
        nonlocal progress
        progress = Progress(sys.stderr, total=total, label="svmdsl run")

    def on_case(_result: CaseResult) -> None:
        if progress is not None:
            progress.advance()

    try:
        report = run_paths(
            tuple(args.paths),
            policies=tuple(args.policy),
            profiles=tuple(args.profile),
            on_case=on_case,
            on_total=on_total,
        )
    finally:
        if progress is not None:
            progress.finish()
    if args.format == "json":
        sys.stdout.write(report_json.dumps(report))
    else:
        paint = Painter(wants_colour(sys.stdout))
        if not report.entries and not report.file_errors:
            print("svmdsl: no scenarios found under " + ", ".join(args.paths), file=sys.stderr)
            return EXIT_FAILED
        sys.stdout.write(report_text.render(report, paint, trace=not args.no_trace))
    return EXIT_OK if report.ok and (report.entries or report.file_errors) else EXIT_FAILED
