"""The explored space as pytest cases, so pytest-xdist (`-n auto`, and its remote workers) distributes it.

A test module parametrizes over `chunk_params(space)` — deterministic chunks of configurations, identical in every
worker's collection — and calls `unexpected_divergences` in its body: the configurations whose divergences under a
policy are not among the classes recorded for it. Example (what `tests/explore/test_space_xdist.py` does):

    @pytest.mark.parametrize("chunk", chunk_params(space_from_env()))
    def test_chunk(chunk):
        assert not unexpected_divergences(chunk, POLICIES, PolicyName.ARCHITECTURAL, recorded_classes())

The counterexamples written by `svmdsl explore -o DIR` are `.svm` files: the svmdsl pytest plugin collects them
when named on the command line (`pytest -n auto DIR/*.svm`).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Mapping

import pytest

from dsl.engine import EngineError
from dsl.engine import run as engine_run
from dsl.engine.vocab import PolicyName
from dsl.explore.compare import Divergence
from dsl.explore.findings import RunProgram, compare
from dsl.explore.space import Configuration, Space, parse_restriction

#: Environment variable with `;`-separated `NAME=v1,v2` restrictions for `space_from_env` (it must have the same
#: value on every xdist worker: the collection of all workers must agree).
AXES_VARIABLE = "SVMDSL_EXPLORE_AXES"
DEFAULT_CHUNKS = 64


def space_from_env(base: Space | None = None) -> Space:
    """`base` (the default space) restricted by `$SVMDSL_EXPLORE_AXES`."""
    space = base if base is not None else Space.default()
    for text in os.environ.get(AXES_VARIABLE, "").split(";"):
        if text.strip():
            space = parse_restriction(text.strip(), space)
    return space


def chunk_params(space: Space, chunks: int = DEFAULT_CHUNKS) -> list[object]:
    """`pytest.param`s of (about) `chunks` equal slices of the space, ids `space-0000` …"""
    configs = tuple(space.configurations())
    size = max(1, -(-len(configs) // chunks))
    slices = [configs[start : start + size] for start in range(0, len(configs), size)]
    return [pytest.param(piece, id=f"space-{index:04d}") for index, piece in enumerate(slices)]


def unexpected_divergences(
    chunk: tuple[Configuration, ...],
    policies: tuple[PolicyName, ...],
    reference: PolicyName,
    allowed: Mapping[PolicyName, tuple[Divergence, ...]],
    run: RunProgram = engine_run,
) -> list[str]:
    """One line per configuration and policy that shows a class not in `allowed[policy]`."""
    problems = []
    for config, policy in itertools.product(chunk, policies):
        try:
            compared = compare(config, policy, reference, run)
        except EngineError:
            continue  # refused configurations are counted, not compared, by the explorer too
        new = [d.value for d in compared.divergences if d not in allowed.get(policy, ())]
        if new:
            problems.append(f"{policy.value}: {', '.join(new)} at {config.describe()}")
    return problems
