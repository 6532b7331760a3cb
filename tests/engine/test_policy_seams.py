"""What the run loop asks of a policy: the rule it cites for userspace injection and the evidence of its own tags."""

from __future__ import annotations

import pytest

from dsl.engine import CodeBytes, Execute, L1Vmrun, Nesting, Program, Result, Run, Setup, VectoringFault, run
from dsl.engine.policies import POLICIES
from dsl.engine.result import Action
from dsl.engine.rules import RULE_EVIDENCE, evidence_of, weakest
from dsl.engine.vocab import (
    KVM_RELEASES,
    Evidence,
    FaultKind,
    InjectionSource,
    PolicyName,
)

from .builders import BP, INT3, execute_cut_short, inject, options, soft_int

OTHERS = (PolicyName.XEN, PolicyName.VIRTUALBOX, PolicyName.BHYVE, PolicyName.ARCHITECTURAL)


def _stories(policy: PolicyName) -> tuple[Result, ...]:
    """Userspace and debugger injections, a cut-short INT3, a guest-debug #BP exit and an L1 injection (EX-39)."""
    npt = options(npt=True)
    debug = options(npt=True, guest_debug=True)
    nested = Setup(nesting=Nesting(), code=(CodeBytes(0x5000, b"\x0f\x0b"),))
    return (
        inject(BP, policy, opts=npt),
        inject(soft_int(0x80), policy, code=b"\xcd\x80", opts=npt),
        inject(BP, policy, source=InjectionSource.GUEST_DEBUG, opts=debug),
        execute_cut_short(INT3, policy, opts=npt, fault=FaultKind.NPF),
        run(Program(Setup(code=(CodeBytes(0x1000, INT3),)), (Execute(), Run()), policy=policy, options=debug)),
        run(
            Program(
                nested,
                (L1Vmrun(event_inj=0x80000303, rip=0x5000, next_rip=0x5002), VectoringFault(FaultKind.NPF), Run()),
                policy=policy,
                options=npt,
            )
        ),
    )


@pytest.mark.parametrize("policy", KVM_RELEASES)
@pytest.mark.parametrize(
    ("source", "rule"), [(InjectionSource.USERSPACE, "K-5.19-19"), (InjectionSource.GUEST_DEBUG, "K-5.19-20")]
)
def test_kvm_queues_under_its_api_rules(policy: PolicyName, source: InjectionSource, rule: str) -> None:
    """K-5.19-19, K-5.19-20: KVM_SET_VCPU_EVENTS / KVM_SET_GUEST_DEBUG fill KVM's queue under every KVM release."""
    result = inject(BP, policy, source=source, opts=options(guest_debug=source is InjectionSource.GUEST_DEBUG))
    queued = [t for t in result.trace if t.action is Action.QUEUE]
    assert [t.rule for t in queued] == [rule]


@pytest.mark.parametrize("policy", OTHERS)
def test_other_hypervisors_never_cite_kvm_rules(policy: PolicyName) -> None:
    """XEN-n, VBOX-n, BHYVE-n, ARCH: a trace under another hypervisor cites its own rules, never a K-n rule."""
    cited = {entry.rule for result in _stories(policy) for entry in result.trace}
    assert not [rule for rule in cited if rule.startswith("K-")]


def test_policy_tags_weaken_only_their_own_runs() -> None:
    """README § Evidence tags: "xen [U]" is unverified under Xen; the same string means nothing to another policy."""
    xen_tags = POLICIES[PolicyName.XEN].evidence
    assert evidence_of("xen [U]", xen_tags) is Evidence.UNVERIFIED
    assert evidence_of("xen [U]") is Evidence.VERIFIED
    assert weakest(("K-6.0-10", "xen [D]"), xen_tags) is Evidence.DERIVED
    assert weakest(("K-6.0-10", "BHYVE-3 [I]"), POLICIES[PolicyName.BHYVE].evidence) is Evidence.INFERRED


def test_specification_tags_are_read_only() -> None:
    """README § Evidence tags: the table of spec rules cannot be changed by importing a policy module."""
    assert evidence_of("K-6.19-6") is Evidence.INFERRED
    with pytest.raises(TypeError):
        RULE_EVIDENCE["K-6.0-10"] = Evidence.UNVERIFIED  # type: ignore[index]
