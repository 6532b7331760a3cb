"""`svmdsl compare --backend qemu-kvm` and `svmdsl run --backend qemu-kvm`: the argument parsers and handlers.

Wiring (dsl/runtime/cli.py, owned by the runners): `command.add_parser(commands)` next to the other sub-commands
adds `compare`; for `run`, `command.add_backend_arguments(run)` adds `--backend` / `--kernel`, and `run_command`
calls `command.run_backend(args)` when `args.backend` is not None. Handlers return the exit status.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

EXIT_OK = 0
EXIT_DISAGREE = 1
EXIT_USAGE = 2
BACKENDS = ("qemu-kvm",)

_DESCRIPTION = """\
Run every scenario under PATH on the engine (hardware profile qemu-tcg, the policy of the kernel's version) and
under real kvm_amd in a Debian kernel booted in QEMU's TCG, and print every disagreement. Rows the backend cannot
express are counted (listed with --verbose). The kernel package is downloaded once and cached."""


def _add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--kernel",
        metavar="PKG-OR-PATH",
        default=None,
        help="a linux-image package name, a .deb, or an unpacked tree (default: linux-image-cloud-amd64)",
    )


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add `compare` to the `svmdsl` sub-commands."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "compare", help="compare the engine with real KVM (under QEMU TCG)", description=_DESCRIPTION
    )
    parser.add_argument("paths", nargs="+", metavar="PATH", help=".svm files or folders (searched recursively)")
    parser.add_argument("--backend", choices=BACKENDS, default="qemu-kvm", help="the real thing to compare with")
    _add_common(parser)
    parser.add_argument("-v", "--verbose", action="store_true", help="also list agreements and rows not expressible")
    parser.set_defaults(handler=compare_command)
    return parser


def add_backend_arguments(run: argparse.ArgumentParser) -> None:
    """`--backend` and `--kernel` for `svmdsl run`."""
    run.add_argument("--backend", choices=BACKENDS, default=None, help="run on real KVM instead of the engine")
    _add_common(run)


def compare_command(args: argparse.Namespace) -> int:
    """Compare; exit 1 if any expressible row disagrees."""
    report = _compare(args)
    if report is None:
        return EXIT_USAGE
    from dsl.backends.qemu_kvm.text import render

    sys.stdout.write(render(report, verbose=args.verbose))
    failing = [c for c in report.compared if c.disagreements and not c.unspecified]
    return EXIT_DISAGREE if failing else EXIT_OK


def run_backend(args: argparse.Namespace) -> int:
    """`svmdsl run --backend qemu-kvm`: each scenario's expectations for the kernel's policy, held to real KVM.

    Exit 1 if an observable expectation failed; rows the backend cannot express are listed with the reason.
    """
    report = _compare(args)
    if report is None:
        return EXIT_USAGE
    from dsl.backends.qemu_kvm.observed import render_held
    from dsl.runtime.loader import load

    cases, texts = [], {}
    for path in dict.fromkeys(comparison.subject.key[0] for comparison in report.comparisons):  # report order
        loaded = load(path)
        texts[loaded.display] = loaded.text
        if loaded.lowered is not None:
            cases += [case for case in loaded.lowered.cases if case.policy is report.policy]
    text, failed = render_held(report, tuple(cases), texts)
    sys.stdout.write(text)
    return EXIT_DISAGREE if failed else EXIT_OK


def _compare(args: argparse.Namespace) -> Any:
    # Imported here so that `svmdsl --help` loads neither the engine nor the backend.
    from dsl.backends.qemu_kvm import BackendError, compare, prepare, subjects
    from dsl.backends.qemu_kvm.image import cache_root
    from dsl.runtime.discover import PathProblem, nothing_found, scenario_files

    try:
        files = tuple(found.path for found in scenario_files(tuple(args.paths)))
        if not files:  # before the kernel package is fetched
            raise PathProblem(nothing_found(tuple(args.paths)))
        cache = cache_root()
        kernel = prepare(args.kernel, cache)
        return compare(subjects(files, kernel.policy), kernel, cache)
    except (BackendError, PathProblem) as problem:
        print(f"svmdsl {args.command}: error: {problem}", file=sys.stderr)
        return None
