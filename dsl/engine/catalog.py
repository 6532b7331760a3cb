"""One-line descriptions of the hardware profiles and policies (for `svmdsl policies` and the docs)."""

from __future__ import annotations

import attrs

from dsl.engine.vocab import POLICY_ALIASES, HardwareProfile, PolicyName


@attrs.frozen
class Described:
    """A user-facing name and its one-line description."""

    name: str
    summary: str


PROFILE_SUMMARIES: dict[HardwareProfile, str] = {
    HardwareProfile.AMD_NRIPS: "AMD CPU with NRIPS: next_rip saved on listed exits, cleared on others, pushed by VMRUN",
    HardwareProfile.AMD_NO_NRIPS: "AMD CPU without NRIPS: VMRUN pushes RIP for injected soft events",
    HardwareProfile.QEMU_TCG: "QEMU TCG: no NRIPS, INT3/INTO reported as type 4, EXITINTINFO keeps the first event",
}

POLICY_SUMMARIES: dict[PolicyName, str] = {
    PolicyName.KVM_5_19: "Linux v5.19: retry soft events cut short; userspace soft INT n as INTR; BUG_ON with GIF=0",
    PolicyName.KVM_6_0: "Linux v6.0: re-inject INT3/INTO/INT n, look-ahead skip, unwind, soft_int_* re-stuff",
    PolicyName.KVM_6_2: "Linux v6.2: a fault while decoding for the skip drops the soft event (retry)",
    PolicyName.KVM_6_6: "Linux v6.6: SEV skips that need a decode fail (drop + retry); SEV requires nrips",
    PolicyName.KVM_6_19: "Linux v6.19: the decoded opcode must match the event's vector, else drop + retry",
    PolicyName.KVM_7_1: "Linux v7.1 (kvm-mainline): nested next_rip/soft_int fields computed at VMRUN; EVENTINJ check",
    PolicyName.XEN: "Xen on SVM: retry soft events cut short; NextRIP = RIP + length on injection",
    PolicyName.VIRTUALBOX: "VirtualBox HM: retry INT n; re-inject INT3/INTO after non-exception exits without NextRIP",
    PolicyName.BHYVE: "bhyve SVM: re-inject EXITINTINFO verbatim, never writes NextRIP",
    PolicyName.ARCHITECTURAL: "the ideal: every event delivered exactly once, right return address, no spurious #DB",
}


def profiles() -> tuple[Described, ...]:
    """Every hardware profile, in documentation order."""
    return tuple(Described(p.value, PROFILE_SUMMARIES[p]) for p in HardwareProfile)


def policies() -> tuple[Described, ...]:
    """Every policy name a user may write (aliases last), with its summary."""
    named = tuple(Described(p.value, POLICY_SUMMARIES[p]) for p in PolicyName)
    aliases = tuple(Described(alias, f"alias of {target.value}") for alias, target in POLICY_ALIASES.items())
    return named + aliases
