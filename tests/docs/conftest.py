"""Fixtures of the documentation tests: sites built (once per module) from the fixture and bundled libraries."""

from __future__ import annotations

from pathlib import Path

import pytest
from docs_support import BUNDLED, FIXTURE_LIBRARY, HOSTILE

from dsl.docs.build import BuildResult, build_site


@pytest.fixture(scope="session")
def fixture_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BuildResult]:
    out = tmp_path_factory.mktemp("fixture-site")
    return out, build_site([str(FIXTURE_LIBRARY)], out)


@pytest.fixture(scope="session")
def hostile_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BuildResult]:
    out = tmp_path_factory.mktemp("hostile-site")
    return out, build_site([str(HOSTILE)], out)


@pytest.fixture(scope="session")
def bundled_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, BuildResult]:
    out = tmp_path_factory.mktemp("bundled-site")
    return out, build_site([str(BUNDLED)], out)
