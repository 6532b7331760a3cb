"""Issue 8: the engine (profile qemu-tcg, the kernel's policy) against real kvm_amd booted under QEMU's TCG.

Runs when QEMU is installed; under CI=true it must run (.ci/qemu-kvm-deps.sh installs what it needs). One boot per
kernel runs every expressible row of the library (and a second the rows that disagreed, see
dsl/backends/qemu_kvm/compare.py: only a disagreement that comes back counts): the current Debian cloud kernel
(6.1.y, after the seed 6ef88d6e36c2) and, when the archive still offers it, bullseye's 5.10 (before the seed). Every
disagreement fails the test, except the ones listed in KNOWN: each names the observable and says why, and must still
occur (so that a fix in the engine or its profile shows up here and the entry is removed). Explained QEMU artefacts
are modelled in the qemu-tcg profile (Q-8, Q-10 … Q-12 in dsl/engine/profiles.py) and KVM's own behaviour in its
policies (the #UD intercept, the 5.10 tracepoint text); KNOWN keeps only what is not explained yet.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import NamedTuple

import pytest

from dsl.backends.qemu_kvm import BackendError, compare, prepare, subjects
from dsl.backends.qemu_kvm.boot import QEMU
from dsl.backends.qemu_kvm.image import cache_root
from dsl.engine.vocab import PolicyName

LIBRARY = Path(__file__).resolve().parents[2] / "scenarios"
CURRENT_KERNEL = None  # linux-image-cloud-amd64 of the machine's Debian release
BEFORE_SEED_KERNEL = "bullseye:linux-image-cloud-amd64"  # 5.10.y: kvm-5.19 behaviour


class Known(NamedTuple):
    """A disagreement reported to the engine's owner: rows whose label contains `fragment`, one observable."""

    fragment: str  # "" for every row
    observable: str  # "" for every observable of the row
    why: str
    policies: tuple[PolicyName, ...] = ()  # empty: under every kernel


#: None today. What used to be here, rows that disagreed in some boots only (EX-23's injected #BP lost on 5.10),
#: were entries the host cancelled at random; `compare` now confirms every disagreement in a second boot.
KNOWN: tuple[Known, ...] = ()


def _explains(known: Known, policy: PolicyName, label: str, observable: str) -> bool:
    applies = not known.policies or policy in known.policies
    return applies and known.fragment in label and known.observable in ("", observable)


@pytest.mark.skipif(
    shutil.which(QEMU) is None and os.environ.get("CI") != "true",
    reason=f"{QEMU} is not installed (CI=true makes this a failure; .ci/qemu-kvm-deps.sh installs it)",
)
@pytest.mark.parametrize("kernel_spec", [CURRENT_KERNEL, BEFORE_SEED_KERNEL], ids=["current", "before-seed"])
def test_engine_agrees_with_real_kvm_on_every_expressible_row(kernel_spec: str | None) -> None:
    """Issue 8 item 4: one boot per kernel (two if a row disagrees); any disagreement not in KNOWN fails, and every
    KNOWN entry must occur."""
    cache = cache_root()
    try:
        kernel = prepare(kernel_spec, cache)
    except BackendError as problem:
        if kernel_spec is CURRENT_KERNEL:
            raise
        pytest.skip(f"the archive does not offer {kernel_spec}: {problem}")
    result = compare(subjects(sorted(LIBRARY.rglob("*.svm")), kernel.policy), kernel, cache)

    assert len(result.compared) >= 50, "the backend should express most single-level rows of the library"
    found = {
        (comparison.subject.label, disagreement.observable): f"engine {disagreement.engine}; real {disagreement.real}"
        for comparison in result.compared
        if not comparison.unspecified
        for disagreement in comparison.disagreements
    }
    unexplained = [
        f"{label}: {observable}: {values}"
        for (label, observable), values in found.items()
        if not any(_explains(known, result.policy, label, observable) for known in KNOWN)
    ]
    assert not unexplained, f"{kernel.name} {kernel.version} ({result.policy.value}):\n" + "\n".join(unexplained)
    stale = [
        known
        for known in KNOWN
        if (not known.policies or result.policy in known.policies)
        and not any(_explains(known, result.policy, label, observable) for label, observable in found)
    ]
    assert not stale, f"these known disagreements no longer occur under {result.policy.value}; remove them: {stale}"
