"""The closed vocabulary of the domain: vectors, event types, modes, exit codes, names of policies.

One source of truth for the engine, the checker ("did you mean"), the formatter, the documentation and the
explorer. Names follow the AMD APM and the KVM sources so that a hypervisor engineer recognises them.
"""

from __future__ import annotations

import enum
import functools


class IdentityEnum(enum.Enum):
    """An enum whose members hash by identity.

    Members are singletons and compare by identity, so hashing them by identity (in C) keeps every dict and set
    behaving as before; Enum's own `__hash__` (`hash(self._name_)`) is Python code, and the engine looks members
    up in dicts (policies, profiles, page tables, observables) on every step of every run.
    """

    __hash__ = object.__hash__


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


class CpuMode(IdentityEnum):
    """Guest execution mode (H-30). The value is the spelling used in scenarios."""

    REAL = "real"
    PROTECTED_16 = "protected16"
    PROTECTED_32 = "protected32"
    LONG_64 = "long64"
    COMPAT_32 = "compat32"
    COMPAT_16 = "compat16"

    # Cached on the member after the first use: the engine asks several times per guest instruction.
    @functools.cached_property
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


class PagingMode(IdentityEnum):
    """How L0 virtualizes guest memory: which exit interrupts a delivery."""

    SHADOW = "shadow"  # npt=0: intercepted #PF, exit 0x4E
    NPT = "npt"  # npt=1: nested page fault, exit 0x400


class Protection(IdentityEnum):
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
    SHUTDOWN = 0x7F
    VMMCALL = 0x81
    ICEBP = 0x88
    NPF = 0x400
    INVALID = -1

    @classmethod
    def for_exception(cls, vector: int) -> int:
        """Exception intercepts are numbered 0x40 + vector."""
        return EXCEPTION_EXIT_BASE + vector


EXCEPTION_EXIT_BASE = 0x40


class Level(IdentityEnum):
    """Who handles something: the hypervisor on the hardware (L0), a nested hypervisor (L1), or the guest."""

    L0 = "L0"
    L1 = "L1"
    GUEST = "guest"


class InjectionSource(IdentityEnum):
    """Where an event injected by software (not raised by a guest instruction) comes from."""

    USERSPACE = "userspace"  # KVM_SET_VCPU_EVENTS (K-5.19-19)
    GUEST_DEBUG = "guest-debug"  # KVM_SET_GUEST_DEBUG inject-#BP / sw-bp re-injection (K-5.19-20)
    L1 = "L1"  # L1 writes vmcb12 EVENTINJ and executes VMRUN (K-6.0-20)


class Evidence(IdentityEnum):
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


class HardwareProfile(IdentityEnum):
    """What the CPU does (hardware.md). The value is the name used on the command line and in scenarios."""

    AMD_NRIPS = "amd-nrips"
    AMD_NO_NRIPS = "amd-no-nrips"
    QEMU_TCG = "qemu-tcg"


class PolicyName(IdentityEnum):
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


_POLICY_NAMES: dict[str, PolicyName] = {policy.value: policy for policy in PolicyName} | POLICY_ALIASES


def policy_by_name(name: str) -> PolicyName | None:
    """The policy a user-facing name denotes, aliases included; None if unknown."""
    return _POLICY_NAMES.get(name)


def policy_names() -> tuple[str, ...]:
    """Every name a user may write for a policy, in documentation order."""
    return tuple(p.value for p in PolicyName) + tuple(POLICY_ALIASES)


