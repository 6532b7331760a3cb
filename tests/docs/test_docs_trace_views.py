"""The sequence diagram and the state table, from hand-written traces of the engine's shape (EX-01, EX-43)."""

from __future__ import annotations

from dsl.docs.model import CaseView, Status
from dsl.docs.sequence import build_diagram, target_of
from dsl.docs.states import Column, column_of, state_rows
from dsl.docs.stories import Told, tell
from dsl.engine.program import Program, Setup
from dsl.engine.result import Action, Change, Result, TraceEntry
from dsl.engine.vocab import Actor, Evidence, Outcome

#: EX-01 under kvm-6.0, nrips=1, as the engine traces it: the #PF cuts delivery short, KVM re-injects.
EX01 = (
    TraceEntry(Actor.GUEST, Action.EXECUTE, "", "0x1000: int3 (cc)"),
    TraceEntry(
        Actor.CPU,
        Action.VMEXIT,
        "H-14",
        "#VMEXIT 0x4e: #PF while delivering #BP",
        (Change("vmcb.exit_int_info", 0, 0x80000303), Change("vmcb.next_rip", 0, 0)),
    ),
    TraceEntry(Actor.L0, Action.REQUEUE, "K-6.0-9", "requeue #BP as injected"),
    TraceEntry(
        Actor.L0,
        Action.SKIP,
        "K-6.0-5",
        "decode cc: next 0x1001",
        (Change("kvm.next_rip", 0, 0x1001), Change("vmcb.next_rip", 0, 0x1001)),
    ),
    TraceEntry(Actor.L0, Action.INJECT, "K-6.0-6", "EVENTINJ", (Change("vmcb.event_inj", 0, 0x80000303),)),
    TraceEntry(Actor.CPU, Action.VMRUN, "H-6", "VMRUN", ()),
    TraceEntry(
        Actor.CPU, Action.DELIVER, "H-6", "deliver #BP, return 0x1001", (Change("guest.rip", 0x1000, 0xFFFF0030),)
    ),
)


def test_lanes_are_the_cast_in_order() -> None:
    """Issue 6 §3: participants guest, L0 hypervisor and CPU; L1 only when the guest is nested (then L2)."""
    plain = build_diagram(EX01, nested=False, title="EX-01")
    assert [lane.label for lane in plain.lanes] == ["guest", "L0 hypervisor", "CPU"]
    nested = build_diagram(EX01, nested=True, title="EX-43")
    assert [lane.label for lane in nested.lanes] == ["L2 guest", "L1 hypervisor", "L0 hypervisor", "CPU"]
    with_userspace = (TraceEntry(Actor.USERSPACE, Action.QUEUE, "K-5.19-19", "KVM_SET_VCPU_EVENTS #BP"), *EX01)
    first = build_diagram(with_userspace, nested=False, title="EX-21").lanes[0]
    assert first.label == "userspace"


def test_messages_follow_the_trace() -> None:
    """One row per trace entry, in order: the guest executes on the CPU, the CPU exits to L0, L0 works alone."""
    diagram = build_diagram(EX01, nested=False, title="EX-01")
    x = {lane.actor: lane.x for lane in diagram.lanes}
    assert [m.number for m in diagram.messages] == list(range(1, len(EX01) + 1))
    assert [m.y for m in diagram.messages] == sorted(m.y for m in diagram.messages)
    execute, vmexit, requeue, *_ = diagram.messages
    assert (execute.source_x, execute.target_x) == (x[Actor.GUEST], x[Actor.CPU])
    assert (vmexit.source_x, vmexit.target_x) == (x[Actor.CPU], x[Actor.L0])
    assert requeue.is_self
    assert requeue.rule == "K-6.0-9"
    assert target_of(EX01[5]) is Actor.GUEST, "VMRUN enters the guest"


def test_long_labels_are_shortened_but_kept_whole_in_the_tooltip() -> None:
    """A label that does not fit is cut with an ellipsis; the full text stays for the tooltip."""
    long = TraceEntry(Actor.L0, Action.NOTE, "", "x" * 400)
    message = build_diagram((long,), nested=False, title="t").messages[0]
    assert message.label.endswith("…")
    assert len(message.label) < len(message.full_text)
    assert message.full_text == "note: " + "x" * 400


