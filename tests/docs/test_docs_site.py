"""The site's structure: an index with the policy × scenario matrix, one page per scenario file (issue 6)."""

from __future__ import annotations

import re
from pathlib import Path

from docs_support import BUNDLED, FIXTURE_LIBRARY, parse_html, read_site

from dsl.docs.build import BuildResult
from dsl.docs.collect import collect
from dsl.runtime.discover import scenario_files
from dsl.syntax.parse import parse_file

Built = tuple[Path, BuildResult]


def _titles(folder: Path) -> dict[str, list[str]]:
    """Scenario titles per file, relative to `folder`, straight from the parser."""
    found = {}
    for file in scenario_files((str(folder),)):
        svm = parse_file(file.path)
        found[file.relative.as_posix()] = [item.title for item in svm.scenarios]
    return found


def _text(page: bytes) -> str:
    """The page's text as a reader sees it: whitespace runs read as one space."""
    return " ".join("".join(parse_html(page).text).split())


def test_every_bundled_scenario_and_policy_appears(bundled_site: Built) -> None:
    """Issue 6 §2-3: the bundled library — each file has its page, each scenario its section and matrix row."""
    out, _ = bundled_site
    site = read_site(out)
    index = _text(site["index.html"])
    titles = _titles(BUNDLED)
    assert titles, "the bundled library has scenario files"
    for relative, names in titles.items():
        page = relative.removesuffix(".svm") + ".html"
        assert page in site, f"no page for {relative}"
        assert relative.removesuffix(".svm") + ".md" in site
        text = _text(site[page])
        for title in names:
            assert title in text, f"{title!r} missing from {page}"
    rows = parse_html(site["index.html"]).named("tr")
    matrix_rows = [row for row in rows if row.get("class") == "case-row"]
    assert len(matrix_rows) >= sum(len(names) for names in titles.values())
    content = collect((str(BUNDLED),))
    for policy in content.policies:
        assert policy in index
    every_case_policy = {c.policy for f in content.files for s in f.scenarios for c in s.cases}
    assert set(content.policies) == every_case_policy


def test_index_matrix_marks_divergence_with_one_line_explanation(fixture_site: Built) -> None:
    """Issue 6 §2, H-37 / K-5.19-21: kvm-5.19 retries the INT3 and its breakpoint fires again — a divergence
    from architectural, highlighted in the matrix and explained in one line."""
    out, result = fixture_site
    site = read_site(out)
    elements = parse_html(site["index.html"])
    diverging = [cell for cell in elements.named("td") if "diverges" in (cell.get("class") or "").split()]
    assert any(cell.get("data-policy") == "kvm-5.19" for cell in diverging)
    assert not any(cell.get("data-policy") == "architectural" for cell in diverging)
    index = _text(site["index.html"])
    assert re.search(r"spurious #DB\s+under\s+kvm-5\.19: .*spurious_db true \(architectural: false\)", index)
    assert result.divergences >= 1
    markdown = site["index.md"].decode()
    assert "spurious\\_db true (architectural: false)" in markdown


def test_index_groups_by_topic_and_offers_filters(fixture_site: Built) -> None:
    """Issue 6 §2: rows grouped by topic (folder); filters by tag and policy that work by hiding rows."""
    out, _ = fixture_site
    elements = parse_html(read_site(out)["index.html"])
    topics = [body.get("data-topic") for body in elements.named("tbody")]
    assert topics == ["nested", "seed"]
    options = [option.get("value") for option in elements.named("option")]
    for wanted in ("spurious-db", "nested", "kvm-5.19", "architectural"):
        assert wanted in options
    form = elements.named("form")[0]
    assert "hidden" in form, "the filters stay hidden unless the script runs: without JS every row is shown"
    rows = [row for row in elements.named("tr") if row.get("class") == "case-row"]
    assert all(row.get("hidden") is None for row in rows)
    assert any("spurious-db" in (row.get("data-tags") or "").split() for row in rows)


def test_outline_rows_are_listed_with_their_values(fixture_site: Built) -> None:
    """Issue 6 §2: an outline contributes one matrix row per examples row, titled with that row's values."""
    out, _ = fixture_site
    index = _text(read_site(out)["index.html"])
    assert "INT3 cut short under nrips=1 (row 1)" in index
    assert "INT3 cut short under nrips=0 (row 2)" in index