class FaultKind(IdentityEnum):
    """A fault that can cut an event delivery short (H-5, H-16). The value is the spelling used in scenarios."""

    PF = "#PF"  # guest page fault: intercepted under shadow paging (0x4E), by L1, or the guest's own
    NPF = "#NPF"  # nested page fault on L0's (or L1's) nested tables, exit 0x400
    NP = "#NP"  # IDT gate not present
    GP = "#GP"  # gate DPL / limit violation
    SS = "#SS"  # stack segment fault while pushing the frame
    TS = "#TS"  # invalid TSS on a stack switch

    # Both cached on the member: every armed fault asks when it cuts a delivery short.
    @functools.cached_property
    def vector(self) -> Vector | None:
        """The guest exception vector; None for #NPF, which is not a guest exception."""
        return None if self is FaultKind.NPF else Vector[self.name]

    @functools.cached_property
    def exit_code(self) -> int:
        """The #VMEXIT code when the fault is intercepted (H-18)."""
        if self is FaultKind.NPF:
            return ExitCode.NPF
        return ExitCode.for_exception(Vector[self.name])


class PageTable(IdentityEnum):
    """Which page tables a page's presence refers to."""

    GUEST = "guest"  # the guest's own page tables (a miss is a guest #PF)
    HOST = "host"  # L0's shadow or nested tables (a miss is an intercepted #PF or an #NPF)


class GateType(IdentityEnum):
    """IDT gate type (APM vol. 2 §4.8): an interrupt gate also clears IF on delivery (H-36)."""

    INTERRUPT = "interrupt"
    TRAP = "trap"


class SoftIntReading(IdentityEnum):
    """The two readings of K-6.19-6 for INT n with n >= 0x80 under the kvm-6.19 opcode check."""

    A = "A"  # the commit's stated rule: CD ib matches vector ib for every ib [V text]
    B = "B"  # the decoder sign-extends ib, so 0x80-0xFF never match [I] (default)


class Actor(IdentityEnum):
    """Who performs a traced action."""

    GUEST = "guest"  # the guest L0 runs: the L2 guest when nested
    L1 = "L1"  # the nested hypervisor
    L0 = "L0"  # the hypervisor on the hardware (the policy)
    CPU = "CPU"  # the processor (the hardware profile)
    USERSPACE = "userspace"  # the VMM process driving L0 (KVM_SET_VCPU_EVENTS, KVM_SET_NESTED_STATE)


class Outcome(IdentityEnum):
    """How the scenario's subject event ended (README glossary). The value is the spelling used in scenarios."""

    DELIVERED = "delivered"
    REINJECT = "reinject"
    RETRY = "retry"
    DROPPED = "dropped"
    LOST = "lost"
    REFLECTED = "reflected"
    DUPLICATED = "duplicated"
    VMEXIT_INVALID = "vmexit_invalid"
    HOST_BUG = "host_bug"
    SHUTDOWN = "shutdown"
    EMULATION_ERROR = "emulation_error"
    UNSUPPORTED = "unsupported"
    UNSPECIFIED = "unspecified"
    NO_EVENT = "no_event"

    @property
    def description(self) -> str:
        """One line for the language reference, `svmdsl` help and the docs."""
        return _OUTCOME_DOCS[self]


_OUTCOME_DOCS: dict[Outcome, str] = {
    Outcome.DELIVERED: "delivered once on the first attempt: nothing to re-inject",
    Outcome.REINJECT: "requeued from EXITINTINFO and re-injected by the hypervisor, delivered once",
    Outcome.RETRY: "not requeued: the guest re-executed the instruction, which delivered the event natively",
    Outcome.DROPPED: "the injection hook decided not to write EVENTINJ (skip failed); nothing replaced it",
    Outcome.LOST: "never delivered although the architecture says it must be",
    Outcome.REFLECTED: "handed to L1 in vmcb12 EXITINTINFO: L1 must re-inject it (K-6.0-24)",
    Outcome.DUPLICATED: "delivered more than once",
    Outcome.VMEXIT_INVALID: "a VMRUN failed its consistency checks (H-8, K-7.1-6)",
    Outcome.SHUTDOWN: "a triple fault shut the guest down (KVM_EXIT_SHUTDOWN)",
    Outcome.HOST_BUG: "the host kernel hit a BUG_ON (K-5.19-10)",
    Outcome.EMULATION_ERROR: "the vCPU exits to userspace with an emulation error (K-6.2-4)",
    Outcome.UNSUPPORTED: "the hypervisor refuses the configuration (K-6.6-4: SEV without nrips)",
    Outcome.UNSPECIFIED: "the sources do not say what happens (H-32 16-bit wrap, K-6.0-31 SEV-ES)",
    Outcome.NO_EVENT: "nothing raised or injected an event: there is no subject",
}


