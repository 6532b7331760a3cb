"""The `svmdsl` command: argument parsing and dispatch. Each sub-command lives in its own module.

Exit status: 0 success; 1 a scenario failed, a file has errors or output is stale; 2 bad usage (unknown option,
missing path); 3 an internal error (a bug in svmdsl: reported in one line, with the traceback only when
SVMDSL_DEBUG is set).
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence
from typing import NoReturn, cast

from dsl.backends import command as backend_command
from dsl.docs import command as docs_command
from dsl.engine.vocab import HardwareProfile, policy_names
from dsl.explore import command as explore_command
from dsl.runtime.debug import BUG_HINT, debugging
from dsl.runtime.discover import PathProblem

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3

_DESCRIPTION = """\
Run, check, format and generate tests from .svm scenarios: how a hypervisor on AMD SVM injects and re-injects
INT3, INTO and INT n, and what return address the guest finally sees."""

_EPILOG = """\
examples:
  svmdsl run scenarios/                     run the whole library under every policy each scenario names
  svmdsl run scenarios/seed --policy kvm-6.0 --policy architectural
  svmdsl run scenarios/ --format json > report.json
  svmdsl check scenarios/                   parse and check only
  svmdsl gen scenarios/ -o generated/       write pytest modules (add --check in CI)
  svmdsl fmt --check scenarios/             list files that are not in canonical form
  svmdsl policies                           list hypervisor policies and hardware profiles
  svmdsl docs scenarios/ -o site/           write the spec-by-example site (HTML + Markdown)
  svmdsl explore                            search the configuration space for divergences
  svmdsl compare scenarios/seed             compare the engine with real kvm_amd (booted under QEMU TCG)

exit status: 0 success, 1 failures or stale output, 2 bad usage, 3 internal error"""


class _Parser(argparse.ArgumentParser):
    """argparse, but usage errors name the command and exit with EXIT_USAGE (argparse's own default, made explicit)."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    """The command line of `svmdsl` (also used to document it)."""
    parser = _Parser(
        prog="svmdsl",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    commands.required = True

    run = commands.add_parser(
        "run",
        help="run scenarios and report held / failed / error",
        description="Run every scenario under PATH (files or folders) under each policy it names.",
    )
    _add_paths(run)
    run.add_argument(
        "--policy",
        action="append",
        default=[],
        metavar="NAME",
        choices=policy_names(),
        help="run only under this policy (repeatable; default: the policies each scenario names)",
    )
    run.add_argument(
        "--profile",
        action="append",
        default=[],
        metavar="NAME",
        choices=tuple(p.value for p in HardwareProfile),
        help="run under this hardware profile instead of the scenario's (repeatable)",
    )
    run.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text (default): table, failures and summary; json: the report of docs/report-schema.json",
    )
    run.add_argument("--no-trace", action="store_true", help="leave the engine trace out of failure reports")
    run.add_argument(
        "-j",
        "--jobs",
        type=_non_negative,
        default=0,
        metavar="N",
        help="worker processes (default 0: one per available core for a large library, else 1; 1: run in this process)",
    )

    check = commands.add_parser(
        "check", help="parse and check scenarios only", description="Parse and check every scenario under PATH."
    )
    _add_paths(check)

    gen = commands.add_parser(
        "gen",
        help="generate pytest modules from scenarios",
        description="Write one pytest module per .svm file under PATH into the output folder.",
    )
    _add_paths(gen)
    gen.add_argument("-o", "--output", required=True, metavar="DIR", help="the folder of generated modules")
    gen.add_argument("--check", action="store_true", help="write nothing; print a diff and exit 1 if anything is stale")
    gen.add_argument("--force", action="store_true", help="overwrite or remove generated files edited by hand")

    fmt = commands.add_parser(
        "fmt",
        help="rewrite scenarios in canonical form",
        description="Rewrite every .svm file under PATH in canonical form.",
    )
    _add_paths(fmt)
    fmt.add_argument("--check", action="store_true", help="write nothing; list files that would change, exit 1")

    commands.add_parser(
        "policies",
        help="list hypervisor policies and hardware profiles",
        description="One line per hypervisor policy and per hardware profile.",
    )
    # Commands of other stages (issues 6 and 7) add their own parser and store their handler as `handler`.
    docs_command.add_parser(commands)
    explore_command.add_parser(cast("argparse._SubParsersAction[argparse.ArgumentParser]", commands))
    backend_command.add_parser(commands)
    backend_command.add_backend_arguments(run)
    return parser


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _add_paths(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", metavar="PATH", help=".svm files or folders (searched recursively)")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script and of `python -m dsl`."""
    args = build_parser().parse_args(argv)
    try:
        return _dispatch(args)
    except PathProblem as problem:
        print(f"svmdsl: error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("svmdsl: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:
        # The reader went away (`svmdsl run … | head`): not an error of ours. Silence the flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED
    except Exception as error:  # a bug in svmdsl, not bad input: one clear line, traceback on request
        if debugging():
            traceback.print_exc()
        print(f"svmdsl: internal error: {type(error).__name__}: {error}", file=sys.stderr)
        print(f"svmdsl: {BUG_HINT}", file=sys.stderr)
        return EXIT_INTERNAL


def _dispatch(args: argparse.Namespace) -> int:
    handler = getattr(args, "handler", None)
    if handler is not None:
        status: int = handler(args)
        return status
    # Imported here so that `svmdsl --help` and `svmdsl policies` stay fast.
    if args.command == "run":
        from dsl.runtime.cmd_run import run_command

        return run_command(args)
    if args.command == "check":
        from dsl.runtime.cmd_check import check_command

        return check_command(args)
    if args.command == "gen":
        from dsl.runtime.cmd_gen import gen_command

        return gen_command(args)
    if args.command == "fmt":
        from dsl.runtime.cmd_check import fmt_command

        return fmt_command(args)
    from dsl.runtime.cmd_check import policies_command

    return policies_command(args)
