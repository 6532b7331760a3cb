"""Raw EVENTINJ values (`inject event 0x80000503 from L1`, `vmcb12 event_inj …`) for `dsl.compiler.check`.

Any 32-bit value is accepted, since a scenario about the failure needs the invalid encodings: the hardware
rejects a valid event with a reserved TYPE on VMRUN (H-8), which the engine models as VMEXIT_INVALID (K-7.1-6).
Such a value gets a warning, so a typo does not pass silently. Only L1's vmcb12 can carry one:
KVM_SET_VCPU_EVENTS has no field for a raw EVENTINJ, so userspace and guest debug name the event's type.
"""

from __future__ import annotations

from dsl.compiler.check_report import Reporter
from dsl.engine.events import is_valid, type_of
from dsl.engine.vocab import RESERVED_EVENT_TYPES, InjectionSource
from dsl.errors import Loc


def is_reserved(raw: int) -> bool:
    """A valid event (bit 31) whose TYPE (bits 10:8) is reserved: VMRUN fails with it (H-8)."""
    return is_valid(raw) and type_of(raw) in RESERVED_EVENT_TYPES


def check_raw_event(report: Reporter, raw: int, source: InjectionSource | None, loc: Loc) -> None:
    """`raw` injected from `source` (None: written into vmcb12 by a set-up line)."""
    if not is_reserved(raw):
        return
    if source in (InjectionSource.USERSPACE, InjectionSource.GUEST_DEBUG):
        report.error(
            loc,
            f"event {raw:#010x} has the reserved type {type_of(raw)}, which KVM_SET_VCPU_EVENTS cannot carry",
            "#BP, int 0x80, irq 0x30, nmi, or a raw event with type 0, 2, 3 or 4",
            hint="only L1 can ask for it, through vmcb12: `inject event … from L1` or `vmcb12 event_inj …`",
        )
        return
    report.warn(
        loc,
        f"event {raw:#010x} has the reserved type {type_of(raw)}: the VMRUN fails (VMEXIT_INVALID, H-8, K-7.1-6)",
        hint="expect vmexit invalid, if that is the point of this scenario",
    )
