"""The AST of a `.svm` file: immutable values, each carrying its source location (kept out of equality).

Names the user writes (policies, profiles, modes, vectors, mnemonics, observables, exit reasons…) are kept as
`Name` nodes holding the text exactly as written; the checker (`dsl.compiler.check`) validates them against the
closed vocabulary (`dsl.syntax.vocabulary`, built on `dsl.engine.vocab`) and suggests near names. Words fixed by
the grammar itself (who handles a fault, where an event is injected from, the outcome of a short expectation)
are enums: those of `dsl.engine.vocab` (`Outcome`, `PageTable`, `Level`, `InjectionSource`, re-exported here)
or small ones defined here.

Scenario outlines are expanded textually (one `Scenario` per examples row), so no node ever holds a placeholder.
"""

from __future__ import annotations

import enum
from typing import TypeAlias

import attrs

from dsl.engine.vocab import InjectionSource as InjectionSource
from dsl.engine.vocab import Level as Level
from dsl.engine.vocab import Outcome as Outcome
from dsl.engine.vocab import PageTable as PageTable
from dsl.errors import Loc as Loc


@attrs.frozen
class Name:
    """A word from the closed vocabulary as written: `kvm-6.0`, `#PF`, `int3`, `event_inj`, `long64`."""

    text: str
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


# --- enums for words the grammar fixes -------------------------------------------------------------------------


class Vmcb(enum.Enum):
    """Which VMCB a `vmcb… <field> <value>` set-up line writes (README glossary)."""

    VMCB = "vmcb"  # the only VMCB without nesting (vmcb01 / the running one): its stale fields
    VMCB12 = "vmcb12"  # what L1 wrote for L2
    VMCB02 = "vmcb02"  # what L0 runs L2 with: its stale save area before the nested VMRUN


class EventKind(enum.Enum):
    """How an injected or delivered event is named in a scenario."""

    EXCEPTION = "exception"  # `#BP`, `#OF`, `#CP` — EVENTINJ type 3
    SOFT_INTERRUPT = "int"  # `int 0x80` — type 4
    INTERRUPT = "irq"  # `irq 0x30` — type 0
    NMI = "nmi"  # `nmi` — type 2
    RAW = "event"  # `event 0x80000315` — a raw EVENTINJ value, valid or not


class Comparison(enum.Enum):
    """The operator of a raw field check."""

    EQ = "=="
    NE = "!="
    CONTAINS = "contains"  # for tuple observables such as `tracepoints`


# --- code -------------------------------------------------------------------------------------------------------


@attrs.frozen
class Register:
    """A register operand: `al`, `rcx`, `esp`."""

    name: str
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class Immediate:
    """An immediate or branch-target operand; `modifier` is `short`/`near`/`far` when written (`jmp short 0x1012`)."""

    value: int
    modifier: str | None = None
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class Memory:
    """A memory operand `[base + index*scale + displacement]`, with an optional size (`dword ptr [ebx]`)."""

    size: str | None
    base: str | None
    index: str | None
    scale: int
    displacement: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


Operand: TypeAlias = Register | Immediate | Memory


