"""Divergence classes: what a policy's result shows that the reference's (usually `architectural`) does not.

Only what the guest or L1 can see is compared — deliveries and their return addresses, spurious #DB, RFLAGS at
the injecting VMRUN, where the guest resumes, what L1 reads in vmcb12, and the failures (VMEXIT_INVALID, host BUG
…). KVM's internal bookkeeping (soft_int_*, re-stuffed next_rip) is how a policy gets there, not a divergence.
"""

from __future__ import annotations

import enum

from dsl.engine.result import EVENT_VALID, Delivery, Result
from dsl.engine.vocab import Outcome


class Divergence(enum.Enum):
    """One way a policy differs from the reference. The value is the class name printed in tables and files."""

    LOST_EVENT = "lost event"  # the reference delivers the event, the policy never does
    DUPLICATE_DELIVERY = "duplicate delivery"  # delivered more often than by the reference
    WRONG_RETURN_ADDRESS = "wrong return address"  # the event's handler sees another return address
    WRONG_EVENT_TYPE = "wrong event type"  # delivered as another EVENTINJ type (e.g. INTR for INT n, K-5.19-19)
    EXTRA_EVENT = "extra event"  # another vector reaches the guest (#PF, #UD …) that the reference does not deliver
    SPURIOUS_DB = "spurious #DB"  # a code breakpoint fires again on a re-executed instruction (H-37)
    WRONG_RFLAGS = "wrong RFLAGS"  # RF or the interrupt shadow differ at the VMRUN that injects the event
    WRONG_L1_EXIT_INFO = "wrong vmcb12 EXITINTINFO"  # L1 is told about another in-flight event (K-5.19-24)
    WRONG_RESUME = "wrong resume point"  # only the guest's final RIP differs (an instruction skipped or re-run)
    VMEXIT_INVALID = "VMEXIT_INVALID"  # a VMRUN fails its consistency checks (H-8, K-7.1-6)
    HOST_BUG = "host BUG"  # the host kernel hits a BUG_ON (K-5.19-10)
    EMULATION_ERROR = "emulation error"  # the vCPU exits to userspace with an emulation error (K-6.2-4)
    UNSUPPORTED = "unsupported"  # the hypervisor refuses the configuration (K-6.6-4)
    UNSPECIFIED = "unspecified"  # the sources do not say what the policy does (H-32, K-6.0-31)

    @property
    def slug(self) -> str:
        """A file-name and tag friendly form: `wrong-return-address`, `spurious-db`."""
        kept = "".join(c if c.isalnum() else "-" for c in self.value.lower())
        return "-".join(part for part in kept.split("-") if part)


#: Outcomes that end a run abnormally, and the class each one is.
_ANOMALIES: dict[Outcome, Divergence] = {
    Outcome.VMEXIT_INVALID: Divergence.VMEXIT_INVALID,
    Outcome.HOST_BUG: Divergence.HOST_BUG,
    Outcome.EMULATION_ERROR: Divergence.EMULATION_ERROR,
    Outcome.UNSUPPORTED: Divergence.UNSUPPORTED,
}


def classify(actual: Result, reference: Result, subject: int) -> tuple[Divergence, ...]:
    """The classes in which `actual` differs from `reference` for the soft event with vector `subject`.

    Empty when they agree, or when the reference itself is unspecified (nothing to compare against).
    """
    if reference.outcome is Outcome.UNSPECIFIED:
        return ()
    if actual.outcome is Outcome.UNSPECIFIED:
        return (Divergence.UNSPECIFIED,)
    if actual.outcome in _ANOMALIES or reference.outcome in _ANOMALIES:
        if actual.outcome is reference.outcome:
            return ()
        anomaly = _ANOMALIES.get(actual.outcome)
        # The reference failing where the policy runs on is a policy that accepts what it should refuse; the
        # guest-visible difference is then the event's fate, compared below.
        if anomaly is not None:
            return (anomaly,)
    found = _deliveries(actual, reference, subject)
    if actual.spurious_db and not reference.spurious_db:
        found.append(Divergence.SPURIOUS_DB)
    flags, expected_flags = _injecting_flags(actual), _injecting_flags(reference)
    if None not in (flags, expected_flags) and flags != expected_flags:
        found.append(Divergence.WRONG_RFLAGS)
    if _l1_exit_info(actual) != _l1_exit_info(reference):
        found.append(Divergence.WRONG_L1_EXIT_INFO)
    if not found and actual.final_rip != reference.final_rip:
        found.append(Divergence.WRONG_RESUME)
    return tuple(found)


def _subject_deliveries(result: Result, subject: int) -> list[Delivery]:
    return [d for d in result.deliveries if d.vector == subject]


def _deliveries(actual: Result, reference: Result, subject: int) -> list[Divergence]:
    found: list[Divergence] = []
    mine = _subject_deliveries(actual, subject)
    theirs = _subject_deliveries(reference, subject)
    if theirs and not mine:
        found.append(Divergence.LOST_EVENT)
    elif len(mine) > len(theirs):
        # More deliveries than the reference: a duplicate, or an event the reference never delivers at all.
        found.append(Divergence.DUPLICATE_DELIVERY if theirs else Divergence.EXTRA_EVENT)
    if mine and theirs:
        first, expected = mine[0], theirs[0]
        # A return address the sources leave unspecified (None) is not a divergence of its own.
        if None not in (first.return_rip, expected.return_rip) and first.return_rip != expected.return_rip:
            found.append(Divergence.WRONG_RETURN_ADDRESS)
        if first.type is not expected.type:
            found.append(Divergence.WRONG_EVENT_TYPE)
    extra = {d.vector for d in actual.deliveries} - {d.vector for d in reference.deliveries} - {subject}
    if extra and Divergence.EXTRA_EVENT not in found:
        found.append(Divergence.EXTRA_EVENT)
    return found


def _injecting_flags(result: Result) -> tuple[bool, bool] | None:
    """RF and the interrupt shadow at the focus VMRUN, when that VMRUN injects an event."""
    run = result.vmrun()
    if run is None or not run.event_inj & EVENT_VALID:
        return None
    return (run.rf, run.interrupt_shadow)


def _l1_exit_info(result: Result) -> int | None:
    exit_ = result.vmcb12_exit()
    return None if exit_ is None else exit_.exit_int_info
