"""The axes of the configuration space: small declarative value lists, simplest value first.

Each axis is one dimension of the specification (README § Options of the KVM policies, examples.md § A-I). The
first value of every axis is the examples' default (examples.md § Conventions), so that "minimal" means "as close
to the defaults as possible" — the order Hypothesis shrinks towards and the order exhaustive mode ranks by.
`values` is everything the explorer knows; `default` is the selection explored when the user restricts nothing
(sized so that the default run of three policies takes well under a minute on two cores).
"""

from __future__ import annotations

import attrs

from dsl.engine.vocab import CpuMode, HardwareProfile, PagingMode, Protection, SoftIntReading


def _names(items: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(items)


@attrs.frozen
class Axis:
    """One dimension: its name (a `Configuration` field), what it varies, and its values (simplest first)."""

    name: str
    summary: str
    values: tuple[str, ...] = attrs.field(converter=_names)
    default: tuple[str, ...] = attrs.field(converter=_names)

    def __attrs_post_init__(self) -> None:
        unknown = [value for value in self.default if value not in self.values]
        if unknown or not self.default:
            raise ValueError(f"axis {self.name}: default selection {self.default} is not a subset of {self.values}")

    def rank(self, value: str) -> int:
        """Distance of `value` from the simplest one (0 for the first)."""
        return self.values.index(value)


# -- value names (used by the program builder; one place spells each) ----------------------------------------------

SOURCE_INSTRUCTION = "instruction"  # the guest executes the instruction (EX-01 … EX-12)
SOURCE_USERSPACE = "userspace"  # KVM_SET_VCPU_EVENTS with the instruction at RIP (EX-21, EX-25)
SOURCE_USERSPACE_UNBACKED = "userspace-unbacked"  # … with another instruction at RIP (EX-23, EX-24)
SOURCE_GUEST_DEBUG = "guest-debug"  # KVM_GUESTDBG_USE_SW_BP: #BP intercepted, re-injected (EX-19, EX-20)
SOURCE_L1 = "l1"  # L1 injects through vmcb12 with the instruction at L2's RIP (EX-41)
SOURCE_L1_UNBACKED = "l1-unbacked"  # … with no such instruction there (EX-39, EX-42)

VECTORING_NONE = "none"
VECTORING_HOST = "host"  # L0's fault: intercepted #PF under shadow paging, #NPF under NPT (EX-01, EX-03)
VECTORING_L1 = "l1"  # a #PF L1 intercepts (EX-43)
VECTORING_GUEST = "guest"  # a #PF nobody intercepts: the guest's own handler runs first (H-16)
VECTORING_GATE = "gate"  # the IDT gate is not present: #NP, delivered to the guest (EX-13, EX-14)

SECOND_NONE = "none"
SECOND_SAME = "again"  # the re-injection is cut short again by the same fault (EX-02, EX-12)
SECOND_INTR = "intr"  # the re-injection completes, then an external interrupt exits (EX-15)
SECOND_CANCEL = "cancel"  # the entry that injects is cancelled (EX-16)

CODE_UNCHANGED = "none"
CODE_NOP = "nop"  # replaced by 90 (EX-28)
CODE_CALL = "call"  # replaced by a 5-byte CALL, Linux text poke (EX-27)
CODE_ICEBP = "icebp"  # replaced by F1 (EX-32)

DECODE_OK = "ok"
DECODE_UNMAPPED = "unmapped"  # the code page leaves the guest's tables before KVM decodes (EX-35)

DEBUG_NONE = "none"
DEBUG_DR0 = "dr0"  # a DR0 code breakpoint on the instruction (H-37)
DEBUG_RF = "rf"  # RFLAGS.RF set: the breakpoint is suppressed for one instruction (H-34)

PREVIOUS_NONE = "none"
PREVIOUS_OUT = "out"  # the last exit was an intercepted OUT just before RIP: VMCB next_rip left stale (EX-22)

SAVE_NONE = "none"
SAVE_PENDING = "pending"  # saved and restored with L1's VMRUN pending, before L2 runs (EX-44)
SAVE_REQUEUED = "requeued"  # saved and restored after L0 requeued the event from the first exit (EX-45)

SHADOW_NONE = "none"
SHADOW_STI = "sti"  # the instruction runs in an STI shadow (EX-17)

YES = "yes"
NO = "no"

#: Instructions by name: the bytes they assemble to (the same in every mode) and the event they raise.
INSTRUCTIONS: tuple[str, ...] = (
    "int3",  # CC → #BP, type 3
    "into",  # CE → #OF, type 3 (invalid in 64-bit mode)
    "int-0x80",  # CD 80 → SOFT 0x80 (K-6.19-6 readings differ)
    "int-0x20",  # CD 20 → SOFT 0x20
    "int-3",  # CD 03 → SOFT 3, not #BP (EX-09)
    "es-int3",  # 26 CC: prefixed INT3 (EX-10)
    "cs-int-0x80",  # 2E CD 80: prefixed INT 0x80 (EX-08)
)

AXES: tuple[Axis, ...] = (
    Axis(
        "source",
        "where the soft event comes from: the guest's instruction, KVM/userspace, guest debug, or L1 (vmcb12)",
        (
            SOURCE_INSTRUCTION,
            SOURCE_USERSPACE,
            SOURCE_USERSPACE_UNBACKED,
            SOURCE_L1,
            SOURCE_L1_UNBACKED,
            SOURCE_GUEST_DEBUG,
        ),
        (SOURCE_INSTRUCTION, SOURCE_USERSPACE, SOURCE_USERSPACE_UNBACKED, SOURCE_L1, SOURCE_L1_UNBACKED),
    ),
    Axis(
        "instruction",
        "the instruction and its encoding (prefixes, CD 03, INT n >= 0x80)",
        INSTRUCTIONS,
        ("int3", "into", "int-0x80"),
    ),
    Axis(
        "mode",
        "guest CPU mode (H-30): code size and whether CS.base applies",
        tuple(
            mode.value
            for mode in (
                CpuMode.LONG_64,
                CpuMode.PROTECTED_32,
                CpuMode.COMPAT_32,
                CpuMode.PROTECTED_16,
                CpuMode.REAL,
                CpuMode.COMPAT_16,
            )
        ),
        (CpuMode.LONG_64.value, CpuMode.PROTECTED_32.value),
    ),
    Axis("cs_base", "CS base (ignored by the hardware in 64-bit mode, H-31)", ("0x0", "0x10000"), ("0x0", "0x10000")),
    Axis(
        "profile",
        "NRIPS in hardware: the CPU model",
        tuple(profile.value for profile in HardwareProfile),
        (HardwareProfile.AMD_NRIPS.value, HardwareProfile.AMD_NO_NRIPS.value),
    ),
    Axis("nrips", "the kvm_amd nrips parameter (K-5.19-1)", ("1", "0"), ("1", "0")),
    Axis("l1_nrips", "NRIPS exposed to L1 (nested sources only, K-6.0-19)", (YES, NO), (YES, NO)),
    Axis(
        "paging",
        "how L0 maps guest memory (which exit cuts a delivery short)",
        tuple(mode.value for mode in PagingMode),
        (PagingMode.SHADOW.value,),
    ),
    Axis(
        "vectoring",
        "what interrupts the event's delivery and who intercepts it",
        (VECTORING_NONE, VECTORING_HOST, VECTORING_L1, VECTORING_GUEST, VECTORING_GATE),
        (VECTORING_NONE, VECTORING_HOST, VECTORING_L1),
    ),
    Axis(
        "second_exit",
        "what happens to the re-injection: cut short again, an INTR exit after it, or a cancelled entry",
        (SECOND_NONE, SECOND_SAME, SECOND_INTR, SECOND_CANCEL),
        (SECOND_NONE, SECOND_SAME),
    ),
    Axis(
        "code_change",
        "the instruction's bytes are rewritten during the exit (H-41)",
        (CODE_UNCHANGED, CODE_NOP, CODE_CALL, CODE_ICEBP),
        (CODE_UNCHANGED, CODE_CALL),
    ),
    Axis(
        "decode",
        "whether KVM can read the code when it decodes (EX-35)",
        (DECODE_OK, DECODE_UNMAPPED),
        (DECODE_OK, DECODE_UNMAPPED),
    ),
    Axis(
        "reading",
        "K-6.19-6 for INT n >= 0x80 under the opcode check: B (ib sign-extended, never matches) or A (matches)",
        tuple(reading.value for reading in (SoftIntReading.B, SoftIntReading.A)),
        (SoftIntReading.B.value,),
    ),
    Axis(
        "save_restore",
        "nested state saved and restored into a fresh vCPU (KVM_GET/SET_NESTED_STATE, EX-44, EX-45)",
        (SAVE_NONE, SAVE_PENDING, SAVE_REQUEUED),
        (SAVE_NONE, SAVE_PENDING, SAVE_REQUEUED),
    ),
    Axis(
        "previous_exit",
        "the exit before an injection: none (fresh vCPU, next_rip 0) or an intercepted OUT (next_rip stale, EX-22)",
        (PREVIOUS_NONE, PREVIOUS_OUT),
        (PREVIOUS_NONE, PREVIOUS_OUT),
    ),
    Axis(
        "debug",
        "DR7 code breakpoints and RFLAGS.RF (H-34, H-37)",
        (DEBUG_NONE, DEBUG_DR0, DEBUG_RF),
        (DEBUG_NONE, DEBUG_DR0),
    ),
    Axis("shadow", "interrupt shadow at the instruction (H-35)", (SHADOW_NONE, SHADOW_STI), (SHADOW_NONE, SHADOW_STI)),
    Axis(
        "protection",
        "SEV / SEV-ES guests (K-6.0-30, K-6.0-31, K-6.6-*)",
        tuple(p.value for p in (Protection.NONE, Protection.SEV, Protection.SEV_ES)),
        (Protection.NONE.value, Protection.SEV_ES.value),
    ),
)

AXIS_NAMES: tuple[str, ...] = tuple(axis.name for axis in AXES)


def axis_named(name: str) -> Axis | None:
    """The axis called `name` (a dash may stand for the underscore: `cs-base`), or None."""
    wanted = name.replace("-", "_")
    return next((axis for axis in AXES if axis.name == wanted), None)
