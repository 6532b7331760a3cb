"""`kvm-6.6`: SEV changes (kvm.md § 4, K-6.6-1 … K-6.6-6), with v6.7's final form of the skip failure.

kvm-6.2 plus: a skip of an SEV guest that needs a decode fails instead of queueing a bogus #UD (K-6.6-1, -2), and
SEV, SEV-ES and SEV-SNP guests require `nrips` (K-6.6-4). vNMI is assumed off (K-6.6-6).
"""

from __future__ import annotations

from dsl.engine.machine import Machine
from dsl.engine.policies.kvm_6_2 import Kvm62
from dsl.engine.result import Action
from dsl.engine.vocab import Actor, Outcome, PolicyName, Protection


class Kvm66(Kvm62):
    """SEV skips that need a decode fail (drop + retry); SEV requires nrips."""

    name = PolicyName.KVM_6_6

    def vm_init(self, m: Machine) -> None:
        """K-6.6-4: SEV setup refuses every SEV-family VM when the effective `nrips` is 0."""
        if m.protection is not Protection.NONE and not m.kvm.nrips:
            m.log(Actor.L0, Action.FAIL, "K-6.6-4", f"{m.protection.value} requires nrips: VM creation fails")
            m.set_anomaly(Outcome.UNSUPPORTED)

    def cannot_read_sev_code(self, m: Machine) -> bool:
        """K-6.6-1/-2: the hook answers UNHANDLEABLE for EMULTYPE_SKIP with no bytes: emulation failure."""
        m.kvm.insn_emulation_fail += 1
        m.log(Actor.L0, Action.FAIL, "K-6.6-1", "SEV: no instruction bytes; the skip fails (no #UD)")
        return False