def test_scenario_page_shows_title_description_source_and_highlighted_text(fixture_site: Built) -> None:
    """Issue 6 §3: title, description, source citation and the `.svm` text highlighted with line numbers."""
    out, _ = fixture_site
    page = read_site(out)["seed/spurious_db.html"]
    elements = parse_html(page)
    text = _text(page)
    assert "A code breakpoint on a retried INT3 fires a second, spurious #DB" in text
    assert "the guest fetches it again and the breakpoint fires a second time" in text
    assert "6ef88d6e36c2 message; H-37; K-5.19-21" in text
    highlighted = [div for div in elements.named("div") if div.get("class") == "highlight"]
    assert highlighted, "the .svm text is highlighted by Pygments"
    spans = elements.named("span")
    assert any(span.get("class") not in (None, "linenos") for span in spans), "tokens carry lexer classes"
    assert "breakpoint dr0 at 0x1000" in text


def test_scenario_page_draws_a_sequence_diagram_per_case(fixture_site: Built) -> None:
    """Issue 6 §3: a sequence diagram of the participants drawn from the engine trace, inline SVG."""
    out, _ = fixture_site
    site = read_site(out)
    elements = parse_html(site["nested/l1_reflect.html"])
    svgs = elements.named("svg")
    assert len(svgs) == 3, "one diagram per policy the scenario runs under"
    lanes = [g.get("data-actor") for g in elements.named("g") if g.get("class") == "lane"]
    assert {"guest", "L1", "L0", "CPU"} <= set(lanes)
    assert "L2 guest" in _text(site["nested/l1_reflect.html"])
    messages = [g for g in elements.named("g") if g.get("class") == "message"]
    assert messages, "trace entries are drawn as messages"
    assert [tag for tag, _ in elements.tags if tag == "script"] == [], "a scenario page runs no script"


def test_state_table_marks_changed_values(fixture_site: Built) -> None:
    """Issue 6 §3: the state after each step (RIP, RFLAGS, next_rip, EVENTINJ, EXITINTINFO, queued event), with
    the values a step changed marked — here the EXITINTINFO the #VMEXIT wrote (H-14)."""
    out, _ = fixture_site
    page = read_site(out)["seed/spurious_db.html"].decode()
    for heading in ("RIP", "RFLAGS", "next_rip", "EVENTINJ", "EXITINTINFO", "queued event"):
        assert f"<th>{heading}</th>" in page
    assert re.search(r'<td class="value changed">0x80000303 #BP exception</td>', page)


def test_outcomes_side_by_side_show_failed_expectation(fixture_site: Built) -> None:
    """Issue 6 §3-4: outcomes per policy with the expectation and whether it held in this run: a stale
    expectation (return rip 0x2222, EX-01 says 0x1001) shows FAILED with what was expected and observed."""
    out, result = fixture_site
    site = read_site(out)
    text = _text(site["seed/stale.html"])
    assert "FAILED" in text
    assert "expect delivered #BP with return rip=0x2222" in text
    assert re.search(r"got\s*0x1001", text)
    assert result.failed == 2
    index = parse_html(site["index.html"])
    failed = [cell for cell in index.named("td") if "status-failed" in (cell.get("class") or "")]
    assert {cell.get("data-policy") for cell in failed} == {"kvm-6.0", "architectural"}
    assert "**FAILED**" in site["seed/stale.md"].decode()


def test_markdown_pages_link_their_diagrams(fixture_site: Built) -> None:
    """Issue 6 §1: the same content as Markdown; diagrams are SVG files next to the page (GitHub shows images,
    not inline SVG)."""
    out, _ = fixture_site
    site = read_site(out)
    markdown = site["seed/spurious_db.md"].decode()
    links = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert links
    for link in links:
        assert (out / "seed" / link).is_file(), link
        assert site[f"seed/{link}"].startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<svg')
    assert "# seed/spurious\\_db.svm" in markdown


def test_a_file_with_errors_gets_a_page_saying_so(tmp_path: Path) -> None:
    """Issue 6 §4: a file that does not parse is listed, and its page shows the diagnostic (file:line:col)."""
    library = tmp_path / "library" / "broken"
    library.mkdir(parents=True)
    (library / "bad.svm").write_text('scenario "x":\n  guest explodes\n', encoding="utf-8")
    from dsl.docs.build import build_site

    out = tmp_path / "site"
    result = build_site([str(tmp_path / "library")], out)
    assert result.broken_files == 1
    page = _text((out / "broken" / "bad.html").read_bytes())
    assert "This file has errors" in page
    assert re.search(r"bad\.svm:2:\d+", page)
    assert str(tmp_path) not in page, "no absolute paths in the output"


def test_fixture_library_is_what_the_tests_expect() -> None:
    """The fixtures these tests read (guards against an edit that silently removes a case)."""
    titles = _titles(FIXTURE_LIBRARY)
    assert sorted(titles) == ["nested/l1_reflect.svm", "seed/spurious_db.svm", "seed/stale.svm"]
