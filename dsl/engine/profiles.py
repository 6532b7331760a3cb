"""Hardware profiles: what the CPU does on #VMEXIT and VMRUN (hardware.md § 4-5 and QEMU TCG § 12)."""

from __future__ import annotations

import attrs

from dsl.engine import events
from dsl.engine.vocab import CpuMode, EventType, ExitCode, HardwareProfile, Vector

#: Exits after which an NRIPS CPU saves next_rip (H-12): instruction intercepts, and the exception intercepts of
#: #BP/#OF/#BR caused by INT3, INTO and BOUND. bhyve's nrip_valid() uses the same ranges.
_NRIP_EXIT_RANGES: tuple[tuple[int, int], ...] = ((0x65, 0x7C), (0x80, 0x8D))
_NRIP_EXCEPTION_EXITS: tuple[int, ...] = (ExitCode.EXCP_BP, ExitCode.EXCP_OF, ExitCode.EXCP_BR)
#: The same list as one set of plain ints: every #VMEXIT asks.
_NRIP_EXITS: frozenset[int] = frozenset(
    (*_NRIP_EXCEPTION_EXITS, *(code for low, high in _NRIP_EXIT_RANGES for code in range(low, high + 1)))
)

#: Exception vectors VMRUN accepts as EVENTINJ type 3 (H-8): the defined exceptions. 2 (NMI) is not one.
HARDWARE_EXCEPTION_VECTORS: tuple[int, ...] = (
    0,
    1,
    3,
    4,
    5,
    6,
    7,
    8,
    10,
    11,
    12,
    13,
    14,
    16,
    17,
    18,
    19,
    21,
    28,
    29,
    30,
)

#: QEMU TCG facts this project's real-KVM backend observed on QEMU 7.2 (tests/backends), numbered after the spec's
#: Q-1 … Q-9. [V] as observed; the QEMU source lines named are where the behaviour comes from.
#: Q-10 (observed): ICEBP is compiled out (target/i386/tcg/translate.c, `#ifdef WANT_ICEBP`): `F1` raises #UD, and
#: the SVM ICEBP intercept is never checked.
ICEBP_COMPILED_OUT_RULE = "Q-10"
#: Q-11 (observed): TCG ignores LOCK on INT3: `F0 CC` is delivered as #BP after the whole instruction, not #UD (H-28).
LOCK_INT3_RULE = "Q-11"
#: Q-12 (observed): VMRUN loads the guest's DR7 but TCG arms no breakpoint from it (it arms them on a guest MOV to
#: DR7 only), so DR7 instruction breakpoints set before the entry never fire (H-37 does not apply).
DR7_NOT_ARMED_RULE = "Q-12"

MASK_32 = 0xFFFF_FFFF
MASK_16 = 0xFFFF


@attrs.frozen
class Profile:
    """One CPU model. Behaviour differs only through these fields (H-6, H-12, Q-1 … Q-12)."""

    name: HardwareProfile
    nrips: bool  # saves next_rip on the H-12 exits and pushes it for injected soft events (H-6)
    reports_instruction_events_as_soft: bool = False  # QEMU: INT3/INTO reported as type 4
    keeps_first_event: bool = False  # QEMU: EXITINTINFO holds the first event of a chain
    copies_event_slot: bool = False  # QEMU: EXITINTINFO copied from the EVENTINJ slot, stale bits
    type3_dpl_check: bool = True  # QEMU delivers injected type 3 fault-style with no DPL check
    icebp_raises_ud: bool = False  # QEMU: ICEBP compiled out
    lock_int3_is_int3: bool = False  # QEMU: LOCK ignored on INT3
    arms_dr7_breakpoints: bool = True  # QEMU: VMRUN arms no DR7 breakpoint

    @property
    def tcg_quirks(self) -> bool:
        """Whether this CPU model executes some instruction unlike the hardware (Q-10, Q-11)."""
        return self.icebp_raises_ud or self.lock_int3_is_int3

    def saves_next_rip(self, exit_code: int) -> bool:
        """Whether this exit writes next_rip (H-12); False means the CPU clears it (NRIPS) or never writes it."""
        return self.nrips and exit_code in _NRIP_EXITS

    def exit_next_rip(self, exit_code: int, next_ip: int, current: int) -> int:
        """The next_rip field after an exit: saved, cleared to 0 (NRIPS, H-12), or untouched (no NRIPS, Q-3)."""
        if not self.nrips:
            return current
        return next_ip if self.saves_next_rip(exit_code) else 0

    def reported_type(self, event_type: EventType, from_instruction: bool) -> EventType:
        """EXITINTINFO TYPE of an in-flight event (H-4, Q-4)."""
        if from_instruction and event_type is EventType.EXCEPTION and self.reports_instruction_events_as_soft:
            return EventType.SOFT
        return event_type

    def injected_return(self, event_inj: int, rip: int, next_rip: int, mode: CpuMode) -> int:
        """The return address VMRUN pushes for an injected event (H-6, Q-2)."""
        if self.nrips and events.is_soft_encoding(event_inj):
            return truncate(next_rip, mode)
        return rip

    def event_dpl_checked(self, event_inj: int) -> bool:
        """Injected type 3 vector 3/4 and type 4 check the gate DPL like INT3/INTO/INT n (H-7, Q-2)."""
        event_type = events.event_type_of(event_inj)
        if event_type is EventType.SOFT:
            return True
        return self.type3_dpl_check and events.is_soft(event_type, events.vector_of(event_inj))

    def vmrun_rejects(self, event_inj: int, mode: CpuMode) -> str | None:
        """Why VMRUN fails its EVENTINJ consistency check (H-8), or None."""
        if not events.is_valid(event_inj):
            return None
        event_type = events.event_type_of(event_inj)
        vector = events.vector_of(event_inj)
        if event_type is None:
            return f"reserved EVENTINJ type {events.type_of(event_inj)}"
        if event_type is EventType.EXCEPTION and vector not in HARDWARE_EXCEPTION_VECTORS:
            return f"vector {hex(vector)} is not an exception"
        if event_type is EventType.EXCEPTION and vector == Vector.BR and mode is CpuMode.LONG_64:
            return "#BR cannot be injected in 64-bit mode"
        return None


def truncate(value: int, mode: CpuMode) -> int:
    """Outside 64-bit mode the pushed value is the low 32 (or 16) bits (H-6, H-33)."""
    if mode is CpuMode.LONG_64:
        return value
    return value & (MASK_32 if mode.bitness == 32 else MASK_16)


PROFILES: dict[HardwareProfile, Profile] = {
    HardwareProfile.AMD_NRIPS: Profile(HardwareProfile.AMD_NRIPS, nrips=True),
    HardwareProfile.AMD_NO_NRIPS: Profile(HardwareProfile.AMD_NO_NRIPS, nrips=False),
    HardwareProfile.QEMU_TCG: Profile(
        HardwareProfile.QEMU_TCG,
        nrips=False,
        reports_instruction_events_as_soft=True,
        keeps_first_event=True,
        copies_event_slot=True,
        type3_dpl_check=False,
        icebp_raises_ud=True,
        lock_int3_is_int3=True,
        arms_dr7_breakpoints=False,
    ),
}
