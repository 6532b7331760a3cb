"""AST leaves shared by every sentence: names, code and operands, events, `name=value` fields.

Part of `dsl.syntax.ast` (import from there).
"""

from __future__ import annotations

import enum
from typing import TypeAlias

import attrs

from dsl.errors import Loc


class Number(int):
    """An integer as the author wrote it: `0x0200`, `4096`, `-1`, `0x8000_0303`.

    It is the int (equal to it, hashing like it, printing like it), so every AST field typed `int` holds one and
    equality ignores how it was written; `spelling` keeps the source text for the formatter, which must not
    rewrite a person's numbers. Integers built in code (plain `int`) have no spelling and are printed canonically.
    """

    spelling: str

    def __new__(cls, value: int, spelling: str) -> Number:
        number = super().__new__(cls, value)
        number.spelling = spelling
        return number

    def __repr__(self) -> str:
        return int.__repr__(self)  # the value, as for a plain int: the spelling stays out of repr

    def __reduce__(self) -> tuple[type[Number], tuple[int, str]]:
        return (Number, (int(self), self.spelling))  # pickles across xdist workers with its spelling


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
