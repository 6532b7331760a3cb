"""KVM intercepts #UD for its emulator (`ud_interception`, UD_INTERCEPT_RULE) and injects the #UD it queues.

No spec rule describes it; real kvm_amd shows it (`kvm_inj_exception: #UD` after INTO in 64-bit mode, on 5.10.223
and 6.1.192 under QEMU, tests/backends). What the guest sees does not change: #UD at the instruction (H-23, H-28).
"""

from __future__ import annotations

import pytest

from dsl.engine import CodeBytes, Execute, Program, Result, Run, Setup, run
from dsl.engine.rules import UD_INTERCEPT_RULE
from dsl.engine.vocab import CpuMode, ExitCode, HardwareProfile, PolicyName, Protection, Vector

from .builders import ALL_KVM, ARCHITECTURAL, REINJECTING, options

INTO = b"\xce"
LOCK_INT3 = b"\xf0\xcc"
#: EVENTINJ for #UD: V | type 3 (exception) | vector 6, no error code.
UD_EVENT_INJ = 0x8000_0306
RFLAGS_IF_OF = 0xA02


def _executes(
    code: bytes, policy: PolicyName, *, mode: CpuMode = CpuMode.LONG_64, protection: Protection = Protection.NONE
) -> Result:
    setup = Setup(mode=mode, rip=0x1000, rflags=RFLAGS_IF_OF, code=(CodeBytes(0x1000, code),))
    steps = (Execute(), Run(max_entries=2))
    return run(Program(setup, steps, HardwareProfile.AMD_NRIPS, policy, options(protection=protection)))


@pytest.mark.parametrize("policy", ALL_KVM)
@pytest.mark.parametrize("code", [INTO, LOCK_INT3], ids=["into-64", "lock-int3"])
def test_kvm_intercepts_ud_and_injects_it_at_the_instruction(policy: PolicyName, code: bytes) -> None:
    """H-23, H-28, UD_INTERCEPT_RULE: #VMEXIT 0x46, KVM queues #UD and injects it; the handler returns onto it."""
    result = _executes(code, policy)
    assert result.exits[0].exit_code == ExitCode.EXCP_UD
    assert result.vmruns[1].event_inj == UD_EVENT_INJ
    assert result.vmruns[1].rip == 0x1000
    assert (result.deliveries[0].vector, result.deliveries[0].return_rip) == (Vector.UD, 0x1000)
    assert result.deliveries[0].injected
    assert UD_INTERCEPT_RULE in result.outcome_rules


@pytest.mark.parametrize("policy", REINJECTING)
def test_the_queued_ud_is_traced_as_new_not_reinjected(policy: PolicyName) -> None:
    """K-6.0-18, UD_INTERCEPT_RULE: the #UD is a new exception (pending), so no " [reinjected]"."""
    assert _executes(INTO, policy).tracepoints[0] == "kvm_inj_exception: #UD"


def test_architectural_delivers_ud_without_an_exit() -> None:
    """H-23: with no hypervisor in the way the CPU delivers #UD through the IDT directly."""
    result = _executes(INTO, ARCHITECTURAL)
    assert not result.exits
    assert (result.deliveries[0].vector, result.deliveries[0].injected) == (Vector.UD, False)


def test_sev_guest_ud_is_not_intercepted() -> None:
    """init_vmcb (later sev_init_vmcb) clears the #UD intercept for SEV guests, whose code KVM cannot decode."""
    result = _executes(INTO, PolicyName.KVM_6_19, protection=Protection.SEV)
    assert not result.exits
    assert UD_INTERCEPT_RULE not in result.outcome_rules
