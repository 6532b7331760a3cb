"""The registry of hypervisor policies: one module per policy, each the previous one plus its changes.

Adding a hypervisor is one module with a `Policy` subclass and one line here.
"""

from __future__ import annotations

from dsl.engine.policies.architectural import Architectural
from dsl.engine.policies.base import NestedState, Policy
from dsl.engine.policies.bhyve import Bhyve
from dsl.engine.policies.kvm_5_19 import Kvm519
from dsl.engine.policies.kvm_6_0 import Kvm60
from dsl.engine.policies.kvm_6_2 import Kvm62
from dsl.engine.policies.kvm_6_6 import Kvm66
from dsl.engine.policies.kvm_6_19 import Kvm619
from dsl.engine.policies.kvm_7_1 import Kvm71
from dsl.engine.policies.virtualbox import VirtualBox
from dsl.engine.policies.xen import Xen
from dsl.engine.vocab import PolicyName

#: One stateless instance per implemented policy.
POLICIES: dict[PolicyName, Policy] = {
    policy.name: policy
    for policy in (
        Kvm519(),
        Kvm60(),
        Kvm62(),
        Kvm66(),
        Kvm619(),
        Kvm71(),
        Xen(),
        VirtualBox(),
        Bhyve(),
        Architectural(),
    )
}


def register(policy: Policy) -> None:
    """Make a policy available to `run` (for policy modules outside this package)."""
    POLICIES[policy.name] = policy


def implemented() -> tuple[PolicyName, ...]:
    """The policies `run` accepts, in documentation order."""
    return tuple(name for name in PolicyName if name in POLICIES)


__all__ = ["POLICIES", "NestedState", "Policy", "implemented", "register"]
