"""The state after each trace entry: RIP, RFLAGS, next_rip, EVENTINJ, EXITINTINFO and KVM's queued event.

The first row is the set-up; every later row folds one trace entry's changes into the previous state and marks
the columns it changed. The engine names a changed field `scope.field` (`vmcb.next_rip`, `guest.rip`); a column
takes the changes whose last part is its field, except KVM's and L1's copies of it (`kvm.next_rip` is KVM's
`svm->next_rip`, `vmcb12.next_rip` is what L1 wrote), which are not the VMCB the CPU runs.
"""

from __future__ import annotations

import enum

import attrs

from dsl.engine import events
from dsl.engine.program import Setup
from dsl.engine.result import Action, Change, TraceEntry
from dsl.engine.vocab import Vector
from dsl.runtime.values import show


class Column(enum.Enum):
    """A column of the state table; the value is its heading."""

    RIP = "RIP"
    RFLAGS = "RFLAGS"
    NEXT_RIP = "next_rip"
    EVENT_INJ = "EVENTINJ"
    EXIT_INT_INFO = "EXITINTINFO"
    QUEUED = "queued event"


#: The field name (last part of a change's name) each column follows.
FIELDS: dict[Column, tuple[str, ...]] = {
    Column.RIP: ("rip",),
    Column.RFLAGS: ("rflags",),
    Column.NEXT_RIP: ("next_rip",),
    Column.EVENT_INJ: ("event_inj",),
    Column.EXIT_INT_INFO: ("exit_int_info",),
    Column.QUEUED: ("queue", "queued", "queued_event"),
}

#: Scopes whose fields are copies, not the VMCB the CPU runs with (see the module docstring).
OTHER_COPIES: tuple[str, ...] = ("kvm", "vmcb12", "soft_int", "int3")

#: Columns holding an EVENTINJ-encoded value, shown decoded.
ENCODED: tuple[Column, ...] = (Column.EVENT_INJ, Column.EXIT_INT_INFO)

#: When the engine does not report the queue as a field, these actions fill or empty the column.
QUEUEING: tuple[Action, ...] = (Action.QUEUE, Action.REQUEUE)
UNQUEUEING: tuple[Action, ...] = (Action.DROP, Action.CANCEL)

NOTHING = "—"


@attrs.frozen
class Cell:
    """One value of the table and whether the row's entry changed it."""

    text: str
    changed: bool = False


@attrs.frozen
class StateRow:
    """The state after trace entry `number` (0 for the set-up), with who did what under which rule."""

    number: int
    actor: str
    action: str
    rule: str
    message: str
    cells: tuple[Cell, ...]
    other_changes: tuple[str, ...] = ()


def column_of(change: Change) -> Column | None:
    """The column a change belongs to, if any."""
    scope, _, field = change.name.rpartition(".")
    if scope.split(".")[0] in OTHER_COPIES:
        return None
    for column, names in FIELDS.items():
        if field in names:
            return column
    return None


def show_value(column: Column, value: object) -> str:
    """`0x1001`, `0x80000303 #BP exception`, `none` …: the state table's spelling."""
    if value is None:
        return NOTHING
    if column in ENCODED and isinstance(value, int) and not isinstance(value, bool):
        if not events.is_valid(value):
            return "0" if value == 0 else f"{value:#010x} (V=0)"
        return describe_event(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return hex(value)
    return show(value)


def describe_event(value: int) -> str:
    """A valid EVENTINJ encoding, decoded: `0x80000303 #BP exception`."""
    vector = events.vector_of(value)
    name = Vector(vector).mnemonic if vector in Vector._value2member_map_ else f"{vector:#x}"
    kind = events.event_type_of(value)
    kind_text = kind.name.lower() if kind is not None else f"type {events.type_of(value)}"
    return f"{value:#010x} {name} {kind_text}"


def initial_state(setup: Setup) -> dict[Column, object]:
    """The state before the first entry: the set-up's registers and VMCB, nothing injected or queued."""
    return {
        Column.RIP: setup.rip,
        Column.RFLAGS: setup.rflags,
        Column.NEXT_RIP: setup.vmcb_next_rip,
        Column.EVENT_INJ: 0,
        Column.EXIT_INT_INFO: 0,
        Column.QUEUED: None,
    }


def state_rows(setup: Setup, trace: tuple[TraceEntry, ...]) -> tuple[StateRow, ...]:
    """The set-up row, then one row per trace entry."""
    state = initial_state(setup)
    reports_queue = any(column_of(c) is Column.QUEUED for entry in trace for c in entry.changes)
    rows = [StateRow(0, "set-up", "", "", "before the first step", _cells(state, ()))]
    for number, entry in enumerate(trace, start=1):
        changed: list[Column] = []
        others: list[str] = []
        for change in entry.changes:
            column = column_of(change)
            if column is None:
                others.append(f"{change.name} {show(change.old)} → {show(change.new)}")
                continue
            state[column] = change.new
            if change.new != change.old:  # a write of the same value is not a change worth marking
                changed.append(column)
        if not reports_queue:
            _follow_queue(entry, state, changed)
        rows.append(
            StateRow(
                number,
                entry.actor.value,
                entry.action.value,
                entry.rule,
                entry.message,
                _cells(state, tuple(changed)),
                tuple(others),
            )
        )
    return tuple(rows)


def _follow_queue(entry: TraceEntry, state: dict[Column, object], changed: list[Column]) -> None:
    """Without a queue field in the trace, a queue/requeue entry names the event; a drop or cancel empties it."""
    if entry.action in QUEUEING:
        state[Column.QUEUED] = entry.message
        changed.append(Column.QUEUED)
    elif entry.action in UNQUEUEING and state[Column.QUEUED] is not None:
        state[Column.QUEUED] = None
        changed.append(Column.QUEUED)


def _cells(state: dict[Column, object], changed: tuple[Column, ...]) -> tuple[Cell, ...]:
    return tuple(Cell(show_value(column, state[column]), column in changed) for column in Column)