@attrs.frozen
class Instruction:
    """An instruction by mnemonic: `es int3`, `int 0x80`, `out 0x80, al`, `rex.w mov rax, rcx` (lower case)."""

    prefixes: tuple[Name, ...]
    mnemonic: Name
    operands: tuple[Operand, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class RawBytes:
    """Instruction bytes written out: `bytes 66 cd 80`."""

    data: bytes
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


Code: TypeAlias = Instruction | RawBytes

#: A vector as written: a name (`#BP`, `NMI`) or a number (`0x80`).
VectorRef: TypeAlias = Name | int


@attrs.frozen
class EventSpec:
    """An event: `#BP` (exception), `int 0x80` (soft interrupt), `irq 0x30`, `nmi`, or `event 0x80000303` (raw)."""

    kind: EventKind
    vector: VectorRef | None = None  # None for NMI and RAW
    raw: int | None = None  # only for RAW
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class FieldValue:
    """`name=value` in a `with …` clause: `next_rip=0x5002`, `error_code=0x1a`."""

    field: Name
    value: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


def field_value(fields: tuple[FieldValue, ...], name: str) -> int | None:
    """The value of `name=` among `fields` (the last one if repeated; the checker reports repeats), or None."""
    found = [f.value for f in fields if f.field.text == name]
    return found[-1] if found else None


# --- set-up -----------------------------------------------------------------------------------------------------


@attrs.frozen
class ProfileSetting:
    """`profile amd-nrips`: the hardware profile."""

    profile: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class PoliciesSetting:
    """`policies kvm-5.19, kvm-6.0` (or `policy kvm-6.0`): the hypervisor policies the scenario runs under."""

    policies: tuple[Name, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class NripsSetting:
    """`nrips 1` / `nrips 0`: the kvm_amd module parameter (effective value)."""

    enabled: bool
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class PagingSetting:
    """`paging shadow` / `paging npt`: how L0 virtualizes guest memory (npt=0 / npt=1)."""

    paging: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class ProtectionSetting:
    """`protection sev-es`: guest protection none / sev / sev-es / sev-snp."""

    protection: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class VariantSetting:
    """`variant seed-as-committed`: a policy variant (the seed as first committed, K-6.0-20)."""

    variant: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class ReadingSetting:
    """`int-n reading B`: which reading of K-6.19-6 (INT n with n ≥ 0x80) to apply, `A` or `B`."""

    reading: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class GuestDebugSetting:
    """`guest debug sw-bp`: KVM_SET_GUEST_DEBUG with KVM_GUESTDBG_USE_SW_BP (L0 intercepts #BP, K-5.19-20)."""

    mode: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class ModeSetting:
    """`mode protected32`: the guest CPU mode."""

    mode: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class CsBaseSetting:
    """`cs base 0x10000`: the CS segment base in the VMCB save area."""

    base: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class RipSetting:
    """`rip 0x1000`: the guest RIP before the first step."""

    rip: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class RflagsSetting:
    """`rflags 0x202` or `rflags IF OF`: RFLAGS as a value, or the flags set by name (others clear, bit 1 set)."""

    value: int | None
    flags: tuple[Name, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class InterruptShadowSetting:
    """`interrupt shadow sti` / `mov-ss` / `none`: the one-instruction interrupt shadow (H-35)."""

    shadow: Name
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class CplSetting:
    """`cpl 3`: the current privilege level."""

    cpl: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class GifSetting:
    """`gif 0`: the global interrupt flag."""

    gif: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class BreakpointSetting:
    """`breakpoint dr0 at 0x1000`: an enabled DR7 instruction breakpoint."""

    register: Name
    address: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class PageSetting:
    """`page 0x7000 not present in host`: presence of the page holding an address in guest or L0 tables."""

    address: int
    present: bool
    tables: PageTable
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class IdtGateSetting:
    """`idt gate #BP not present`, `idt gate 0x80 dpl 3 type trap`: one IDT gate's attributes.

    Unspecified attributes keep the profile's default (present, DPL 3 for the soft vectors, interrupt gate).
    """

    vector: VectorRef
    present: bool
    dpl: int | None
    gate_type: Name | None
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class VmcbFieldSetting:
    """`vmcb next_rip 0x1000` (stale), `vmcb12 event_inj 0x80000303`, `vmcb02 cs_base 0`: a VMCB field's value."""

    vmcb: Vmcb
    field: Name
    value: int
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class L1FeatureSetting:
    """`l1 with nrips` / `l1 without shstk`: a CPUID feature as seen by the nested hypervisor L1."""

    feature: Name
    present: bool
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class L1InterceptSetting:
    """`l1 intercepts #PF, #UD, nmi, hlt`: what L1 intercepts for L2 (exceptions by vector, other exits by name)."""

    intercepts: tuple[Name, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class CodeSetting:
    """`code at 0x1000: int3` or `code at 0x3000: bytes 2e cd 80`: guest memory holds this code."""

    address: int
    code: Code
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


Setting: TypeAlias = (
    ProfileSetting
    | PoliciesSetting
    | NripsSetting
    | PagingSetting
    | ProtectionSetting
    | VariantSetting
    | ReadingSetting
    | GuestDebugSetting
    | ModeSetting
    | CsBaseSetting
    | RipSetting
    | RflagsSetting
    | InterruptShadowSetting
    | CplSetting
    | GifSetting
    | BreakpointSetting
    | PageSetting
    | IdtGateSetting
    | VmcbFieldSetting
    | L1FeatureSetting
    | L1InterceptSetting
    | CodeSetting
)

# --- steps ------------------------------------------------------------------------------------------------------


@attrs.frozen
class ExecuteStep:
    """`guest executes` / `guest executes int3`: the guest executes the instruction at RIP (which must be it)."""

    instruction: Code | None
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class InjectStep:
    """`inject #BP from userspace`, `inject int 0x20 from L1 with next_rip=0x6000`: software injects an event."""

    event: EventSpec
    source: InjectionSource
    fields: tuple[FieldValue, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)

    def field(self, name: str) -> int | None:
        """The value given as `name=` in the `with` clause (rip, next_rip, cs_base, error_code), or None."""
        return field_value(self.fields, name)


@attrs.frozen
class VectoringStep:
    """`vectoring hits #PF intercepted by L0`, `vectoring of #NP hits #PF with error_code=0x2`.

    The next delivery (of `during`, when given: e.g. the #NP raised on a non-present gate) is cut short by
    `fault`. `handler` is L0 (the default of a bare `intercepted`), L1, or the guest (`handled by guest`).
    `fields` are `error_code=` and `cr2=`.
    """

    fault: Name
    during: VectorRef | None
    fields: tuple[FieldValue, ...]
    handler: Level
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)

    @property
    def error_code(self) -> int | None:
        return field_value(self.fields, "error_code")

    @property
    def cr2(self) -> int | None:
        return field_value(self.fields, "cr2")


@attrs.frozen
class ExitStep:
    """`exit for hlt`, `exit for vmmcall intercepted by L1`: an exit that is not a vectoring fault."""

    reason: Name
    handler: Level
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class CodeModifiedStep:
    """`code at 0x1000 modified to nop`: the bytes at an address are rewritten between an exit and the re-entry."""

    address: int
    code: Code
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class PageStep:
    """`page 0x1000 unmapped in guest` / `mapped in host`: a page-table entry changes."""

    address: int
    mapped: bool
    tables: PageTable
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class CancelEntryStep:
    """`entry cancelled`: the next VM entry is abandoned after injection (pending signal)."""

    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class SaveRestoreStep:
    """`save and restore` [`with nested run pending`] [`, regs first`]: KVM_GET/SET_NESTED_STATE into a fresh vCPU.

    `nested_run_pending` states what the author expects the state to be (the engine knows it from the steps);
    `regs_first`: userspace calls KVM_SET_REGS before KVM_SET_NESTED_STATE.
    """

    nested_run_pending: bool
    regs_first: bool
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class ReenterStep:
    """`host re-enters`: one re-entry (injection hooks, VMRUN, delivery, possibly an exit)."""

    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class RunStep:
    """`run`: re-enter until the event is delivered, lost, or the guest resumes past it."""

    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


Step: TypeAlias = (
    ExecuteStep
    | InjectStep
    | VectoringStep
    | ExitStep
    | CodeModifiedStep
    | PageStep
    | CancelEntryStep
    | SaveRestoreStep
    | ReenterStep
    | RunStep
)

# --- expectations -----------------------------------------------------------------------------------------------

#: The right-hand side of a raw check: a number, `true`/`false`, a word (`reinject`, `#BP`, `none`) or a "string".
ExpectedValue: TypeAlias = int | bool | Name | str


@attrs.frozen
class OutcomeExpectation:
    """`expect reinject with next_rip=0x1001`, `expect retry`, `expect vmexit invalid`: the outcome class.

    Two-word outcomes are written with a space (`vmexit invalid`, `host bug`, `emulation error`).

    Each `with` pair is an extra `==` check on an observable.
    """

    outcome: Outcome
    checks: tuple[FieldValue, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class DeliveredExpectation:
    """`expect delivered #BP with return rip=0x1001`; `expect no #UD` (negated: never delivered).

    `error_code` checks the error code pushed with it (`expect delivered #NP with error_code=0x1a`).
    """

    event: EventSpec
    return_rip: int | None
    error_code: int | None
    negated: bool
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class SpuriousDbExpectation:
    """`expect no spurious #DB` / `expect spurious #DB`: whether a code breakpoint fired a second time."""

    present: bool
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class FieldExpectation:
    """`expect event_inj == 0x80000303`, `expect exit_code[last] == 0x78`: a raw check of one observable.

    `pick` chooses which VMRUN / exit / delivery the observable reads (`first`, `last`, `focus` or an index);
    None reads the default one (see `dsl.engine.vocab.Observable`).
    """

    observable: Name
    pick: Name | int | None
    comparison: Comparison
    value: ExpectedValue
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


Expectation: TypeAlias = OutcomeExpectation | DeliveredExpectation | SpuriousDbExpectation | FieldExpectation


@attrs.frozen
class Under:
    """`under kvm-6.0, kvm-mainline: expect …; expect …`: expectations that hold only under these policies."""

    policies: tuple[Name, ...]
    expectations: tuple[Expectation, ...]
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


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
