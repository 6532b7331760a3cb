"""The text report of `svmdsl run`: a table scenario × policy, the failures, and a summary."""

from __future__ import annotations

from collections.abc import Iterator

import attrs

from dsl.runtime.session import Entry, RunReport, policy_order
from dsl.runtime.term import Colour, Painter
from dsl.runtime.verdict import CaseResult, Verdict

#: The scenario column is cut to this width so the policy columns stay on screen.
SCENARIO_COLUMN_WIDTH = 64
_NOT_RUN = "-"
_VERDICT_COLOURS = {Verdict.HELD: Colour.GREEN, Verdict.FAILED: Colour.RED, Verdict.ERROR: Colour.YELLOW}


def render(report: RunReport, paint: Painter, *, trace: bool = True) -> str:
    """The whole report as text (ends with a newline)."""
    sections = [
        "\n".join(_table(report, paint)),
        "\n\n".join(_problems(report, paint, trace=trace)),
        "\n".join(_pending(report, paint)),
        "\n".join(_summary(report, paint)),
    ]
    return "\n\n".join(s for s in sections if s) + "\n"


def _policies(report: RunReport) -> list[str]:
    return sorted({e.result.key.policy for e in report.entries}, key=policy_order)


def _row_label(entry: Entry) -> str:
    key = entry.result.key
    label = f"{key.file}:{entry.result.line} {entry.result.display_title}"
    if entry.profile is not None:
        label += f" @{entry.profile}"
    if len(label) > SCENARIO_COLUMN_WIDTH:
        label = label[: SCENARIO_COLUMN_WIDTH - 1] + "…"
    return label


def _table(report: RunReport, paint: Painter) -> Iterator[str]:
    if not report.entries:
        return
    policies = _policies(report)
    rows: dict[tuple[str, int, str, int | None, str | None], dict[str, Entry]] = {}
    for entry in report.entries:
        key = entry.result.key
        rows.setdefault((key.file, entry.result.line, key.scenario, key.row, entry.profile), {})[key.policy] = entry
    width = max(len("scenario"), *(len(_row_label(next(iter(r.values())))) for r in rows.values()))
    widths = [max(len(p), len("pending*")) for p in policies]
    header = "scenario".ljust(width) + "".join("  " + p.ljust(w) for p, w in zip(policies, widths, strict=True))
    yield paint(header.rstrip(), Colour.BOLD)
    for cells in rows.values():
        line = _row_label(next(iter(cells.values()))).ljust(width)
        for policy, column_width in zip(policies, widths, strict=True):
            cell = cells.get(policy)
            if cell is None:
                line += "  " + _NOT_RUN.ljust(column_width)
                continue
            marked = cell.verdict_word + ("*" if cell.diverges else "")
            colour = Colour.CYAN if cell.pending else _VERDICT_COLOURS[cell.result.verdict]
            line += "  " + paint(marked.ljust(column_width), colour)
        yield line.rstrip()
    if any(e.diverges for e in report.entries):
        yield paint("* differs from architectural in what the guest sees", Colour.DIM)


def _problems(report: RunReport, paint: Painter, *, trace: bool) -> Iterator[str]:
    for problem in report.file_errors:
        yield paint(f"error in {problem.file}:", Colour.YELLOW, Colour.BOLD) + "\n" + problem.message
    for entry in report.entries:
        result = entry.result
        if result.verdict is Verdict.HELD or entry.pending:
            continue
        shown = result if trace else _without_trace(result)
        headline, _, rest = shown.explain().partition("\n")
        colour = _VERDICT_COLOURS[result.verdict]
        where = f" (profile {entry.profile})" if entry.profile else ""
        yield paint(f"{result.verdict.value.upper()}: {headline}{where}", colour, Colour.BOLD) + "\n" + rest.rstrip()


def _pending(report: RunReport, paint: Painter) -> Iterator[str]:
    """One line per pending case (a known gap): enough to find it, no details."""
    pending = [e for e in report.entries if e.pending]
    if not pending:
        return
    yield paint(f"pending (known gaps of scenarios tagged @pending): {len(pending)}", Colour.CYAN)
    for entry in pending:
        result = entry.result
        yield f"  {result.key.file}:{result.line}: {result.display_title} [{result.key.policy}]: {result.verdict.value}"


def _without_trace(result: CaseResult) -> CaseResult:
    return attrs.evolve(result, trace=())


def _summary(report: RunReport, paint: Painter) -> Iterator[str]:
    total = len(report.entries)
    counts = {v: report.count(v) for v in Verdict}
    status = paint("all held", Colour.GREEN) if report.ok else paint("NOT all held", Colour.RED, Colour.BOLD)
    errors = f", {len(report.file_errors)} file(s) with errors" if report.file_errors else ""
    yield (
        f"{total} case(s) from {report.files} file(s): {counts[Verdict.HELD]} held, "
        f"{counts[Verdict.FAILED]} failed, {counts[Verdict.ERROR]} error, {report.pending_count} pending{errors}"
        f" — {status}"
    )
    topics = report.scenarios_per_topic()
    if topics:
        yield "scenarios per topic: " + ", ".join(f"{topic} {count}" for topic, count in topics.items())
    tallies = report.per_policy()
    if tallies:
        yield "per policy (cases, held, failed, error, pending, divergences from architectural):"
        width = max(len(p) for p in tallies)
        for policy, tally in tallies.items():
            yield (
                f"  {policy.ljust(width)}  {tally.cases:>5} {tally.held:>5} {tally.failed:>5} {tally.error:>5}"
                f" {tally.pending:>5}  {tally.divergences:>5}"
            )
