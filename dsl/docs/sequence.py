"""Lay out a sequence diagram from an engine trace: lanes for the participants, one row per trace entry.

Only geometry and words are computed here (plain frozen values); `templates/sequence.svg.j2` draws them, so
every text the trace carries goes through the template's autoescaping.
"""

from __future__ import annotations

import attrs

from dsl.engine.result import Action, TraceEntry
from dsl.engine.vocab import Actor

#: Lane order, left to right: who starts things on the left, the hardware on the right.
LANE_ORDER: tuple[Actor, ...] = (Actor.USERSPACE, Actor.GUEST, Actor.L1, Actor.L0, Actor.CPU)

#: Lanes drawn even when the trace never names them (the story's cast); L1 joins when the guest is nested.
ALWAYS_SHOWN: tuple[Actor, ...] = (Actor.GUEST, Actor.L0, Actor.CPU)

#: Whom an action is addressed to; an action missing here is drawn on its actor's own lane (work done in place).
TARGETS: dict[tuple[Actor, Action], Actor] = {
    (Actor.GUEST, Action.EXECUTE): Actor.CPU,
    (Actor.CPU, Action.VMRUN): Actor.GUEST,
    (Actor.CPU, Action.DELIVER): Actor.GUEST,
    (Actor.CPU, Action.VMEXIT): Actor.L0,
    (Actor.CPU, Action.FAIL): Actor.L0,
    (Actor.L0, Action.VMRUN): Actor.CPU,
    (Actor.L0, Action.INJECT): Actor.CPU,
    (Actor.L0, Action.REFLECT): Actor.L1,
    (Actor.L1, Action.VMRUN): Actor.L0,
    (Actor.L1, Action.INJECT): Actor.L0,
    (Actor.USERSPACE, Action.QUEUE): Actor.L0,
    (Actor.USERSPACE, Action.INJECT): Actor.L0,
    (Actor.USERSPACE, Action.RESTORE): Actor.L0,
}

#: Lane colours (stroke, light fill), one per actor: the same actor reads the same in every diagram.
LANE_COLOURS: dict[Actor, tuple[str, str]] = {
    Actor.USERSPACE: ("#6b5b95", "#ece8f4"),
    Actor.GUEST: ("#2e7d32", "#e6f2e7"),
    Actor.L1: ("#b26a00", "#fbefdc"),
    Actor.L0: ("#1f5fa8", "#e3edf8"),
    Actor.CPU: ("#8e2430", "#f6e3e5"),
}

# Geometry, in SVG user units (pixels at 100 %).
GUTTER = 96  # left column: step number and rule
LANE_WIDTH = 170
HEADER_HEIGHT = 44
ROW_HEIGHT = 34
FOOTER = 16
BOX_INSET = 12
#: Average width of a character of the labels' 11-pixel font: labels are cut to the room they have.
CHAR_WIDTH = 6.2
#: Labels are never cut shorter than this; the full text stays in the tooltip and the state table.
LABEL_MINIMUM = 24
#: Room right of the last lane for the labels of rows drawn there.
RIGHT_MARGIN = 260
SELF_MARK_WIDTH = 14
#: Space between a label and the arrow end or mark it belongs to.
LABEL_GAP = 8


@attrs.frozen
class Lane:
    """One participant: its name, the x of its lifeline and its colours."""

    actor: Actor
    label: str
    x: int
    stroke: str
    fill: str

    @property
    def box_x(self) -> int:
        return self.x - LANE_WIDTH // 2 + BOX_INSET

    @property
    def box_width(self) -> int:
        return LANE_WIDTH - 2 * BOX_INSET


@attrs.frozen
class Message:
    """One trace entry as a row: an arrow between two lanes, or a mark on one lane when `source == target`."""

    number: int
    y: int
    source_x: int
    target_x: int
    label: str
    full_text: str
    rule: str
    stroke: str
    lane: int  # the index of the actor's lane, from 1: picks its arrowhead

    @property
    def is_self(self) -> bool:
        return self.source_x == self.target_x

    @property
    def label_x(self) -> int:
        return label_start(min(self.source_x, self.target_x), self.is_self)


@attrs.frozen
class Diagram:
    """A sequence diagram, ready to draw: size, lanes and messages in trace order."""

    width: int
    height: int
    lanes: tuple[Lane, ...]
    messages: tuple[Message, ...]
    lifeline_bottom: int
    title: str


def lane_label(actor: Actor, nested: bool) -> str:
    """The name a reader knows: the guest is L2 when an L1 hypervisor runs it."""
    if actor is Actor.GUEST:
        return "L2 guest" if nested else "guest"
    if actor is Actor.L0:
        return "L0 hypervisor"
    if actor is Actor.L1:
        return "L1 hypervisor"
    return str(actor.value)


def entry_label(entry: TraceEntry) -> str:
    """`action: message`, the words a row shows."""
    return f"{entry.action.value}: {entry.message}" if entry.message else entry.action.value


def label_start(left: int, is_self: bool) -> int:
    """Labels start just right of an arrow's left end, or of a self mark."""
    return left + (SELF_MARK_WIDTH if is_self else 0) + LABEL_GAP


def room(source_x: int, target_x: int, right_edge: int) -> int:
    """How many characters fit from where the label starts to the diagram's right edge.

    Every row holds one message, so a label may run past its arrow's end without meeting another label; the halo
    the template draws keeps it legible across lifelines.
    """
    start = label_start(min(source_x, target_x), source_x == target_x)
    return max(LABEL_MINIMUM, int((right_edge - LABEL_GAP - start) / CHAR_WIDTH))


def shorten(text: str, limit: int) -> str:
    """At most `limit` characters, an ellipsis marking a cut."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def target_of(entry: TraceEntry) -> Actor:
    """Whom an entry's action is addressed to (itself when nobody else is involved)."""
    return TARGETS.get((entry.actor, entry.action), entry.actor)


def build_diagram(trace: tuple[TraceEntry, ...], *, nested: bool, title: str) -> Diagram:
    """The diagram of `trace`; `nested` names the guest L2 and always shows L1."""
    cast = set(ALWAYS_SHOWN) | {entry.actor for entry in trace} | {target_of(entry) for entry in trace}
    if nested:
        cast.add(Actor.L1)
    actors = [actor for actor in LANE_ORDER if actor in cast]
    lanes = tuple(
        Lane(actor, lane_label(actor, nested), GUTTER + LANE_WIDTH * index + LANE_WIDTH // 2, *LANE_COLOURS[actor])
        for index, actor in enumerate(actors)
    )
    x_of = {lane.actor: lane.x for lane in lanes}
    index_of = {lane.actor: index for index, lane in enumerate(lanes, start=1)}
    width = GUTTER + LANE_WIDTH * len(lanes) + RIGHT_MARGIN
    messages = []
    for number, entry in enumerate(trace, start=1):
        text = entry_label(entry)
        source, target = x_of[entry.actor], x_of[target_of(entry)]
        messages.append(
            Message(
                number=number,
                y=HEADER_HEIGHT + ROW_HEIGHT * number,
                source_x=source,
                target_x=target,
                label=shorten(text, room(source, target, width)),
                full_text=text,
                rule=entry.rule,
                stroke=LANE_COLOURS[entry.actor][0],
                lane=index_of[entry.actor],
            )
        )
    bottom = HEADER_HEIGHT + ROW_HEIGHT * (len(trace) + 1)
    return Diagram(
        width=width,
        height=bottom + FOOTER,
        lanes=lanes,
        messages=tuple(messages),
        lifeline_bottom=bottom,
        title=title,
    )
