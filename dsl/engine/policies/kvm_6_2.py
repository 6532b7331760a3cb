"""`kvm-6.2`: a fault while decoding for the skip fails the skip (kvm.md § 3, K-6.2-1 … K-6.2-4).

kvm-6.0 plus 17122c06b86c: under EMULTYPE_SKIP an exception raised while decoding is not queued for the guest;
the emulation fails (K-6.2-2), so the soft event is dropped and the guest retries the instruction, taking its own
#PF (K-6.2-3). The v6.1 rename of `svm_queue_exception` to `svm_inject_exception` (K-6.2-1) changes no behaviour.
"""

from __future__ import annotations

from dsl.engine.machine import Machine
from dsl.engine.policies.kvm_6_0 import Kvm60
from dsl.engine.result import Action
from dsl.engine.vocab import Actor, PolicyName


class Kvm62(Kvm60):
    """Decode-time exceptions make the skip fail (drop + retry)."""

    name = PolicyName.KVM_6_2
    exception_hook = "svm_inject_exception"  # K-6.2-1

    def decode_fault(self, m: Machine, linear: int) -> bool:
        """K-6.2-2 (replaces K-5.19-7 step d): emulation failure, nothing queued, internal error not surfaced."""
        m.kvm.insn_emulation_fail += 1
        m.log(Actor.L0, Action.FAIL, "K-6.2-3", f"decode at {hex(linear)} faults: the skip fails (nothing queued)")
        return False
