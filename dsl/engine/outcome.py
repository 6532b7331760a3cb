"""How the subject event ended: the outcome class of a run (README glossary: retry, drop, lost, duplicated …)."""

from __future__ import annotations

from dsl.engine.machine import Machine
from dsl.engine.vocab import Outcome


def classify(m: Machine) -> Outcome:
    """Anomalies first; then how often and by which path the subject event reached the guest.

    - duplicated: delivered twice or more (e.g. injected as INTR, then the INT n runs again, EX-25);
    - lost: never delivered although it had to be — an injected event, or a guest instruction still in memory
      that the guest moved past (EX-12);
    - reflected: handed to L1 in vmcb12 EXITINTINFO (L1 must re-inject it, K-6.0-24);
    - dropped: the injection hook refused it (the skip failed: K-6.2-3, K-6.6-1, K-6.19-4);
    - retry: the completion did not requeue it and the guest re-executed the instruction (K-5.19-14, -16);
    - reinject: requeued from EXITINTINFO and re-injected (K-6.0-9, K-6.0-13);
    - delivered: delivered on the first attempt.
    """
    if m.anomaly is not None:
        return m.anomaly
    subject = m.subject
    if subject is None:
        return Outcome.NO_EVENT
    if subject.deliveries >= 2:
        return Outcome.DUPLICATED
    if subject.deliveries == 0:
        if subject.reflected:
            return Outcome.REFLECTED
        if subject.injected:
            return Outcome.LOST
        still_there = m.read(subject.linear, len(subject.original)) == subject.original
        if subject.retried:
            return Outcome.RETRY
        if subject.dropped and not still_there:
            return Outcome.DROPPED
        return Outcome.LOST
    if subject.dropped:
        return Outcome.DROPPED
    if subject.retried:
        return Outcome.RETRY
    if subject.requeued:
        return Outcome.REINJECT
    return Outcome.DELIVERED