class Observable(IdentityEnum):
    """What a scenario can `expect`. The value is the name used in scenarios (`expect next_rip == 0x1001`).

    VMRUN observables read the *focus* VMRUN: the last VMRUN whose EVENTINJ was valid (not counting an exception
    KVM queued while injecting, K-6.0-30), else the first VMRUN after the first #VMEXIT, else the last VMRUN. Exit
    observables read the first #VMEXIT; delivery observables the first event delivered to the guest.
    `Result.observe` takes a `Pick` to choose another one.
    """

    EVENT_INJ = "event_inj"
    EVENT_INJ_ERR = "event_inj_err"
    NEXT_RIP = "next_rip"
    RIP = "rip"
    RFLAGS = "rflags"
    RF = "rf"
    INTERRUPT_SHADOW = "interrupt_shadow"
    EXIT_CODE = "exit_code"
    EXIT_INT_INFO = "exit_int_info"
    EXIT_INT_INFO_ERR = "exit_int_info_err"
    EXIT_NEXT_RIP = "exit_next_rip"
    EXIT_RIP = "exit_rip"
    RETURN_RIP = "return_rip"
    DELIVERED = "delivered"
    DELIVERED_TYPE = "delivered_type"
    DELIVERED_ERROR_CODE = "delivered_error_code"
    DELIVERY_COUNT = "delivery_count"
    SPURIOUS_DB = "spurious_db"
    REQUEUED = "requeued"
    REQUEUED_EVENT = "requeued_event"
    PENDING_EXCEPTION = "pending_exception"
    SOFT_INT_INJECTED = "soft_int_injected"
    SOFT_INT_CSBASE = "soft_int_csbase"
    SOFT_INT_OLD_RIP = "soft_int_old_rip"
    SOFT_INT_NEXT_RIP = "soft_int_next_rip"
    INT3_INJECTED = "int3_injected"
    INT3_RIP = "int3_rip"
    VMCB12_EXIT_CODE = "vmcb12_exit_code"
    VMCB12_EXIT_INT_INFO = "vmcb12_exit_int_info"
    VMCB12_NEXT_RIP = "vmcb12_next_rip"
    L1_NMI_MASKED = "l1_nmi_masked"
    DEBUG_EXITS = "debug_exits"
    EMULATION_FAILURES = "emulation_failures"
    FINAL_RIP = "final_rip"
    OUTCOME = "outcome"
    EVIDENCE = "evidence"
    CONFIRMED = "confirmed"
    TRACEPOINTS = "tracepoints"

    @property
    def description(self) -> str:
        """One line for the language reference, `svmdsl` help and the docs."""
        return _OBSERVABLE_DOCS[self]