def test_state_rows_fold_changes_and_mark_them() -> None:
    """Issue 6 §3: the set-up, then the state after each entry; the columns an entry changed are marked."""
    rows = state_rows(Setup(rip=0x1000, rflags=0x202), EX01)
    assert len(rows) == len(EX01) + 1
    headings = [column.value for column in Column]
    assert headings == ["RIP", "RFLAGS", "next_rip", "EVENTINJ", "EXITINTINFO", "queued event"]
    setup = dict(zip(headings, rows[0].cells, strict=True))
    assert setup["RIP"].text == "0x1000"
    assert not any(cell.changed for cell in rows[0].cells)
    after_exit = dict(zip(headings, rows[2].cells, strict=True))
    assert after_exit["EXITINTINFO"].text == "0x80000303 #BP exception"
    assert after_exit["EXITINTINFO"].changed
    assert not after_exit["RIP"].changed
    after_skip = dict(zip(headings, rows[4].cells, strict=True))
    assert after_skip["next_rip"].text == "0x1001"
    assert "kvm.next_rip 0x0 → 0x1001" in rows[4].other_changes, "KVM's copy is not the VMCB's next_rip"
    last = dict(zip(headings, rows[-1].cells, strict=True))
    assert last["RIP"].text == "0xffff0030"
    assert last["RIP"].changed
    assert last["EVENTINJ"].text == "0x80000303 #BP exception", "values carry over from earlier rows"
    assert not last["EVENTINJ"].changed


def test_queue_column_follows_the_engine_or_the_requeue() -> None:
    """The queued event: a `queue` field when the engine reports one, else the requeue entry's words."""
    rows = state_rows(Setup(), EX01)
    queued = [row.cells[list(Column).index(Column.QUEUED)] for row in rows]
    assert queued[3].text == "requeue #BP as injected"
    assert queued[3].changed
    explicit = (TraceEntry(Actor.L0, Action.REQUEUE, "K-6.0-9", "requeue", (Change("queue", None, "#BP injected"),)),)
    row = state_rows(Setup(), explicit)[1]
    assert row.cells[list(Column).index(Column.QUEUED)].text == "#BP injected"


def test_column_of_ignores_copies() -> None:
    """vmcb12 (L1's copy) and soft_int (KVM's record) are not the VMCB the CPU runs."""
    assert column_of(Change("vmcb.next_rip", 0, 1)) is Column.NEXT_RIP
    assert column_of(Change("vmcb12.next_rip", 0, 1)) is None
    assert column_of(Change("soft_int.next_rip", 0, 1)) is None
    assert column_of(Change("rflags", 0, 1)) is Column.RFLAGS


def _told(policy: str, trace: tuple[TraceEntry, ...], row: int | None = None) -> Told:
    anchor = f"ex-01--{policy}" + (f"--row-{row}" if row is not None else "")
    case = CaseView(policy=policy, row=row, status=Status.HELD, anchor=anchor, outcome="reinject")
    return Told(case, Result(Outcome.REINJECT, Evidence.VERIFIED, trace=trace), Program(Setup()))


def test_identical_traces_are_told_once() -> None:
    """Policies whose runs traced the same steps share one story; a different trace gets its own (EX-01: kvm-6.0
    and kvm-6.2 re-inject alike, kvm-5.19 retries)."""
    retry = EX01[:2]
    told = [_told("kvm-5.19", retry), _told("kvm-6.0", EX01), _told("kvm-6.2", EX01)]
    cases, stories = tell("EX-01", "seed/ex01.svm", told)
    assert [story.policies for story in stories] == [("kvm-5.19",), ("kvm-6.0", "kvm-6.2")]
    assert stories[1].case_anchors == ("ex-01--kvm-6.0", "ex-01--kvm-6.2")
    assert cases[1].story == cases[2].story == stories[1].anchor
    assert cases[0].story == stories[0].anchor
    assert stories[1].svg_file == "seed/ex01/ex-01--kvm-6.0.svg"
    assert len(stories[1].states) == len(EX01) + 1


def test_outline_rows_are_told_apart() -> None:
    """The same trace in two outline rows is two stories: each row is its own situation."""
    cases, stories = tell("EX-02", "seed/ex02.svm", [_told("kvm-6.0", EX01, row=1), _told("kvm-6.0", EX01, row=2)])
    assert [story.row for story in stories] == [1, 2]
    assert stories[1].label == "kvm-6.0 (row 2)"
    assert cases[0].story != cases[1].story
