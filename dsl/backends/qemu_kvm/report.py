"""Read what the guest program printed into observations: deliveries, KVM's exits, entries and injections.

The observables are those real KVM shows without instrumenting it: the frame each handler found on its stack
(vector, return address, error code, CR2) and KVM's tracepoints (kvm_exit with EXITINTINFO, kvm_entry with the
RIP of each VMRUN, kvm_inj_exception / kvm_inj_virq).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Iterator

import attrs

from dsl.backends.qemu_kvm import layout
from dsl.engine.vocab import CpuMode, ExitCode

#: kvm_exit's reason strings (arch/x86/include/uapi/asm/svm.h SVM_EXIT_REASONS) for the exits that matter here.
EXIT_REASONS: dict[str, int] = {
    "npf": ExitCode.NPF,
    "PF excp": ExitCode.EXCP_PF,
    "BP excp": ExitCode.EXCP_BP,
    "DB excp": ExitCode.EXCP_DB,
    "NP excp": ExitCode.EXCP_NP,
    "GP excp": ExitCode.EXCP_GP,
    "interrupt": ExitCode.INTR,
    "nmi": ExitCode.NMI,
    "cpuid": ExitCode.CPUID,
    "hlt": ExitCode.HLT,
    "io": ExitCode.IOIO,
    "shutdown": ExitCode.SHUTDOWN,
}
_EXIT = re.compile(
    r"kvm_exit: vcpu \d+ reason (?P<reason>.+?) rip (?P<rip>0x[0-9a-f]+) .*intr_info (?P<info>0x[0-9a-f]+)"
)
_ENTRY = re.compile(r"kvm_entry: vcpu \d+, rip (?P<rip>0x[0-9a-f]+)")
_INJECTION = "kvm_inj_"
#: The guest program stops at the HLT that ends the scenario's code: any other stop is an anomaly.
STOP_AT_END = "hlt"
#: The guest program gave up after its exit bound (svmrun.c `run`): a delivery loop.
STOP_AT_LIMIT = "limit"


@attrs.frozen
class RealDelivery:
    vector: int
    return_rip: int
    error_code: int | None
    cr2: int


@attrs.frozen
class RealExit:
    reason: str
    exit_code: int | None  # None for a reason not in EXIT_REASONS
    rip: int
    exit_int_info: int


@attrs.frozen
class Observation:
    """One case under real KVM. `error` is set when the guest program could not run it."""

    case_id: str
    deliveries: tuple[RealDelivery, ...] = ()
    exits: tuple[RealExit, ...] = ()
    entries: tuple[int, ...] = ()
    tracepoints: tuple[str, ...] = ()  # every kvm_* line, in order
    stop: str = ""
    stop_rip: int = 0
    error: str | None = None

    @property
    def injections(self) -> tuple[str, ...]:
        return tuple(line for line in self.tracepoints if line.startswith(_INJECTION))


def parse(results: str, modes: dict[str, CpuMode]) -> dict[str, Observation]:
    """Observations by case id; `modes` says how to read each case's frames."""
    return {block[0]: _observation(block, modes.get(block[0], CpuMode.REAL)) for block in _blocks(results)}


def _blocks(results: str) -> Iterator[list[str]]:
    block: list[str] | None = None
    for line in results.splitlines():
        if line.startswith("begin "):
            block = [line.removeprefix("begin ").strip()]
        elif line == "end" and block is not None:
            yield block
            block = None
        elif block is not None:
            block.append(line)


def _observation(block: list[str], mode: CpuMode) -> Observation:
    deliveries: list[RealDelivery] = []
    exits: list[RealExit] = []
    entries: list[int] = []
    tracepoints: list[str] = []
    stop, stop_rip, error = "", 0, None
    for line in block[1:]:
        word, _, rest = line.partition(" ")
        if word == "deliver":
            deliveries.append(_delivery(rest, mode))
        elif word == "stop":
            stop, _, rip = rest.partition(" ")
            stop_rip = int(rip, 0)
        elif word == "error":
            error = rest
        elif word == "trace":
            tracepoints.append(rest)
            exit_match, entry_match = _EXIT.search(rest), _ENTRY.search(rest)
            if exit_match:
                reason = exit_match["reason"]
                exits.append(
                    RealExit(reason, EXIT_REASONS.get(reason), int(exit_match["rip"], 0), int(exit_match["info"], 0))
                )
            elif entry_match:
                entries.append(int(entry_match["rip"], 0))
    return Observation(
        block[0], tuple(deliveries), tuple(exits), tuple(entries), tuple(tracepoints), stop, stop_rip, error
    )


def _delivery(fields: str, mode: CpuMode) -> RealDelivery:
    vector_text, _rsp, cr2, frame_hex = fields.split()
    vector, frame = int(vector_text), bytes.fromhex(frame_hex)
    if mode is CpuMode.REAL:
        (return_rip,) = struct.unpack_from("<H", frame)
        return RealDelivery(vector, return_rip, None, int(cr2, 0))
    if mode is CpuMode.LONG_64:
        if vector in layout.ERROR_CODE_VECTORS:
            error_code, return_rip = struct.unpack_from("<QQ", frame)
            return RealDelivery(vector, return_rip, error_code, int(cr2, 0))
        (return_rip,) = struct.unpack_from("<Q", frame)
        return RealDelivery(vector, return_rip, None, int(cr2, 0))
    if vector in layout.ERROR_CODE_VECTORS:
        error_code, return_rip = struct.unpack_from("<II", frame)
        return RealDelivery(vector, return_rip, error_code, int(cr2, 0))
    (return_rip,) = struct.unpack_from("<I", frame)
    return RealDelivery(vector, return_rip, None, int(cr2, 0))
