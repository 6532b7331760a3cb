"""`svmdsl run --backend qemu-kvm`: what real KVM did for each row — the observables the engine also reports."""

from __future__ import annotations

from dsl.backends.qemu_kvm.compare import ComparisonReport, classify, subject_vector
from dsl.backends.qemu_kvm.lower import NotExpressible, injected_event
from dsl.backends.qemu_kvm.report import Observation


def render_observations(report: ComparisonReport) -> str:
    kernel = report.kernel
    lines = [f"real KVM: {kernel.name} {kernel.version} under QEMU TCG (one boot, {report.boot_seconds:.1f} s)"]
    for comparison in report.comparisons:
        label = comparison.subject.label
        if isinstance(comparison.lowered, NotExpressible):
            lines.append(f"  not expressible  {label}: {comparison.lowered.reason}")
        elif comparison.observation is not None:
            outcome = classify(
                comparison.observation,
                subject_vector(comparison.subject.program),
                injected=injected_event(comparison.subject.program) is not None,
            )
            lines.append(f"  {outcome:<16} {label}")
            lines += [f"      {line}" for line in _observables(comparison.observation)]
    return "\n".join(lines) + "\n"


def _observables(real: Observation) -> list[str]:
    lines = []
    for delivery in real.deliveries:
        error = "" if delivery.error_code is None else f", error code 0x{delivery.error_code:x}"
        frame = f"return address 0x{delivery.return_rip:x}{error}, CR2 0x{delivery.cr2:x}"
        lines.append(f"delivered vector 0x{delivery.vector:x}, {frame}")
    lines += [f"exit {e.reason} at 0x{e.rip:x}, EXITINTINFO 0x{e.exit_int_info:08x}" for e in real.exits]
    lines += real.injections
    lines.append(f"stopped: {real.stop} at 0x{real.stop_rip:x}")
    return lines
