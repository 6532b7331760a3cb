"""`svmdsl run`: run scenarios, print the table, the failures and the summary (or the JSON report)."""

from __future__ import annotations

import argparse
import sys

from dsl.runtime import report_json, report_text
from dsl.runtime.cli import EXIT_FAILED, EXIT_OK
from dsl.runtime.discover import nothing_found
from dsl.runtime.session import run_paths
from dsl.runtime.term import Painter, Progress, wants_colour


def run_command(args: argparse.Namespace) -> int:
    if getattr(args, "backend", None) is not None:  # real KVM instead of the engine (issue 8)
        from dsl.backends import command as backend_command

        status: int = backend_command.run_backend(args)
        return status
    progress: Progress | None = None

    def on_file(done: int, total: int) -> None:
        nonlocal progress
        if progress is None:
            progress = Progress(sys.stderr, total=total, label="svmdsl run: files")
        progress.advance()

    try:
        report = run_paths(
            tuple(args.paths),
            policies=tuple(args.policy),
            profiles=tuple(args.profile),
            jobs=args.jobs,
            on_file=on_file,
        )
    finally:
        if progress is not None:
            progress.finish()
    if args.format == "json":
        sys.stdout.write(report_json.dumps(report))
    else:
        paint = Painter(wants_colour(sys.stdout))
        if not report.entries and not report.file_errors:
            where = ", ".join(args.paths)
            if report.files and args.policy:
                print(f"svmdsl: no scenario under {where} runs under {', '.join(args.policy)}", file=sys.stderr)
            else:
                print(f"svmdsl: {nothing_found(tuple(args.paths))}", file=sys.stderr)
            return EXIT_FAILED
        sys.stdout.write(report_text.render(report, paint, trace=not args.no_trace))
    return EXIT_OK if report.ok and (report.entries or report.file_errors) else EXIT_FAILED
