"""`kvm-6.19`: the decoded opcode must match the event's vector (kvm.md § 5, K-6.19-1 … K-6.19-9).

kvm-6.6 plus 4da3768e1820: when KVM must decode to re-inject a soft event, the final opcode byte must be the one
that raises the vector (`CC` → 3, `CE` → 4, `CD ib` → ib); otherwise the skip fails and the event is dropped
(K-6.19-3, -4). For `CD ib` with ib >= 0x80 the option `soft_int_reading` chooses K-6.19-6 reading A or B.
"""

from __future__ import annotations

from dsl.engine.decode import OPCODE_INT3, OPCODE_INT_N, OPCODE_INTO, KvmDecode
from dsl.engine.machine import Machine
from dsl.engine.policies.kvm_6_6 import Kvm66
from dsl.engine.result import Action
from dsl.engine.vocab import Actor, PolicyName, SoftIntReading, Vector

#: imm8 values from 0x80 are sign-extended by the emulator (K-6.19-6 reading B).
SIGN_BIT = 0x80


class Kvm619(Kvm66):
    """Drop + retry when the decoded instruction is not the expected INT3 / INTO / INT n."""

    name = PolicyName.KVM_6_19

    def expected_vector(self, vector: int) -> int | None:
        """K-6.19-2: the bookkeeping passes the event's vector to the skip (EMULTYPE_SKIP_SOFT_INT)."""
        return vector

    def opcode_matches(self, m: Machine, decoded: KvmDecode, soft_vector: int | None) -> bool:
        """K-6.19-3: the final opcode byte must raise `soft_vector`; a mismatch fails the skip (K-6.19-4)."""
        if soft_vector is None:
            return True
        final = decoded.final_opcode
        if final == OPCODE_INT3:
            matches, why = soft_vector == Vector.BP, "CC raises vector 3"
        elif final == OPCODE_INTO:
            matches, why = soft_vector == Vector.OF, "CE raises vector 4"
        elif final == OPCODE_INT_N:
            imm8 = decoded.imm8 or 0
            matches, why = self.int_n_matches(m, imm8, soft_vector)
        else:
            matches, why = False, f"final opcode byte {final:#04x} raises no soft event"
        # Escaped (0F CC: a false positive), prefixed, or cross-form (CD 03 for #BP) matches are K-6.19-7 [D].
        cross_form = final == OPCODE_INT_N and soft_vector in (Vector.BP, Vector.OF)
        derived = decoded.escaped or decoded.prefixed or cross_form
        rule = "K-6.19-7" if matches and derived else "K-6.19-3"
        if matches:
            m.log(Actor.L0, Action.NOTE, rule, f"opcode check passes for vector {hex(soft_vector)}: {why}")
            return True
        m.log(Actor.L0, Action.DROP, "K-6.19-4", f"opcode check fails for vector {hex(soft_vector)}: {why}")
        return False

    def int_n_matches(self, m: Machine, imm8: int, vector: int) -> tuple[bool, str]:
        """`CD ib` matches when ib equals the vector — except, under reading B, ib >= 0x80 (K-6.19-6)."""
        if imm8 >= SIGN_BIT:
            reading = m.program.options.soft_int_reading
            m.log(Actor.L0, Action.NOTE, "K-6.19-6", f"INT {hex(imm8)} >= 0x80: reading {reading.value}")
            if reading is SoftIntReading.B:
                return False, f"imm8 {hex(imm8)} is sign-extended and never equals vector {hex(vector)}"
        return imm8 == vector, f"CD {imm8:02x} raises vector {hex(imm8)}"
