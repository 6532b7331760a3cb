"""Direct pytest collection of the scenario library: a scenario tagged `@pending` is a known gap of the engine or the
language (its `// pending:` comment says which). Its cases may fail without failing the suite; not strictly, because
the gap is usually one policy's (a pending scenario's other policies hold). tests/scenarios/test_library.py fails
when a pending scenario holds under every policy, so that the tag is removed as soon as the gap closes.
"""

from __future__ import annotations

import pytest

PENDING_MARKER = "pending"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker(PENDING_MARKER) is not None:
            reason = "@pending scenario: a known engine or language gap, see its // pending: comment"
            item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
