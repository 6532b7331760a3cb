"""The AST of a `.svm` file: immutable values, each carrying its source location (kept out of equality).

Names the user writes (policies, profiles, modes, vectors, mnemonics, observables, exit reasons…) are kept as
`Name` nodes holding the text exactly as written; the checker (`dsl.compiler.check`) validates them against the
closed vocabulary (`dsl.syntax.vocabulary`, built on `dsl.engine.vocab`) and suggests near names. Words fixed by
the grammar itself (who handles a fault, where an event is injected from, the outcome of a short expectation)
are enums: those of `dsl.engine.vocab` (`Outcome`, `PageTable`, `Level`, `InjectionSource`, re-exported here)
or small ones defined here.

The nodes live in three modules (`nodes`: names, code, events; `nodes_setup`: set-up sentences; `nodes_steps`:
steps and expectations); this module re-exports them all and adds the file structure. Import from here.

Scenario outlines are expanded textually (one `Scenario` per examples row), so no node ever holds a placeholder.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from dsl.engine.vocab import InjectionSource, Level, Outcome, PageTable
from dsl.errors import Loc
from dsl.syntax.nodes import (
    Code,
    Comparison,
    EventKind,
    EventSpec,
    FieldValue,
    Immediate,
    Instruction,
    Memory,
    Name,
    Number,
    Operand,
    RawBytes,
    Register,
    VectorRef,
    Vmcb,
    field_value,
)
from dsl.syntax.nodes_setup import (
    BreakpointSetting,
    CodeSetting,
    CplSetting,
    CsBaseSetting,
    GifSetting,
    GuestDebugSetting,
    IdtGateSetting,
    InterruptShadowSetting,
    L1FeatureSetting,
    L1InterceptSetting,
    ModeSetting,
    NripsSetting,
    PageSetting,
    PagingSetting,
    PoliciesSetting,
    ProfileSetting,
    ProtectionSetting,
    ReadingSetting,
    RflagsSetting,
    RipSetting,
    Setting,
    VariantSetting,
    VmcbFieldSetting,
)
from dsl.syntax.nodes_steps import (
    CancelEntryStep,
    CodeModifiedStep,
    DeliveredExpectation,
    ExecuteStep,
    ExitStep,
    Expectation,
    ExpectedValue,
    FieldCheck,
    FieldExpectation,
    InjectStep,
    OutcomeExpectation,
    PageStep,
    ReenterStep,
    RunStep,
    SaveRestoreStep,
    SpuriousDbExpectation,
    Step,
    Under,
    VectoringStep,
)

__all__ = [
    "EXPECTATION_TYPES",
    "SETTING_TYPES",
    "STEP_TYPES",
    "Background",
    "BreakpointSetting",
    "CancelEntryStep",
    "Code",
    "CodeModifiedStep",
    "CodeSetting",
    "Comparison",
    "CplSetting",
    "CsBaseSetting",
    "DeliveredExpectation",
    "EventKind",
    "EventSpec",
    "ExampleRow",
    "Examples",
    "ExecuteStep",
    "ExitStep",
    "Expectation",
    "ExpectedValue",
    "FieldCheck",
    "FieldExpectation",
    "FieldValue",
    "GifSetting",
    "GuestDebugSetting",
    "IdtGateSetting",
    "Immediate",
    "Include",
    "InjectStep",
    "InjectionSource",
    "Instruction",
    "InterruptShadowSetting",
    "L1FeatureSetting",
    "L1InterceptSetting",
    "Level",
    "Loc",
    "Memory",
    "ModeSetting",
    "Name",
    "NripsSetting",
    "Number",
    "Operand",
    "Outcome",
    "OutcomeExpectation",
    "PageSetting",
    "PageStep",
    "PageTable",
    "PagingSetting",
    "PoliciesSetting",
    "ProfileSetting",
    "ProtectionSetting",
    "RawBytes",
    "ReadingSetting",
    "ReenterStep",
    "Register",
    "RflagsSetting",
    "RipSetting",
    "RunStep",
    "SaveRestoreStep",
    "Scenario",
    "ScenarioOutline",
    "Setting",
    "SpuriousDbExpectation",
    "Statement",
    "Step",
    "SvmFile",
    "TemplateLine",
    "TopLevel",
    "Under",
    "VariantSetting",
    "VectorRef",
    "VectoringStep",
    "Vmcb",
    "VmcbFieldSetting",
    "field_value",
]


Statement: TypeAlias = Setting | Step | Expectation | Under

SETTING_TYPES: tuple[type, ...] = (
    ProfileSetting,
    PoliciesSetting,
    NripsSetting,
    PagingSetting,
    ProtectionSetting,
    VariantSetting,
    ReadingSetting,
    GuestDebugSetting,
    ModeSetting,
    CsBaseSetting,
    RipSetting,
    RflagsSetting,
    InterruptShadowSetting,
    CplSetting,
    GifSetting,
    BreakpointSetting,
    PageSetting,
    IdtGateSetting,
    VmcbFieldSetting,
    L1FeatureSetting,
    L1InterceptSetting,
    CodeSetting,
)
STEP_TYPES: tuple[type, ...] = (
    ExecuteStep,
    InjectStep,
    VectoringStep,
    ExitStep,
    CodeModifiedStep,
    PageStep,
    CancelEntryStep,
    SaveRestoreStep,
    ReenterStep,
    RunStep,
)
EXPECTATION_TYPES: tuple[type, ...] = (
    OutcomeExpectation,
    DeliveredExpectation,
    SpuriousDbExpectation,
    FieldExpectation,
    Under,
)

# --- file structure ---------------------------------------------------------------------------------------------


@attrs.frozen
class ExampleRow:
    """One row of an outline's examples table: the cell texts, in column order."""

    cells: tuple[str, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class Examples:
    """`examples:` and its table: a header row of column names, then one row per generated case."""

    columns: tuple[str, ...]
    rows: tuple[ExampleRow, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class Scenario:
    """`scenario "title":` with its tags, citations, description and statements (in file order).

    For a scenario generated from an outline, `example` is the row it came from (its title has the placeholders
    substituted); otherwise None. A scenario holds only its own statements; `dsl.syntax.expand` prepends the
    background's.
    """

    title: str
    tags: tuple[str, ...]
    sources: tuple[str, ...]
    description: str | None
    statements: tuple[Statement, ...]
    example: ExampleRow | None = None
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)

    @property
    def settings(self) -> tuple[Setting, ...]:
        return tuple(s for s in self.statements if isinstance(s, SETTING_TYPES))  # type: ignore[misc]

    @property
    def steps(self) -> tuple[Step, ...]:
        return tuple(s for s in self.statements if isinstance(s, STEP_TYPES))  # type: ignore[misc]

    @property
    def expectations(self) -> tuple[Expectation | Under, ...]:
        return tuple(s for s in self.statements if isinstance(s, EXPECTATION_TYPES))  # type: ignore[misc]


@attrs.frozen
class TemplateLine:
    """One body line of a scenario outline, as written (placeholders such as `<n>` not yet substituted)."""

    text: str
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class ScenarioOutline:
    """`scenario outline "title <n>":` — a template, expanded into one `Scenario` per examples row.

    `scenarios` holds the expansion (parsed from the substituted text, so every statement is concrete).
    """

    title: str
    tags: tuple[str, ...]
    sources: tuple[str, ...]
    description: str | None
    template: tuple[TemplateLine, ...]
    examples: Examples
    scenarios: tuple[Scenario, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class Background:
    """`background:` — set-up shared by every scenario of the file (and of files that include it)."""

    statements: tuple[Setting, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class Include:
    """`include "common.svm"`: the backgrounds of another file, path relative to this file.

    `file` is the included file's parsed AST (None only while parsing is in progress).
    """

    path: str
    file: SvmFile | None = None
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


TopLevel: TypeAlias = Include | Background | Scenario | ScenarioOutline


@attrs.frozen
class SvmFile:
    """A parsed `.svm` file: its top-level items in file order."""

    path: str
    items: tuple[TopLevel, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)
    #: The file's text, for diagnostics that quote a line (not part of equality).
    text: str = attrs.field(default="", eq=False, repr=False, kw_only=True)

    @property
    def includes(self) -> tuple[Include, ...]:
        return tuple(i for i in self.items if isinstance(i, Include))

    @property
    def backgrounds(self) -> tuple[Background, ...]:
        return tuple(i for i in self.items if isinstance(i, Background))

    @property
    def scenarios(self) -> tuple[Scenario | ScenarioOutline, ...]:
        """Scenarios and outlines as written (outlines not expanded); see `dsl.syntax.expand` for concrete ones."""
        return tuple(i for i in self.items if isinstance(i, Scenario | ScenarioOutline))
