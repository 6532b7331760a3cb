"""The closed vocabulary of the domain: vectors, event types, modes, exit codes, names of policies.

One source of truth for the engine, the checker ("did you mean"), the formatter, the documentation and the
explorer. Names follow the AMD APM and the KVM sources so that a hypervisor engineer recognises them.
"""

from __future__ import annotations

import enum


class Vector(enum.IntEnum):
    """Architectural exception vectors (APM vol. 2 §8.2). INT n may use any vector 0-255; these are the named ones."""

    DE = 0
    DB = 1
    NMI = 2
    BP = 3
    OF = 4
    BR = 5
    UD = 6
    NM = 7
    DF = 8
    TS = 10
    NP = 11
    SS = 12
    GP = 13
    PF = 14
    MF = 16
    AC = 17
    MC = 18
    XM = 19
    VE = 20
    CP = 21
    HV = 28
    VC = 29
    SX = 30

    @property
    def mnemonic(self) -> str:
        """The spelling used in scenarios and traces: `#PF`, `#BP`, `NMI`."""
        return "NMI" if self is Vector.NMI else f"#{self.name}"


#: Exceptions that push an error code (APM vol. 2 §8.4).
VECTORS_WITH_ERROR_CODE: tuple[Vector, ...] = (
    Vector.DF,
    Vector.TS,
    Vector.NP,
    Vector.SS,
    Vector.GP,
    Vector.PF,
    Vector.AC,
    Vector.CP,
    Vector.VC,
    Vector.SX,
)

#: Vectors whose delivery KVM treats as "soft" when reported as EXCEPTION (kvm_exception_is_soft).
SOFT_EXCEPTION_VECTORS: tuple[Vector, ...] = (Vector.BP, Vector.OF)

VECTOR_COUNT = 256


class EventType(enum.IntEnum):
    """EVENTINJ / EXITINTINFO TYPE field, bits 10:8 (README § Encodings, H-3)."""

    INTR = 0
    NMI = 2
    EXCEPTION = 3
    SOFT = 4


#: TYPE values the hardware rejects on VMRUN (H-8).
RESERVED_EVENT_TYPES: tuple[int, ...] = (1, 5, 6, 7)


class CpuMode(enum.Enum):
    """Guest execution mode (H-30). The value is the spelling used in scenarios."""

    REAL = "real"
    PROTECTED_16 = "protected16"
    PROTECTED_32 = "protected32"
    LONG_64 = "long64"
    COMPAT_32 = "compat32"
    COMPAT_16 = "compat16"

    @property
    def bitness(self) -> int:
        """Code size: 16, 32 or 64 (decode mode and RIP width)."""
        if self is CpuMode.LONG_64:
            return 64
        if self in (CpuMode.PROTECTED_32, CpuMode.COMPAT_32):
            return 32
        return 16

    @property
    def ignores_cs_base(self) -> bool:
        """In 64-bit mode CS.base is ignored for instruction fetch (H-31)."""
        return self is CpuMode.LONG_64


class PagingMode(enum.Enum):
    """How L0 virtualizes guest memory: which exit interrupts a delivery."""

    SHADOW = "shadow"  # npt=0: intercepted #PF, exit 0x4E
    NPT = "npt"  # npt=1: nested page fault, exit 0x400


class Protection(enum.Enum):
    """Guest memory/register protection (K-6.0-30, K-6.0-31, K-6.6-*)."""

    NONE = "none"
    SEV = "sev"
    SEV_ES = "sev-es"
    SEV_SNP = "sev-snp"


class ExitCode(enum.IntEnum):
    """#VMEXIT codes used by the model (APM Appendix C, H-18)."""

    EXCP_DB = 0x41
    EXCP_BP = 0x43
    EXCP_OF = 0x44
    EXCP_BR = 0x45
    EXCP_UD = 0x46
    EXCP_NP = 0x4B
    EXCP_GP = 0x4D
    EXCP_PF = 0x4E
    INTR = 0x60
    NMI = 0x61
    CPUID = 0x72
    SWINT = 0x75
    HLT = 0x78
    IOIO = 0x7B
    MSR = 0x7C
    VMMCALL = 0x81
    ICEBP = 0x88
    NPF = 0x400
    INVALID = -1

    @classmethod
    def for_exception(cls, vector: int) -> int:
        """Exception intercepts are numbered 0x40 + vector."""
        return EXCEPTION_EXIT_BASE + vector


EXCEPTION_EXIT_BASE = 0x40


class Level(enum.Enum):
    """Who handles something: the hypervisor on the hardware (L0), a nested hypervisor (L1), or the guest."""

    L0 = "L0"
    L1 = "L1"
    GUEST = "guest"


class InjectionSource(enum.Enum):
    """Where an event injected by software (not raised by a guest instruction) comes from."""

    USERSPACE = "userspace"  # KVM_SET_VCPU_EVENTS (K-5.19-19)
    GUEST_DEBUG = "guest-debug"  # KVM_SET_GUEST_DEBUG inject-#BP / sw-bp re-injection (K-5.19-20)
    L1 = "L1"  # L1 writes vmcb12 EVENTINJ and executes VMRUN (K-6.0-20)


class Evidence(enum.Enum):
    """Evidence tags of the specification (README § Evidence tags)."""

    VERIFIED = "V"
    DERIVED = "D"
    INFERRED = "I"
    UNVERIFIED = "U"
    ARCH = "ARCH"

    @property
    def confirmed(self) -> bool:
        """[D], [I] and [U] outcomes are reported as "predicted, unconfirmed"."""
        return self in (Evidence.VERIFIED, Evidence.ARCH)


class HardwareProfile(enum.Enum):
    """What the CPU does (hardware.md). The value is the name used on the command line and in scenarios."""

    AMD_NRIPS = "amd-nrips"
    AMD_NO_NRIPS = "amd-no-nrips"
    QEMU_TCG = "qemu-tcg"


class PolicyName(enum.Enum):
    """What the hypervisor does (kvm.md, other-hypervisors.md). `kvm-mainline` is an alias, see ALIASES."""

    KVM_5_19 = "kvm-5.19"
    KVM_6_0 = "kvm-6.0"
    KVM_6_2 = "kvm-6.2"
    KVM_6_6 = "kvm-6.6"
    KVM_6_19 = "kvm-6.19"
    KVM_7_1 = "kvm-7.1"
    XEN = "xen"
    VIRTUALBOX = "virtualbox"
    BHYVE = "bhyve"
    ARCHITECTURAL = "architectural"


#: KVM releases in order; each policy is the previous one plus its changes (spec README § Policy names).
KVM_RELEASES: tuple[PolicyName, ...] = (
    PolicyName.KVM_5_19,
    PolicyName.KVM_6_0,
    PolicyName.KVM_6_2,
    PolicyName.KVM_6_6,
    PolicyName.KVM_6_19,
    PolicyName.KVM_7_1,
)

#: Alternative names accepted wherever a policy is named.
POLICY_ALIASES: dict[str, PolicyName] = {"kvm-mainline": PolicyName.KVM_7_1}


def policy_by_name(name: str) -> PolicyName | None:
    """The policy a user-facing name denotes, aliases included; None if unknown."""
    if name in POLICY_ALIASES:
        return POLICY_ALIASES[name]
    for policy in PolicyName:
        if policy.value == name:
            return policy
    return None


def policy_names() -> tuple[str, ...]:
    """Every name a user may write for a policy, in documentation order."""
    return tuple(p.value for p in PolicyName) + tuple(POLICY_ALIASES)
