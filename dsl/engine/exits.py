"""#VMEXIT as the CPU writes it: the exit record, `next_rip` per the profile (H-12), EXITINTINFO (H-14)."""

from __future__ import annotations

from typing import NamedTuple

from dsl.engine import events
from dsl.engine.machine import InFlight, Machine
from dsl.engine.profiles import Profile
from dsl.engine.result import Action, Change, ExitRecord
from dsl.engine.vocab import Actor, Level, PageTable

#: Builds a NamedTuple in C (see machine._new_tuple).
_new_tuple = tuple.__new__


class Exit(NamedTuple):
    """A #VMEXIT as the CPU produced it, and who must handle it."""

    code: int
    handled_by: Level
    exit_int_info: int = 0
    exit_int_info_err: int = 0
    fixes: tuple[PageTable, int] | None = None  # the page L0 must map to handle it
    in_flight: InFlight | None = None  # the event cut short (an oracle for the architectural policy)
    insn_next: int | None = None  # next RIP of an intercepted instruction


def profile_of(m: Machine) -> Profile:
    return m.hardware


def vmexit(m: Machine, exit_: Exit, rule: str, message: str, next_ip: int | None = None) -> Exit:
    """Write the exit into the VMCB (H-12, H-14) and record it."""
    profile = m.hardware
    vmcb = m.vmcb
    info, err = exit_.exit_int_info, exit_.exit_int_info_err
    if profile.copies_event_slot and not events.is_valid(info):
        info = m.qemu_event_slot  # stale bits with V = 0
    new_next = profile.exit_next_rip(exit_.code, next_ip if next_ip is not None else 0, vmcb.next_rip)
    # Every #VMEXIT builds these: the changes in C, the ExitRecord positionally in field order (exit_code …
    # reflected): keyword binding costs as much again.
    changes = (
        _new_tuple(Change, ("vmcb.exit_code", vmcb.exit_code, exit_.code)),
        _new_tuple(Change, ("vmcb.exit_int_info", vmcb.exit_int_info, info)),
        _new_tuple(Change, ("vmcb.exit_int_info_err", vmcb.exit_int_info_err, err)),
        _new_tuple(Change, ("vmcb.next_rip", vmcb.next_rip, new_next)),
    )
    vmcb.exit_code, vmcb.exit_int_info, vmcb.exit_int_info_err, vmcb.next_rip = exit_.code, info, err, new_next
    m.in_guest = False
    m.stale_next_rip = False
    reflected = exit_.handled_by is Level.L1
    m.exits.append(ExitRecord(exit_.code, info, err, new_next, vmcb.rip, m.kvm.guest_mode, reflected))
    m.log(Actor.CPU, Action.VMEXIT, rule, f"#VMEXIT {hex(exit_.code)}: {message}", *changes)
    return exit_
