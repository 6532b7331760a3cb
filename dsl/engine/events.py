"""EVENTINJ / EXITINTINFO encoding (README § Encodings, H-3) and the soft-event tests KVM applies."""

from __future__ import annotations

import functools

from dsl.engine.vocab import RESERVED_EVENT_TYPES, SOFT_EXCEPTION_VECTORS, EventType, Vector

VECTOR_MASK = 0xFF
TYPE_SHIFT = 8
TYPE_MASK = 0x7
ERROR_VALID = 1 << 11  # EV
VALID = 1 << 31  # V
#: An IDT-related #NP/#GP error code: vector * 8 + 2 (bit 1 = IDT), plus bit 0 (EXT) for external events (H-17).
IDT_ERROR_SCALE = 8
IDT_ERROR_IDT_BIT = 0x2
IDT_ERROR_EXT_BIT = 0x1


def encode(vector: int, event_type: EventType | int, error_code: int | None = None) -> int:
    """The low 32 bits of a valid EVENTINJ / EXITINTINFO."""
    value = VALID | (int(event_type) << TYPE_SHIFT) | (vector & VECTOR_MASK)
    return value | ERROR_VALID if error_code is not None else value


def is_valid(value: int) -> bool:
    """Bit 31 (V): consumers must test it (Q-6)."""
    return bool(value & VALID)


def vector_of(value: int) -> int:
    return value & VECTOR_MASK


def type_of(value: int) -> int:
    """The raw TYPE field (may be a reserved value)."""
    return (value >> TYPE_SHIFT) & TYPE_MASK


def has_error_code(value: int) -> bool:
    return bool(value & ERROR_VALID)


_TYPES: dict[int, EventType | None] = {
    raw: (None if raw in RESERVED_EVENT_TYPES else EventType(raw)) for raw in range(TYPE_MASK + 1)
}
#: Spellings of vectors in traces: `#BP`, `NMI`, or `vector 0x80`.
VECTOR_NAMES: dict[int, str] = {
    vector: (Vector(vector).mnemonic if vector in Vector._value2member_map_ else f"vector {hex(vector)}")
    for vector in range(VECTOR_MASK + 1)
}


#: Spellings of event types in traces: `exception`, `soft` (a table: `.name` is a Python-level property).
TYPE_NAMES: dict[EventType, str] = {event_type: event_type.name.lower() for event_type in EventType}


def event_type_of(value: int) -> EventType | None:
    """The TYPE field as an EventType; None for the reserved types 1, 5, 6, 7."""
    return _TYPES[(value >> TYPE_SHIFT) & TYPE_MASK]


def is_soft_exception(vector: int) -> bool:
    """kvm_exception_is_soft: #BP and #OF (type 3 with vector 3 or 4)."""
    return vector in SOFT_EXCEPTION_VECTORS


def is_soft(event_type: EventType | int | None, vector: int) -> bool:
    """A soft event in KVM's sense: type SOFT with any vector, or EXCEPTION with vector 3 or 4 (is_evtinj_soft)."""
    if event_type == EventType.SOFT:
        return True
    return event_type == EventType.EXCEPTION and is_soft_exception(vector)


def is_soft_encoding(value: int) -> bool:
    """An EVENTINJ / EXITINTINFO value for INT n (type 4) or #BP/#OF (type 3, vector 3/4): the events whose return
    address is NextRIP (H-6)."""
    return is_soft(event_type_of(value), vector_of(value))


def idt_error_code(vector: int, external: bool = False) -> int:
    """Error code of a #NP / #GP raised on IDT gate `vector` (H-17)."""
    return vector * IDT_ERROR_SCALE + IDT_ERROR_IDT_BIT + (IDT_ERROR_EXT_BIT if external else 0)


@functools.lru_cache(maxsize=1024)
def describe(value: int) -> str:
    """`0x80000303 (#BP, exception)` — for trace messages."""
    if not is_valid(value):
        return f"{value:#010x} (not valid)"
    event_type = event_type_of(value)
    vector = vector_of(value)
    name = VECTOR_NAMES[vector]
    kind = TYPE_NAMES[event_type] if event_type is not None else f"reserved type {type_of(value)}"
    return f"{value:#010x} ({name}, {kind})"
