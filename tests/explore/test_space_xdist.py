"""The explored space as pytest cases: one case per chunk of configurations, so pytest-xdist distributes it.

`pytest -n auto tests/explore/test_space_xdist.py` spreads the chunks over the cores; xdist's remote workers
(`--tx ssh=host//python=…`) over machines. By default the chunks cover the guest-instruction part of the default
space (the rest is what test_table.py runs in one process); `SVMDSL_EXPLORE_AXES="source=all;mode=all"` widens it
(set it identically for every worker). A configuration fails its chunk when it shows a divergence class that
docs/exploration.md does not record for the policy.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.engine.vocab import PolicyName, policy_by_name
from dsl.explore.command import DEFAULT_POLICIES
from dsl.explore.pytest_space import chunk_params, space_from_env, unexpected_divergences
from dsl.explore.space import Configuration, Space, parse_restriction
from dsl.explore.table import read_markdown_classes

DOC = Path(__file__).resolve().parents[2] / "docs" / "exploration.md"
POLICIES = tuple(p for p in (policy_by_name(name) for name in DEFAULT_POLICIES) if p is not None)
BASE = parse_restriction("source=instruction", Space.default())
CHUNKS = 16


@pytest.mark.parametrize("chunk", chunk_params(space_from_env(BASE), CHUNKS))
def test_no_configuration_shows_a_class_the_table_does_not_record(chunk: tuple[Configuration, ...]) -> None:
    recorded = read_markdown_classes(DOC.read_text(encoding="utf-8"))
    problems = unexpected_divergences(chunk, POLICIES, PolicyName.ARCHITECTURAL, recorded)
    assert not problems, "\n".join(problems)


def test_the_chunks_cover_the_space_once() -> None:
    chunks = [param.values[0] for param in chunk_params(BASE, CHUNKS)]  # type: ignore[attr-defined]
    flat = [config for chunk in chunks for config in chunk]
    assert flat == list(BASE.configurations())
    assert len(chunks) <= CHUNKS
