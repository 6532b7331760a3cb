"""A configuration (one value per axis), the selected space (a value list per axis) and its enumeration.

Not every combination is meaningful: an axis that does not apply to a configuration (L1's NRIPS without nesting, a
second exit when nothing was cut short …) must hold its first value, so that no behaviour is explored twice under
two names. `applicable` says which combinations are kept; `--axis` restrictions select values, never invent them.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

import attrs

from dsl.explore import axes
from dsl.explore.axes import AXES, AXIS_NAMES, Axis, axis_named

#: Instructions whose event KVM's sw-breakpoint guest debugging intercepts (#BP raised by INT3, EX-19).
_GUEST_DEBUG_INSTRUCTIONS: tuple[str, ...] = ("int3", "es-int3")
_NESTED_SOURCES: tuple[str, ...] = (axes.SOURCE_L1, axes.SOURCE_L1_UNBACKED)
_INJECTED_SOURCES: tuple[str, ...] = (
    axes.SOURCE_USERSPACE,
    axes.SOURCE_USERSPACE_UNBACKED,
    axes.SOURCE_GUEST_DEBUG,
    axes.SOURCE_L1,
    axes.SOURCE_L1_UNBACKED,
)
_USERSPACE_SOURCES: tuple[str, ...] = (axes.SOURCE_USERSPACE, axes.SOURCE_USERSPACE_UNBACKED)
_NRIPS_PROFILE = "amd-nrips"
_LONG_MODE = "long64"
_INTO = "into"
_HIGH_INT_N: tuple[str, ...] = ("int-0x80", "cs-int-0x80")


def _in_axis(name: str) -> Any:
    axis = axis_named(name)
    assert axis is not None
    return attrs.validators.in_(axis.values)


@attrs.frozen
class Configuration:
    """One point of the space: a value of every axis (see `dsl.explore.axes` for what each means)."""

    source: str = attrs.field(default=axes.SOURCE_INSTRUCTION, validator=_in_axis("source"))
    instruction: str = attrs.field(default="int3", validator=_in_axis("instruction"))
    mode: str = attrs.field(default="long64", validator=_in_axis("mode"))
    cs_base: str = attrs.field(default="0x0", validator=_in_axis("cs_base"))
    profile: str = attrs.field(default=_NRIPS_PROFILE, validator=_in_axis("profile"))
    nrips: str = attrs.field(default="1", validator=_in_axis("nrips"))
    l1_nrips: str = attrs.field(default=axes.YES, validator=_in_axis("l1_nrips"))
    paging: str = attrs.field(default="shadow", validator=_in_axis("paging"))
    vectoring: str = attrs.field(default=axes.VECTORING_NONE, validator=_in_axis("vectoring"))
    second_exit: str = attrs.field(default=axes.SECOND_NONE, validator=_in_axis("second_exit"))
    code_change: str = attrs.field(default=axes.CODE_UNCHANGED, validator=_in_axis("code_change"))
    decode: str = attrs.field(default=axes.DECODE_OK, validator=_in_axis("decode"))
    reading: str = attrs.field(default="B", validator=_in_axis("reading"))
    save_restore: str = attrs.field(default=axes.SAVE_NONE, validator=_in_axis("save_restore"))
    previous_exit: str = attrs.field(default=axes.PREVIOUS_NONE, validator=_in_axis("previous_exit"))
    debug: str = attrs.field(default=axes.DEBUG_NONE, validator=_in_axis("debug"))
    shadow: str = attrs.field(default=axes.SHADOW_NONE, validator=_in_axis("shadow"))
    protection: str = attrs.field(default="none", validator=_in_axis("protection"))

    def value(self, axis: str) -> str:
        """The value of one axis by name."""
        chosen: str = getattr(self, axis)
        return chosen

    @property
    def nested(self) -> bool:
        return self.source in _NESTED_SOURCES

    @property
    def injected(self) -> bool:
        """KVM (from userspace or guest debug) or L1 injects the event; the guest does not raise it itself."""
        return self.source in _INJECTED_SOURCES

    @property
    def rank(self) -> tuple[int, int, tuple[int, ...]]:
        """Smaller is simpler: how many axes leave their first value, how far in all, then axis by axis."""
        ranks = tuple(axis.rank(self.value(axis.name)) for axis in AXES)
        return (sum(1 for r in ranks if r), sum(ranks), ranks)

    def describe(self) -> str:
        """The axes that differ from the simplest value, `name=value` (what a counterexample varies)."""
        changed = [f"{axis.name}={self.value(axis.name)}" for axis in AXES if axis.rank(self.value(axis.name))]
        return ", ".join(changed) if changed else "all axes at their first value"


_FIRST: dict[str, str] = {axis.name: axis.values[0] for axis in AXES}


def _at_first(config: Configuration, name: str) -> bool:
    return config.value(name) == _FIRST[name]


def _cut_short(config: Configuration) -> bool:
    return config.vectoring != axes.VECTORING_NONE


def _effective_nrips(config: Configuration) -> bool:
    return config.profile == _NRIPS_PROFILE and config.nrips == "1"


#: Why a combination is left out: (reason, predicate that is true for the combinations it excludes). Each rule
#: either removes a combination the spec says cannot happen or one that only renames a simpler configuration.
EXCLUSIONS: tuple[tuple[str, Callable[[Configuration], bool]], ...] = (
    (
        "INTO is invalid in 64-bit mode (#UD): not a soft event there",
        lambda c: c.instruction == _INTO and c.mode == _LONG_MODE,
    ),
    (
        "the two readings of K-6.19-6 differ only for INT n with n >= 0x80",
        lambda c: c.instruction not in _HIGH_INT_N and not _at_first(c, "reading"),
    ),
    (
        "guest debugging intercepts the #BP of an INT3 only",
        lambda c: c.source == axes.SOURCE_GUEST_DEBUG and c.instruction not in _GUEST_DEBUG_INSTRUCTIONS,
    ),
    (
        "a DR7 breakpoint's #DB goes to the guest before the INT3 reaches userspace",
        lambda c: c.source == axes.SOURCE_GUEST_DEBUG and not _at_first(c, "debug"),
    ),
    (
        "L1's NRIPS and L1's intercepts need an L1",
        lambda c: not c.nested and (not _at_first(c, "l1_nrips") or c.vectoring == axes.VECTORING_L1),
    ),
    (
        "a CPU without NRIPS forces the effective nrips to 0 (K-5.19-1): one value suffices",
        lambda c: c.profile != _NRIPS_PROFILE and not _at_first(c, "nrips"),
    ),
    (
        "L1 is offered NRIPS only when L0's effective nrips is 1 (K-5.19-3, EX-39)",
        lambda c: c.nested and c.l1_nrips == axes.YES and not _effective_nrips(c),
    ),
    (
        "a second exit during, or an exit after, the re-injection needs a first exit",
        lambda c: not _cut_short(c) and c.second_exit in (axes.SECOND_SAME, axes.SECOND_INTR),
    ),
    (
        "nothing is injected, so no entry injects anything to cancel",
        lambda c: c.second_exit == axes.SECOND_CANCEL and not (_cut_short(c) or c.injected),
    ),
    (
        "nobody reads the code again after the guest executed it",
        lambda c: not (_cut_short(c) or c.injected) and not (_at_first(c, "code_change") and _at_first(c, "decode")),
    ),
    (
        "paging decides only which fault L0 takes; SEV guests always use NPT",
        lambda c: (
            not (c.vectoring == axes.VECTORING_HOST and _at_first(c, "protection")) and not _at_first(c, "paging")
        ),
    ),
    (
        "a stale next_rip matters to KVM's own injections (EX-21, EX-22)",
        lambda c: c.source not in _USERSPACE_SOURCES and not _at_first(c, "previous_exit"),
    ),
    (
        "the OUT would consume the STI shadow meant for the instruction",
        lambda c: not _at_first(c, "previous_exit") and not _at_first(c, "shadow"),
    ),
    (
        "only nested state has a pending VMRUN or vmcb12 fields to lose (EX-44, EX-45)",
        lambda c: not c.nested and not _at_first(c, "save_restore"),
    ),
    (
        "L0 must have requeued the event (an exit reflected to L1 leaves no L2 state to save)",
        lambda c: (
            c.save_restore == axes.SAVE_REQUEUED
            and not (c.vectoring == axes.VECTORING_HOST and c.second_exit == axes.SECOND_NONE)
        ),
    ),
    (
        "the model's SEV guests are not nested",
        lambda c: c.nested and not _at_first(c, "protection"),
    ),
    (
        "a vmcb12 CS base under a 64-bit L2 adds nothing to EX-12's non-nested case",
        lambda c: c.nested and c.mode == _LONG_MODE and not _at_first(c, "cs_base"),
    ),
)


#: Per source, the axes that must hold their first value (what the exclusions above imply for that source).
_PINNED_FOR_SOURCE: dict[str, tuple[str, ...]] = {
    source: (() if source in _NESTED_SOURCES else ("l1_nrips", "save_restore"))
    + (() if source in _USERSPACE_SOURCES else ("previous_exit",))
    for source in next(axis for axis in AXES if axis.name == "source").values
}


def exclusion(config: Configuration) -> str | None:
    """Why the combination is left out, or None when it is explored."""
    return next((reason for reason, excludes in EXCLUSIONS if excludes(config)), None)


def applicable(config: Configuration) -> bool:
    """Whether the combination is meaningful and not a duplicate of a simpler one (module docstring)."""
    return exclusion(config) is None


@attrs.frozen
class Space:
    """The selected values of every axis, in `AXES` order."""

    selection: tuple[tuple[str, ...], ...]

    @classmethod
    def default(cls) -> Space:
        return cls(tuple(axis.default for axis in AXES))

    @classmethod
    def everything(cls) -> Space:
        return cls(tuple(axis.values for axis in AXES))

    def restrict(self, axis: Axis, values: tuple[str, ...]) -> Space:
        """The same space with `axis` limited to `values` (checked by the caller against `axis.values`)."""
        index = AXIS_NAMES.index(axis.name)
        selection = list(self.selection)
        selection[index] = values
        return Space(tuple(selection))

    def values(self, axis: str) -> tuple[str, ...]:
        return self.selection[AXIS_NAMES.index(axis)]

    def configurations(self) -> Iterator[Configuration]:
        """Every applicable configuration, in a deterministic order (source by source).

        Axes that apply only to some sources (L1's, the userspace ones) are pinned to their first value for the
        other sources before the product is taken: the same configurations, without building the hundreds of
        thousands of combinations the exclusions would throw away.
        """
        source_index = AXIS_NAMES.index("source")
        for source in self.values("source"):
            pinned = _PINNED_FOR_SOURCE.get(source, ())
            selection = [
                (source,)
                if index == source_index
                else tuple(v for v in values if v == _FIRST[name])
                if name in pinned
                else values
                for index, (name, values) in enumerate(zip(AXIS_NAMES, self.selection, strict=True))
            ]
            for combination in itertools.product(*selection):
                config = Configuration(**dict(zip(AXIS_NAMES, combination, strict=True)))
                if applicable(config):
                    yield config

    def size(self) -> int:
        """How many configurations `configurations()` yields."""
        return sum(1 for _ in self.configurations())


class AxisError(ValueError):
    """A `--axis NAME=v1,v2` the explorer cannot use; the message says what was expected."""


def parse_restriction(text: str, space: Space) -> Space:
    """Apply one `NAME=v1,v2` (or `NAME=all`) restriction to `space`."""
    name, sep, listed = text.partition("=")
    axis = axis_named(name.strip())
    if not sep or axis is None:
        raise AxisError(f"--axis {text!r}: expected NAME=v1,v2 with NAME one of {', '.join(AXIS_NAMES)}")
    wanted = tuple(v.strip() for v in listed.split(",") if v.strip())
    if wanted == ("all",):
        return space.restrict(axis, axis.values)
    unknown = [v for v in wanted if v not in axis.values]
    if unknown or not wanted:
        raise AxisError(
            f"--axis {text!r}: unknown value {', '.join(unknown) or '(none given)'} for {axis.name}; "
            f"expected one or more of {', '.join(axis.values)} (or all)"
        )
    # Kept in axis order, so the first selected value is still the simplest (the shrink target).
    return space.restrict(axis, tuple(value for value in axis.values if value in wanted))
