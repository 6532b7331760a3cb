"""The words a scenario may use where the grammar accepts any name, each mapped to the engine's vocabulary.

One place for the checker ("did you mean"), the highlighter, the reference documentation and the lowering.
Everything here is derived from `dsl.engine.vocab` where the engine defines the concept; the remaining tables
are spellings that only the language has (exit reasons by instruction name, RFLAGS bits by name).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from dsl.engine.vocab import (
    CpuMode,
    Evidence,
    ExitCode,
    FaultKind,
    GateType,
    HardwareProfile,
    Observable,
    Outcome,
    PagingMode,
    Pick,
    Protection,
    SoftIntReading,
    Vector,
    policy_names,
)

PROFILES: tuple[str, ...] = tuple(p.value for p in HardwareProfile)
POLICIES: tuple[str, ...] = policy_names()
MODES: tuple[str, ...] = tuple(m.value for m in CpuMode)
PAGING: tuple[str, ...] = tuple(p.value for p in PagingMode)
PROTECTIONS: tuple[str, ...] = tuple(p.value for p in Protection)
READINGS: tuple[str, ...] = tuple(r.value for r in SoftIntReading)
GATE_TYPES: tuple[str, ...] = tuple(g.value for g in GateType)
FAULTS: tuple[str, ...] = tuple(f.value for f in FaultKind)
OBSERVABLES: tuple[str, ...] = tuple(o.value for o in Observable)
OUTCOMES: tuple[str, ...] = tuple(o.value for o in Outcome)
EVIDENCE: tuple[str, ...] = tuple(e.value for e in Evidence)
PICKS: tuple[str, ...] = tuple(p.value for p in Pick)

#: Observables whose value is true or false (dsl.engine.vocab.Observable's comments).
BOOLEAN_OBSERVABLES: tuple[str, ...] = (
    "rf", "interrupt_shadow", "spurious_db", "requeued", "soft_int_injected", "l1_nmi_masked", "confirmed",
)  # fmt: skip
#: Observables holding several strings, checked with `contains "…"`.
LIST_OBSERVABLES: tuple[str, ...] = ("tracepoints",)

#: Observables whose value is a vector: a word on the right-hand side names one (`expect delivered == #BP`).
VECTOR_OBSERVABLES: tuple[str, ...] = (Observable.DELIVERED.value, Observable.PENDING_EXCEPTION.value)
#: Observables whose value is an exit code: a word names the exit (`expect exit_code == hlt`).
EXIT_CODE_OBSERVABLES: tuple[str, ...] = (Observable.EXIT_CODE.value, Observable.VMCB12_EXIT_CODE.value)
#: How a delivered event's type is written (`expect delivered_type == soft`), as the lowering reads it.
DELIVERED_TYPES: tuple[str, ...] = ("intr", "nmi", "exception", "soft")

#: Observables that count things: the formatter writes their values in decimal.
COUNTS: tuple[str, ...] = ("delivery_count", "debug_exits", "emulation_failures", "int3_injected")

#: `variant …`: the seed series as first committed (K-6.0-20 variant, EX-42); a kvm-6.0 option.
VARIANTS: tuple[str, ...] = ("seed-as-committed",)
#: `guest debug …`: KVM_GUESTDBG_USE_SW_BP (K-5.19-20), or off (the default).
GUEST_DEBUG_MODES: tuple[str, ...] = ("sw-bp", "off")
#: `interrupt shadow …` (H-35): after STI, after MOV SS / POP SS, or none.
INTERRUPT_SHADOWS: tuple[str, ...] = ("sti", "mov-ss", "none")
#: `l1 with …` / `l1 without …`: CPUID features and set-up of the nested hypervisor.
L1_FEATURES: tuple[str, ...] = ("nrips", "npt", "shstk")
#: `breakpoint drN at …`.
BREAKPOINT_REGISTERS: tuple[str, ...] = ("dr0", "dr1", "dr2", "dr3")

#: Vectors by name as written in scenarios: `#BP`, `#PF` … and `NMI`.
VECTORS: dict[str, Vector] = {v.mnemonic: v for v in Vector}

#: RFLAGS bits by name (APM vol. 2 §3.1.6), for `rflags IF, OF`.
RFLAGS_BITS: dict[str, int] = {
    "CF": 0,
    "PF": 2,
    "AF": 4,
    "ZF": 6,
    "SF": 7,
    "TF": 8,
    "IF": 9,
    "DF": 10,
    "OF": 11,
    "NT": 14,
    "RF": 16,
    "VM": 17,
    "AC": 18,
    "VIF": 19,
    "VIP": 20,
    "ID": 21,
}
#: RFLAGS bit 1 always reads as one.
RFLAGS_RESERVED_ONE = 0x2

#: `exit for …` and `l1 intercepts …`: exits by the name of what causes them.
EXIT_REASONS: dict[str, ExitCode] = {
    "out": ExitCode.IOIO,
    "in": ExitCode.IOIO,
    "ioio": ExitCode.IOIO,
    "cpuid": ExitCode.CPUID,
    "hlt": ExitCode.HLT,
    "vmmcall": ExitCode.VMMCALL,
    "msr": ExitCode.MSR,
    "rdmsr": ExitCode.MSR,
    "wrmsr": ExitCode.MSR,
    "intr": ExitCode.INTR,
    "nmi": ExitCode.NMI,
    "npf": ExitCode.NPF,
    "#NPF": ExitCode.NPF,
    "swint": ExitCode.SWINT,
    "icebp": ExitCode.ICEBP,
    **{v.mnemonic: ExitCode(ExitCode.for_exception(v)) for v in Vector if v.mnemonic.startswith("#") and
       ExitCode.for_exception(v) in ExitCode._value2member_map_},
}  # fmt: skip

#: VMCB fields a `vmcb… <field> <value>` line may set, per VMCB, with their width in bits (what the engine's
#: Program can hold: `vmcb next_rip` is Setup.vmcb_next_rip, the vmcb12 fields are L1's VMRUN).
VMCB_FIELDS: dict[str, dict[str, int]] = {
    "vmcb": {"next_rip": 64},
    "vmcb12": {"event_inj": 32, "event_inj_err": 32, "rip": 64, "next_rip": 64, "cs_base": 32},
    "vmcb02": {},  # L0 builds vmcb02 from vmcb12; the engine models its stale fields itself
}

#: `with …=` fields of an injection, per source (userspace, guest-debug, L1), with their width in bits.
INJECT_FIELDS: dict[str, dict[str, int]] = {
    "userspace": {"error_code": 32},
    "guest-debug": {"error_code": 32},
    "L1": {"rip": 64, "next_rip": 64, "cs_base": 32, "error_code": 32},
}
#: `vectoring hits … with …=` fields.
VECTORING_FIELDS: dict[str, int] = {"error_code": 32, "cr2": 64}

#: Instructions by mnemonic (`code at …: int3`); `dsl.compiler.assemble` encodes each. Anything else: `bytes …`.
MNEMONICS: tuple[str, ...] = (
    "int3", "into", "int", "icebp", "int1", "bound", "nop", "ud2", "hlt", "sti", "cli", "clc", "stc", "cpuid",
    "rdtsc", "pause", "vmmcall", "vmrun", "vmload", "vmsave", "stgi", "clgi", "iret", "iretd", "iretq", "ret",
    "leave", "pushf", "popf", "out", "in", "mov", "push", "pop", "bswap", "jmp", "call",
)  # fmt: skip

#: Outcomes whose words read better apart (`expect vmexit invalid`); the others keep their underscore.
SPACED_OUTCOMES: tuple[Outcome, ...] = (Outcome.VMEXIT_INVALID, Outcome.HOST_BUG, Outcome.EMULATION_ERROR)

#: How close a word must be to suggest it ("did you mean"), as a difflib ratio.
SIMILARITY = 0.6


def nearest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate nearest to `word` (case-insensitive), or None when nothing is close."""
    by_lower = {c.lower(): c for c in candidates}
    if word.lower() in by_lower:
        return by_lower[word.lower()]
    close = difflib.get_close_matches(word.lower(), list(by_lower), n=1, cutoff=SIMILARITY)
    return by_lower[close[0]] if close else None


def outcome_spelling(outcome: Outcome) -> str:
    """How an outcome is written after `expect`."""
    return outcome.value.replace("_", " ") if outcome in SPACED_OUTCOMES else outcome.value
