"""Real kvm_amd, in a Debian kernel booted under QEMU's TCG (which emulates AMD-V), as a backend for svm-dsl.

Pipeline: `lower` (engine Program → guest-program input) → `boot` (one QEMU boot runs every case) → `report`
(the guest program's output → observations) → `compare` (engine on profile qemu-tcg vs real KVM). `kernel` and
`image` build and cache the pieces in $XDG_CACHE_HOME/svmdsl (~/.cache/svmdsl).

Designed for nesting later: a nested case will carry an L1 program (VMCB set-up, EVENTINJ, VMRUN loop) that the
guest program runs inside its VM as the KVM selftest's L1 does; `lower` refuses nested programs until then.
"""

from dsl.backends.qemu_kvm.compare import Comparison, ComparisonReport, Disagreement, Subject, compare, subjects
from dsl.backends.qemu_kvm.errors import BackendError
from dsl.backends.qemu_kvm.kernel import Kernel, policy_for_version, prepare

__all__ = [
    "BackendError",
    "Comparison",
    "ComparisonReport",
    "Disagreement",
    "Kernel",
    "Subject",
    "compare",
    "policy_for_version",
    "prepare",
    "subjects",
]
