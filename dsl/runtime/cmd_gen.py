"""`svmdsl gen`: one pytest module per scenario file, plus a conftest registering the tag markers.

Module names follow the file's path below the folder given on the command line: `scenarios/seed/int3.svm`
found through `scenarios/` becomes `test_seed__int3.py`. A generated module whose scenario file lay under the
paths given but produces nothing any more (removed or renamed) is removed; modules of scenario files elsewhere
are kept, and the conftest registers their markers too, so generating part of a library is safe.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import sys
from pathlib import Path

from dsl.compiler.generate import (
    GenerateError,
    SuiteCase,
    SuiteModule,
    cases_digest,
    inputs_digest,
    module_markers,
    render_conftest,
    render_module,
)
from dsl.compiler.names import slug
from dsl.runtime.cli import EXIT_FAILED, EXIT_OK
from dsl.runtime.discover import ScenarioFile, nothing_found, scenario_files
from dsl.runtime.genfiles import Change, compose, plan, read_header, unified_diff
from dsl.runtime.genfiles import apply as apply_plan
from dsl.runtime.loader import LoadedFile, load

CONFTEST = "conftest.py"


def module_name(file: ScenarioFile) -> str:
    """`test_<folder>__<stem>.py` from the file's path below its root."""
    parts = [slug(part) for part in file.relative.with_suffix("").parts]
    return "test_" + "__".join(parts) + ".py"


def suite_module(loaded: LoadedFile, out_dir: Path) -> SuiteModule:
    """What the generated module for a loaded file says."""
    assert loaded.lowered is not None
    source = Path(os.path.relpath(loaded.path.resolve(), out_dir.resolve())).as_posix()
    cases = tuple(
        SuiteCase(case.scenario, case.loc.line, case.policy.value, case.row, case.tags) for case in loaded.lowered.cases
    )
    return SuiteModule(source=source, inputs_digest=cases_digest(source, cases), cases=cases)


def generate(paths: tuple[str, ...], out_dir: Path) -> tuple[dict[str, str], list[str], int]:
    """Every generated file (name → complete content), the problems that prevent generation, and how many scenario
    files the paths hold."""
    wanted: dict[str, str] = {}
    owners: dict[str, str] = {}
    problems: list[str] = []
    markers: set[str] = set()
    files = scenario_files(paths)
    for file in files:
        loaded = load(file.path)
        if loaded.error is not None or loaded.lowered is None:
            problems.append(loaded.error.render() if loaded.error is not None else f"{loaded.display}: unreadable")
            continue
        name = module_name(file)
        if name in owners:
            problems.append(f"{loaded.display}: would be generated as {name}, like {owners[name]}; rename one")
            continue
        owners[name] = loaded.display
        module = suite_module(loaded, out_dir)
        try:
            wanted[name] = compose(render_module(module), module.inputs_digest)
        except GenerateError as problem:
            problems.append(f"{loaded.display}: {problem}")
            continue
        markers.update(module_markers(module))
    kept = [
        text for name, text in _generated_modules(out_dir) if name not in wanted and not _owned(text, out_dir, paths)
    ]
    for text in kept:
        markers.update(_MARKER_LINE.findall(text))
    if wanted or kept:
        ordered = tuple(sorted(markers))
        wanted[CONFTEST] = compose(render_conftest(ordered), inputs_digest(*(m.encode() for m in ordered)))
    return wanted, problems, len(files)


_SOURCE_LINE = re.compile(r"^SOURCE = SvmSource\.beside\(__file__, (?P<literal>.+)\)$", re.MULTILINE)
_MARKER_LINE = re.compile(r"^@pytest\.mark\.([A-Za-z][A-Za-z0-9_]*)$", re.MULTILINE)


def _generated_modules(out_dir: Path) -> list[tuple[str, str]]:
    """(name, text) of the modules in `out_dir` that carry our header."""
    if not out_dir.is_dir():
        return []
    found = []
    for path in sorted(out_dir.glob("test_*.py")):
        text = path.read_text(encoding="utf-8")
        if read_header(text) is not None:
            found.append((path.name, text))
    return found


def _owned(text: str, out_dir: Path, paths: tuple[str, ...]) -> bool:
    """Whether a generated module's scenario file lies under one of `paths` (so this generation answers for it)."""
    match = _SOURCE_LINE.search(text)
    if match is None:
        return True  # not a module we can place: the whole folder's generation answers for it
    source = (out_dir / ast.literal_eval(match.group("literal"))).resolve()
    roots = [Path(p).resolve() for p in paths]
    return any(source == root or source.is_relative_to(root) for root in roots)


def gen_command(args: argparse.Namespace) -> int:
    out_dir = Path(args.output)
    if out_dir.exists() and not out_dir.is_dir():
        print(f"svmdsl gen: error: {args.output} is not a folder", file=sys.stderr)
        return EXIT_FAILED
    wanted, problems, found = generate(tuple(args.paths), out_dir)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        print(f"svmdsl gen: nothing written: {len(problems)} file(s) with errors", file=sys.stderr)
        return EXIT_FAILED
    gen_plan = plan(out_dir, wanted, owned=lambda text: _owned(text, out_dir, tuple(args.paths)))
    # Paths without scenario files are an error, unless modules generated from them are left to remove.
    if not found and not any(change.change is Change.REMOVE for change in gen_plan.changes):
        print(f"svmdsl: {nothing_found(tuple(args.paths))}", file=sys.stderr)
        return EXIT_FAILED
    if args.check:
        for change in gen_plan.pending:
            sys.stdout.write(unified_diff(change, args.output))
        if gen_plan.pending:
            names = ", ".join(c.path.name for c in gen_plan.pending)
            print(f"svmdsl gen --check: {len(gen_plan.pending)} file(s) stale: {names}", file=sys.stderr)
            print(f"svmdsl gen --check: run `svmdsl gen {' '.join(args.paths)} -o {args.output}`", file=sys.stderr)
            return EXIT_FAILED
        print(f"svmdsl gen --check: {len(gen_plan.changes)} file(s) up to date")
        return EXIT_OK
    if gen_plan.hand_edited and not args.force:
        for change in gen_plan.hand_edited:
            print(
                f"svmdsl gen: error: {change.path} was edited by hand (its body no longer matches its header hash);"
                " move your changes into the .svm file, or pass --force to overwrite",
                file=sys.stderr,
            )
        return EXIT_FAILED
    apply_plan(gen_plan)
    counts = {kind: sum(1 for c in gen_plan.changes if c.change is kind) for kind in Change}
    print(
        f"svmdsl gen: {counts[Change.CREATE]} created, {counts[Change.UPDATE]} updated, "
        f"{counts[Change.REMOVE]} removed, {counts[Change.UNCHANGED]} unchanged in {args.output}"
    )
    return EXIT_OK
