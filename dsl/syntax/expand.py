"""Concrete scenarios of a file: outlines expanded, background set-up put in front of each scenario's own.

Order of the set-up a scenario sees: the backgrounds of included files (in `include` order, recursively), then
this file's background, then the scenario's own statements. For a single-valued setting (`mode`, `rip`,
`paging` …) the last one wins, so a scenario can override its background; list-like settings (`code at`,
`page`, `idt gate`, `breakpoint`, `l1 intercepts`) accumulate.
"""

from __future__ import annotations

import attrs

from dsl.syntax import ast


def background_settings(svm_file: ast.SvmFile) -> tuple[ast.Setting, ...]:
    """Every background setting that applies to this file's scenarios, included files' first."""
    settings: list[ast.Setting] = []
    for item in svm_file.items:
        if isinstance(item, ast.Include) and item.file is not None:
            settings.extend(background_settings(item.file))
    for background in svm_file.backgrounds:
        settings.extend(background.statements)
    return tuple(settings)


def concrete_scenarios(svm_file: ast.SvmFile) -> tuple[ast.Scenario, ...]:
    """One `Scenario` per scenario and per outline row, in file order, each with the background in front."""
    shared = background_settings(svm_file)
    scenarios: list[ast.Scenario] = []
    for item in svm_file.scenarios:
        own = item.scenarios if isinstance(item, ast.ScenarioOutline) else (item,)
        scenarios.extend(attrs.evolve(s, statements=shared + s.statements) for s in own)
    return tuple(scenarios)