_OBSERVABLE_DOCS: dict[Observable, str] = {
    Observable.L1_NMI_MASKED: "bool: L0 marked L1's NMIs blocked (K-5.19-23 vs K-6.0-8)",
    Observable.EVENT_INJ: "int: EVENTINJ low 32 bits written before the focus VMRUN (0 if nothing injected)",
    Observable.EVENT_INJ_ERR: "int: EVENTINJ error code at the focus VMRUN",
    Observable.NEXT_RIP: "int: VMCB next_rip at the focus VMRUN (what an NRIPS CPU pushes for a soft event)",
    Observable.RIP: "int: VMCB RIP at the focus VMRUN",
    Observable.RFLAGS: "int: VMCB RFLAGS at the focus VMRUN",
    Observable.RF: "bool: RFLAGS.RF at the focus VMRUN",
    Observable.INTERRUPT_SHADOW: "bool: VMCB int_state bit 0 at the focus VMRUN",
    Observable.EXIT_CODE: "int: exit code of the first #VMEXIT (-1 = VMEXIT_INVALID)",
    Observable.EXIT_INT_INFO: "int: EXITINTINFO low 32 bits of the first #VMEXIT",
    Observable.EXIT_INT_INFO_ERR: "int: EXITINTINFO error code of the first #VMEXIT",
    Observable.EXIT_NEXT_RIP: "int: next_rip the CPU wrote at the first #VMEXIT (0 = cleared, H-12)",
    Observable.EXIT_RIP: "int: VMCB RIP at the first #VMEXIT",
    Observable.RETURN_RIP: 'int | None: return address pushed for the first delivered event ("ret")',
    Observable.DELIVERED: "int | None: vector of the first event delivered to the guest (Vector when named)",
    Observable.DELIVERED_TYPE: "EventType | None: how the first delivered event was delivered",
    Observable.DELIVERED_ERROR_CODE: "int | None: error code pushed with the first delivery",
    Observable.DELIVERY_COUNT: "int: how many times the subject event's vector was delivered",
    Observable.SPURIOUS_DB: "bool: a DR7 code breakpoint fired again on a retried soft instruction (H-37)",
    Observable.REQUEUED: "bool: the hypervisor requeued an event from EXITINTINFO",
    Observable.REQUEUED_EVENT: "int: the first requeued event in EVENTINJ encoding (0 if none)",
    Observable.PENDING_EXCEPTION: "int | None: vector KVM left pending in its queue (K-6.0-27/-30)",
    Observable.SOFT_INT_INJECTED: "bool: KVM's soft_int_injected at the focus VMRUN (kvm-6.0 on)",
    Observable.SOFT_INT_CSBASE: "int | None: soft_int_csbase recorded for the focus VMRUN",
    Observable.SOFT_INT_OLD_RIP: "int | None: soft_int_old_rip recorded for the focus VMRUN",
    Observable.SOFT_INT_NEXT_RIP: "int | None: soft_int_next_rip recorded for the focus VMRUN",
    Observable.INT3_INJECTED: "int: kvm-5.19's int3_injected (bytes RIP was advanced) at the focus VMRUN",
    Observable.INT3_RIP: "int: kvm-5.19's int3_rip at the focus VMRUN",
    Observable.VMCB12_EXIT_CODE: "int | None: exit code L1 sees on the first reflected #VMEXIT",
    Observable.VMCB12_EXIT_INT_INFO: "int | None: vmcb12 EXITINTINFO L1 sees (K-5.19-24, K-6.0-24)",
    Observable.VMCB12_NEXT_RIP: "int | None: vmcb12 next_rip L1 sees on the first reflected #VMEXIT",
    Observable.DEBUG_EXITS: "int: KVM_EXIT_DEBUG exits to userspace (guest debug, K-5.19-20)",
    Observable.EMULATION_FAILURES: "int: insn_emulation_fail count (K-6.2-3)",
    Observable.FINAL_RIP: "int: the guest's RIP when the run ended",
    Observable.OUTCOME: "Outcome: how the subject event ended",
    Observable.EVIDENCE: "Evidence: the weakest evidence among the rules the outcome depends on",
    Observable.CONFIRMED: 'bool: False when the outcome is "predicted, unconfirmed" ([D]/[I]/[U])',
    Observable.TRACEPOINTS: "tuple[str, ...]: KVM tracepoint lines (`kvm_inj_exception: #BP [reinjected]`)",
}


class Pick(IdentityEnum):
    """Which VMRUN, exit or delivery an observable reads (see Observable)."""

    FOCUS = "focus"
    FIRST = "first"
    LAST = "last"
