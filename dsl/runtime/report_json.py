"""The JSON report of `svmdsl run --format json`; its schema is docs/report-schema.json."""

from __future__ import annotations

import json
from typing import Any

from dsl.runtime.session import Entry, RunReport
from dsl.runtime.verdict import Verdict

SCHEMA_ID = "svmdsl-report/1"


def to_json(report: RunReport) -> dict[str, Any]:
    """The report as JSON-ready data (see docs/report-schema.json)."""
    return {
        "schema": SCHEMA_ID,
        "ok": report.ok,
        "summary": {
            "files": report.files,
            "cases": len(report.entries),
            "held": report.count(Verdict.HELD),
            "failed": report.count(Verdict.FAILED),
            "error": report.count(Verdict.ERROR),
            "pending": report.pending_count,
            "file_errors": len(report.file_errors),
            "topics": report.scenarios_per_topic(),
            "policies": {
                policy: {
                    "cases": tally.cases,
                    "held": tally.held,
                    "failed": tally.failed,
                    "error": tally.error,
                    "pending": tally.pending,
                    "divergences_from_architectural": tally.divergences,
                }
                for policy, tally in report.per_policy().items()
            },
        },
        "cases": [_case(entry) for entry in report.entries],
        "file_errors": [{"file": e.file, "topic": e.topic, "message": e.message} for e in report.file_errors],
    }


def _case(entry: Entry) -> dict[str, Any]:
    result = entry.result
    return {
        "file": result.key.file,
        "line": result.line,
        "scenario": result.key.scenario,
        "title": result.display_title,
        "policy": result.key.policy,
        "row": result.key.row,
        "profile": entry.profile,
        "topic": entry.topic,
        "tags": list(result.tags),
        "verdict": result.verdict.value,
        "pending": entry.pending,
        "checks": result.checks,
        "outcome": result.outcome,
        "confirmed": result.confirmed,
        "diverges_from_architectural": entry.diverges,
        "failures": [
            {
                "file": m.file,
                "line": m.line,
                "column": m.column,
                "expectation": m.expectation,
                "expected": m.expected,
                "actual": m.actual,
                "excerpt": m.excerpt,
            }
            for m in result.mismatches
        ],
        "error": result.error,
        "trace": list(result.trace),
    }


def dumps(report: RunReport) -> str:
    """The report as JSON text (UTF-8, indented, one trailing newline)."""
    return json.dumps(to_json(report), indent=2, ensure_ascii=False) + "\n"
