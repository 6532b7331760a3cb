"""Evidence tags of the spec rules the engine applies (spec README § Evidence tags).

Rules not listed are [V]. The outcome of a run carries the weakest tag among the rules it applied, so an outcome
that rests on a derived, inferred or unverified rule is reported as "predicted, unconfirmed".
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from dsl.engine.vocab import Evidence

_NO_TAGS: Mapping[str, Evidence] = MappingProxyType({})

#: The exact interleaving of K-6.0-30 ([V]: "the guest observes a #UD at the INT3"): the #BP goes in with the #UD
#: pending and the #UD is injected at the next entry, before the guest's next instruction. No source states the
#: order of the two deliveries, so the model's sequence is unverified.
DEFERRED_EXCEPTION_RULE = "K-6.0-30 [U: interleaving]"

#: KVM intercepts #UD for its emulator (kvm_amd init_vmcb; ud_interception → handle_ud, EMULTYPE_TRAP_UD). The
#: emulator runs only instructions marked EmulateOnUD (none of the engine's #UD instructions), so it queues #UD for
#: the guest, injected at the next entry. The spec has no rule for it; [V] from real kvm_amd traces (5.10.223 and
#: 6.1.192 under QEMU, tests/backends): `kvm_inj_exception: #UD` after INTO in 64-bit mode.
UD_INTERCEPT_RULE = "K-UD (ud_interception)"

#: The specification's rules that are not [V]. Read-only: a policy's own pseudo-rules go in `Policy.evidence`.
RULE_EVIDENCE: Mapping[str, Evidence] = MappingProxyType(
    {
        # H-6's next_rip rows are tagged [I] for the APM wording, but the spec settles them as hardware behaviour
        # (README disagreement 8) and tags the examples built on them [V]; the model therefore treats H-6 as [V].
        "H-17": Evidence.ARCH,
        "H-21": Evidence.ARCH,
        "H-22": Evidence.ARCH,
        "H-23": Evidence.ARCH,
        "H-28": Evidence.ARCH,
        "H-32": Evidence.UNVERIFIED,  # 16-bit IP overflow: unspecified
        "H-33": Evidence.ARCH,
        "H-34": Evidence.ARCH,
        "H-36": Evidence.ARCH,
        "H-40": Evidence.INFERRED,
        "Q-4": Evidence.INFERRED,  # one reading [I], the other [V]: the weaker one is reported
        "Q-9": Evidence.INFERRED,
        "K-6.0-23": Evidence.DERIVED,
        "K-6.0-24": Evidence.DERIVED,  # the vmcb12 next_rip value is marked [D: benign deviation]
        "K-6.0-26": Evidence.DERIVED,
        # Two descriptions of one report (README disagreement 6); the model follows reading B.
        "K-6.0-27": Evidence.UNVERIFIED,
        "K-6.0-28": Evidence.DERIVED,
        DEFERRED_EXCEPTION_RULE: Evidence.UNVERIFIED,
        "K-6.0-31": Evidence.UNVERIFIED,  # what the CPU pushes for SEV-ES is hardware/VMSA-defined [U]
        "K-6.19-6": Evidence.INFERRED,
        "K-6.19-7": Evidence.DERIVED,
        "K-7.1-7": Evidence.UNVERIFIED,
        "K-7.1-9": Evidence.UNVERIFIED,
        "ARCH": Evidence.ARCH,
    }
)

#: Strongest first. [ARCH] facts count as confirmed, like [V]: they do not weaken an outcome.
_STRENGTH: tuple[Evidence, ...] = (
    Evidence.VERIFIED,
    Evidence.DERIVED,
    Evidence.INFERRED,
    Evidence.UNVERIFIED,
)


def evidence_of(rule: str, policy_tags: Mapping[str, Evidence] = _NO_TAGS) -> Evidence:
    """The tag of one rule id (`K-6.0-10` → V); `policy_tags` holds the running policy's own pseudo-rules."""
    return policy_tags.get(rule) or RULE_EVIDENCE.get(rule, Evidence.VERIFIED)


_RANK: dict[Evidence, int] = {tag: _STRENGTH.index(tag) for tag in _STRENGTH} | {Evidence.ARCH: 0}
#: Each non-[V] spec rule's rank, precomputed: every run asks (string keys hash in C, Enum members in Python).
_SPEC_RANK: dict[str, int] = {rule: _RANK[tag] for rule, tag in RULE_EVIDENCE.items() if _RANK[tag]}


def weakest(rules: Iterable[str], policy_tags: Mapping[str, Evidence] = _NO_TAGS) -> Evidence:
    """The weakest evidence among `rules` ([V] when empty), with the running policy's own tags (`Policy.evidence`:
    "xen [U]", "BHYVE-3 [I]" …) next to the specification's."""
    ranks = _SPEC_RANK | {rule: _RANK[tag] for rule, tag in policy_tags.items()} if policy_tags else _SPEC_RANK
    if ranks.keys().isdisjoint(rules):
        return _STRENGTH[0]  # only [V] rules, the common case: one probe per rule, no ranks to compare
    rank = max(map(ranks.get, rules, itertools.repeat(0)), default=0)
    return _STRENGTH[rank]
