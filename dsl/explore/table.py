"""The divergence table: per policy and class, how many configurations show it and the simplest one.

Rendered as aligned text for the terminal and as Markdown for `docs/exploration.md` (between markers, which the
README copies); `read_markdown_classes` reads the recorded classes back for the regression test.
"""

from __future__ import annotations

import re

from dsl.engine.vocab import PolicyName
from dsl.explore.compare import Divergence
from dsl.explore.counterexample import file_name
from dsl.explore.findings import Exploration

TABLE_BEGIN = "<!-- explore-table:begin -->"
TABLE_END = "<!-- explore-table:end -->"
_HEADER = ("policy", "divergence class", "configurations", "confirmed", "counterexample", "minimal configuration")
_ROW = re.compile(r"^\|\s*(?P<policy>[^|]+?)\s*\|\s*(?P<divergence>[^|]+?)\s*\|")


def rows(exploration: Exploration) -> list[tuple[str, ...]]:
    """One row per class, in the exploration's order; a policy with no divergence gets a row saying so."""
    found: list[tuple[str, ...]] = []
    for policy in exploration.policies:
        mine = [(key, tally) for key, tally in exploration.classes if key.policy is policy]
        if not mine:
            found.append((policy.value, "none", "0", "0", "-", "-"))
        for key, tally in mine:
            found.append(
                (
                    policy.value,
                    key.divergence.value,
                    str(tally.count),
                    str(tally.confirmed),
                    file_name(key),
                    tally.example.describe(),
                )
            )
    return found


def summary_line(exploration: Exploration) -> str:
    skipped = f", {exploration.skipped} refused by the engine" if exploration.skipped else ""
    return f"{exploration.explored} configurations explored{skipped}; compared with {exploration.reference.value}"


def render_text(exploration: Exploration) -> str:
    """The table aligned in columns, then a summary line."""
    table = [_HEADER, *rows(exploration)]
    widths = [max(len(row[i]) for row in table) for i in range(len(_HEADER))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * width for width in widths))
    refused = [f"  refused: {reason}" for reason in exploration.refusals]
    return "\n".join([*lines, "", summary_line(exploration), *refused]) + "\n"


def render_markdown(exploration: Exploration) -> str:
    """The table in Markdown between the markers (configurations as `name=value` lists)."""
    escaped = [[cell.replace("|", "\\|") for cell in row] for row in rows(exploration)]
    lines = [
        TABLE_BEGIN,
        "| " + " | ".join(_HEADER) + " |",
        "|" + "|".join("---" for _ in _HEADER) + "|",
        *("| " + " | ".join(row) + " |" for row in escaped),
        "",
        summary_line(exploration) + ".",
        TABLE_END,
    ]
    return "\n".join(lines) + "\n"


class TableError(ValueError):
    """The recorded table is missing or unreadable (the message says where)."""


def read_markdown_classes(text: str) -> dict[PolicyName, tuple[Divergence, ...]]:
    """The classes recorded per policy in the Markdown table between the markers."""
    if TABLE_BEGIN not in text or TABLE_END not in text:
        raise TableError(f"no table between {TABLE_BEGIN} and {TABLE_END}")
    body = text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0]
    by_value = {d.value: d for d in Divergence}
    recorded: dict[PolicyName, list[Divergence]] = {}
    for number, line in enumerate(body.splitlines(), start=1):
        match = _ROW.match(line)
        if match is None or match["policy"] == _HEADER[0] or set(match["policy"]) <= {"-"}:
            continue
        policy = next((p for p in PolicyName if p.value == match["policy"]), None)
        if policy is None:
            raise TableError(f"table line {number}: unknown policy {match['policy']!r}")
        classes = recorded.setdefault(policy, [])
        if match["divergence"] == "none":
            continue
        if match["divergence"] not in by_value:
            raise TableError(f"table line {number}: unknown divergence class {match['divergence']!r}")
        classes.append(by_value[match["divergence"]])
    return {policy: tuple(classes) for policy, classes in recorded.items()}


def replace_table(text: str, table: str) -> str:
    """`text` with the block between the markers (markers included) replaced by `table` (which has them)."""
    if TABLE_BEGIN not in text or TABLE_END not in text:
        raise TableError(f"no table between {TABLE_BEGIN} and {TABLE_END}")
    before = text.split(TABLE_BEGIN, 1)[0]
    after = text.split(TABLE_END, 1)[1]
    return before + table.rstrip("\n") + after
