"""AST nodes of the steps (`guest executes`, `inject` …) and expectations (`expect` …, `under`).

Part of `dsl.syntax.ast`.
"""

from __future__ import annotations

from typing import TypeAlias

import attrs

from dsl.engine.vocab import InjectionSource, Level, Outcome, PageTable
from dsl.errors import Loc
from dsl.syntax.nodes import Code, Comparison, EventSpec, FieldValue, Name, VectorRef, field_value

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
class FieldCheck:
    """`name=value` after `expect <outcome> with`: an extra `==` check on an observable, with any value that
    observable takes (`next_rip=0x1001`, `spurious_db=false`, `delivered=#BP`, `evidence=V`)."""

    field: Name
    value: ExpectedValue
    loc: Loc = attrs.field(eq=False, repr=False, kw_only=True)


@attrs.frozen
class OutcomeExpectation:
    """`expect reinject with next_rip=0x1001`, `expect retry`, `expect vmexit invalid`: the outcome class.

    Two-word outcomes are written with a space (`vmexit invalid`, `host bug`, `emulation error`).

    Each `with` pair is an extra `==` check on an observable.
    """

    outcome: Outcome
    checks: tuple[FieldCheck, ...]
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
