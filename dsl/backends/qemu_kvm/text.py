"""The comparison as text: every disagreement, every row not expressible (with its reason), then a summary."""

from __future__ import annotations

from dsl.backends.qemu_kvm.compare import Comparison, ComparisonReport, classify, subject_vector
from dsl.backends.qemu_kvm.lower import NotExpressible, injected_event


def render(report: ComparisonReport, *, verbose: bool = False) -> str:
    kernel = report.kernel
    engine = f"engine: profile qemu-tcg, policy {report.policy.value}"
    lines = [f"real KVM: {kernel.name} {kernel.version} under QEMU TCG; {engine}"]
    for comparison in report.comparisons:
        lines += _comparison(comparison, verbose=verbose)
    compared = report.compared
    unspecified = sum(1 for c in compared if c.unspecified)
    disagreeing = sum(1 for c in compared if c.disagreements and not c.unspecified)
    agreeing = len(compared) - disagreeing - unspecified
    disturbed = sum(1 for c in compared if c.disturbed)
    lines.append(
        f"{len(compared)} compared in {report.boots_text} of {report.boot_seconds:.1f} s: {agreeing} agree"
        + (f" ({disturbed} only in the second boot)" if disturbed else "")
        + f", {disagreeing} disagree, {unspecified} unspecified by the engine (real KVM's answer shown); "
        f"{len(report.comparisons) - len(compared)} not expressible"
    )
    return "\n".join(lines) + "\n"


def _comparison(comparison: Comparison, *, verbose: bool) -> list[str]:
    label = comparison.subject.label
    if isinstance(comparison.lowered, NotExpressible):
        return [f"  not expressible  {label}: {comparison.lowered.reason}"] if verbose else []
    if comparison.unspecified and comparison.observation is not None:
        real = classify(
            comparison.observation,
            subject_vector(comparison.subject.program),
            injected=injected_event(comparison.subject.program) is not None,
        )
        returns = ", ".join(f"0x{d.return_rip:x}" for d in comparison.observation.deliveries[:1]) or "-"
        return [f"  unspecified      {label}: real KVM: {real}, first return address {returns}"]
    if comparison.disturbed:
        observables = "; ".join(found.observable for found in comparison.disturbed)
        return [f"  disturbed        {label}: disagreed in the first boot only ({observables})"]
    if not comparison.disagreements:
        return [f"  agree            {label}"] if verbose else []
    return [
        f"  DISAGREE         {label}",
        *(
            f"      {found.observable}: engine {found.engine}; real KVM {found.real}"
            for found in comparison.disagreements
        ),
    ]
