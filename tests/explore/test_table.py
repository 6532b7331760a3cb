"""The default exploration recorded in docs/exploration.md (copied into the README) stays true.

The live run of kvm-5.19, kvm-6.0 and kvm-mainline against architectural must show exactly the divergence classes
the table records for each policy; when a policy changes, regenerate it with `svmdsl explore --update FILE`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from dsl.engine.vocab import PolicyName, policy_by_name
from dsl.explore.command import DEFAULT_POLICIES
from dsl.explore.compare import Divergence
from dsl.explore.findings import Exploration
from dsl.explore.search import explore_exhaustive
from dsl.explore.space import Space, parse_restriction
from dsl.explore.table import TABLE_BEGIN, TABLE_END, TableError, read_markdown_classes, render_markdown

DOC = Path(__file__).resolve().parents[2] / "docs" / "exploration.md"
POLICIES = tuple(p for p in (policy_by_name(name) for name in DEFAULT_POLICIES) if p is not None)


def test_the_recorded_table_lists_every_default_policy() -> None:
    recorded = read_markdown_classes(DOC.read_text(encoding="utf-8"))
    assert tuple(recorded) == POLICIES


def test_each_policy_shows_the_classes_the_recorded_table_lists() -> None:
    """Fails when a policy's divergence classes change without docs/exploration.md changing."""
    live = explore_exhaustive(Space.default(), POLICIES)  # one process: pytest-xdist spreads the tests
    assert live.skipped == 0, live.refusals
    assert live.explored == Space.default().size()
    recorded = read_markdown_classes(DOC.read_text(encoding="utf-8"))
    live_classes = {policy: live.classes_of(policy) for policy in POLICIES}
    assert live_classes == recorded, (
        "the default exploration no longer matches docs/exploration.md; regenerate the table with "
        "`svmdsl explore --update docs/exploration.md --update README.md` and review the change:\n"
        + render_markdown(live)
    )


def test_the_markdown_table_reads_back_as_the_classes_it_shows() -> None:
    found = explore_exhaustive(parse_restriction("source=userspace", Space.default()), POLICIES)
    text = render_markdown(found)
    assert text.startswith(TABLE_BEGIN)
    assert read_markdown_classes(text) == {policy: found.classes_of(policy) for policy in POLICIES}


def test_a_table_with_an_unknown_class_is_an_error_naming_it() -> None:
    text = f"{TABLE_BEGIN}\n| policy | divergence class |\n|---|---|\n| kvm-6.0 | lost parcel |\n{TABLE_END}\n"
    with pytest.raises(TableError, match="unknown divergence class 'lost parcel'"):
        read_markdown_classes(text)


def test_a_document_without_markers_is_an_error() -> None:
    with pytest.raises(TableError, match="no table between"):
        read_markdown_classes("| kvm-6.0 | lost event |\n")


def test_a_policy_without_divergences_is_recorded_as_none() -> None:
    empty = Exploration((PolicyName.KVM_6_0,), PolicyName.ARCHITECTURAL, (), explored=3, skipped=0)
    assert "| kvm-6.0 | none |" in render_markdown(empty)
    assert read_markdown_classes(render_markdown(empty)) == {PolicyName.KVM_6_0: ()}
    assert Divergence.LOST_EVENT.slug == "lost-event"


def test_the_readme_copy_is_the_recorded_table() -> None:
    """README.md shows the same table between the same markers (copied from docs/exploration.md)."""
    readme = (DOC.parents[1] / "README.md").read_text(encoding="utf-8")
    assert TABLE_BEGIN in readme

    def table(text: str) -> str:
        return text.split(TABLE_BEGIN, 1)[1].split(TABLE_END, 1)[0]

    assert table(readme) == table(DOC.read_text(encoding="utf-8"))
