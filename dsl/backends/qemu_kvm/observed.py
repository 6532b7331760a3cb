"""`svmdsl run --backend qemu-kvm`: what real KVM did for each row, and which expectations held."""

from __future__ import annotations

from dsl.backends.qemu_kvm.compare import ComparisonReport, classify, subject_vector
from dsl.backends.qemu_kvm.expect import hold
from dsl.backends.qemu_kvm.lower import NotExpressible, injected_event
from dsl.backends.qemu_kvm.report import Observation
from dsl.compiler.lowered import Case


def render_observations(report: ComparisonReport) -> str:
    kernel = report.kernel
    booted = f"{report.boots_text}, {report.boot_seconds:.1f} s"
    lines = [f"real KVM: {kernel.name} {kernel.version} under QEMU TCG ({booted})"]
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


def render_held(report: ComparisonReport, cases: tuple[Case, ...], texts: dict[str, str]) -> tuple[str, bool]:
    """The observations, then each case's verdict on real KVM; and whether any expectation failed."""
    lines = [render_observations(report).rstrip("\n"), f"expectations under {report.policy.value}, on real KVM:"]
    held = hold(cases, report, texts)
    for case_report in held:
        case = case_report.case
        verdict = "FAILED" if case_report.mismatches else "held"
        unseen = f", {case_report.not_observable} not observable" if case_report.not_observable else ""
        counts = f"{case_report.checked} checked{unseen}"
        lines.append(f"  {verdict:<7} {case.loc.file}:{case.loc.line}: {case.display_title} ({counts})")
        lines += [
            f"      {m.location}: {m.expectation}: expected {m.expected}, real KVM {m.actual}"
            for m in case_report.mismatches
        ]
    failed = sum(1 for r in held if r.mismatches)
    lines.append(f"{len(held)} cases run on real KVM: {len(held) - failed} held, {failed} failed")
    return "\n".join(lines) + "\n", bool(failed)
