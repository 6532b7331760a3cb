"""`svmdsl check`, `svmdsl fmt` and `svmdsl policies`."""

from __future__ import annotations

import argparse
import sys

from dsl.engine.catalog import policies, profiles
from dsl.errors import SvmError
from dsl.runtime.cli import EXIT_FAILED, EXIT_OK
from dsl.runtime.discover import nothing_found, scenario_files
from dsl.runtime.genfiles import write_atomically
from dsl.runtime.loader import display_path, load
from dsl.syntax.formatter import format_text


def check_command(args: argparse.Namespace) -> int:
    """Parse, check and lower every file; print each file's diagnostics; exit 1 if any file has an error."""
    files = scenario_files(tuple(args.paths))
    if not files:
        print(f"svmdsl: {nothing_found(tuple(args.paths))}", file=sys.stderr)
        return EXIT_FAILED
    bad = 0
    scenarios = 0
    cases = 0
    for file in files:
        loaded = load(file.path)
        if loaded.error is not None or loaded.lowered is None:
            bad += 1
            print(loaded.error.render() if loaded.error is not None else f"{loaded.display}: cannot be loaded")
            print()
            continue
        for warning in loaded.lowered.warnings:
            print(warning.render())
            print()
        scenarios += len(loaded.lowered.scenarios)
        cases += len(loaded.lowered.cases)
    verdict = "ok" if not bad else f"{bad} file(s) with errors"
    print(f"{len(files)} file(s), {scenarios} scenario(s), {cases} case(s): {verdict}")
    return EXIT_FAILED if bad else EXIT_OK


def fmt_command(args: argparse.Namespace) -> int:
    """Rewrite files in canonical form (the language's formatter); with --check, list those that would change."""

    files = scenario_files(tuple(args.paths))
    if not files:
        print(f"svmdsl: {nothing_found(tuple(args.paths))}", file=sys.stderr)
        return EXIT_FAILED
    changed: list[str] = []
    bad = 0
    for file in files:
        text = file.path.read_text(encoding="utf-8")
        try:
            formatted = format_text(text, display_path(file.path))
        except SvmError as error:
            bad += 1
            print(error.render(), file=sys.stderr)
            continue
        if formatted != text:
            changed.append(display_path(file.path))
            if not args.check:
                write_atomically(file.path, formatted)
    for name in changed:
        print(f"{'would reformat' if args.check else 'reformatted'} {name}")
    if bad:
        print(f"svmdsl fmt: {bad} file(s) could not be parsed", file=sys.stderr)
    return EXIT_FAILED if bad or (args.check and changed) else EXIT_OK


def policies_command(_args: argparse.Namespace) -> int:
    """One line per hypervisor policy and hardware profile, from the engine's catalog."""
    rows = [("policy", item.name, item.summary) for item in policies()]
    rows += [("profile", item.name, item.summary) for item in profiles()]
    width = max(len(name) for _, name, _ in rows)
    for kind, name, summary in rows:
        print(f"{kind:<8} {name:<{width}}  {summary}")
    return EXIT_OK
