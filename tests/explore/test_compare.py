"""Divergence classes read off two results: only what the guest or L1 can see counts."""

from __future__ import annotations

import attrs
import pytest

from dsl.engine import Delivery, Result, Vmcb12Exit, VmrunRecord
from dsl.engine.vocab import EventType, Evidence, Outcome, Vector
from dsl.explore.compare import Divergence, classify

BP = int(Vector.BP)
#: #BP delivered once with the return address after the INT3 at 0x1000 (EX-01's architectural outcome).
ARCH = Result(
    Outcome.REINJECT,
    Evidence.ARCH,
    deliveries=(Delivery(BP, EventType.EXCEPTION, 0x1001, None, injected=True),),
    final_rip=0x1001,
)


def varied(**changes: object) -> Result:
    return attrs.evolve(ARCH, **changes)


def delivered(*returns: int | None, event_type: EventType = EventType.EXCEPTION) -> tuple[Delivery, ...]:
    return tuple(Delivery(BP, event_type, ret, None, injected=True) for ret in returns)


@pytest.mark.parametrize(
    ("actual", "expected"),
    [
        (ARCH, ()),
        (varied(outcome=Outcome.LOST, deliveries=()), (Divergence.LOST_EVENT,)),  # EX-39 under kvm-5.19
        (
            varied(deliveries=delivered(0x1000, 0x1001)),
            (Divergence.DUPLICATE_DELIVERY, Divergence.WRONG_RETURN_ADDRESS),
        ),
        (varied(deliveries=delivered(0x1005)), (Divergence.WRONG_RETURN_ADDRESS,)),  # EX-27 under kvm-6.0
        (varied(deliveries=delivered(None)), ()),  # an unspecified return address is no divergence of its own
        (varied(deliveries=delivered(0x1001, event_type=EventType.INTR)), (Divergence.WRONG_EVENT_TYPE,)),
        (varied(spurious_db=True), (Divergence.SPURIOUS_DB,)),  # H-37
        (varied(final_rip=0x1003), (Divergence.WRONG_RESUME,)),
        (varied(outcome=Outcome.VMEXIT_INVALID), (Divergence.VMEXIT_INVALID,)),  # K-7.1-6
        (varied(outcome=Outcome.UNSPECIFIED), (Divergence.UNSPECIFIED,)),  # K-6.0-31
    ],
)
def test_what_differs_from_the_reference(actual: Result, expected: tuple[Divergence, ...]) -> None:
    assert classify(actual, ARCH, BP) == expected


def test_another_vector_reaching_the_guest_is_an_extra_event() -> None:
    """E.g. a #PF queued by a faulting decode (K-6.0-27) that the reference never delivers."""
    page_fault = Delivery(int(Vector.PF), EventType.EXCEPTION, 0x1000, 0x10, injected=True)
    assert classify(varied(deliveries=(*ARCH.deliveries, page_fault)), ARCH, BP) == (Divergence.EXTRA_EVENT,)


def test_what_l1_reads_in_vmcb12_is_compared() -> None:
    """EX-43: kvm-5.19 rebuilds vmcb12 EXITINTINFO without the in-flight #BP."""
    told = varied(vmcb12_exits=(Vmcb12Exit(0x4E, 0x80000303, 0, 0x5002),))
    untold = varied(vmcb12_exits=(Vmcb12Exit(0x4E, 0, 0, 0),))
    assert classify(untold, told, BP) == (Divergence.WRONG_L1_EXIT_INFO,)


def test_rflags_count_only_at_a_vmrun_that_injects() -> None:
    """EX-17: the committing skip clears the STI shadow before the re-injection."""
    injecting = VmrunRecord(0x80000303, 0, 0x1001, 0x1001, 0, 0x202, True, False, 1)
    shadow_cleared = attrs.evolve(injecting, interrupt_shadow=False)
    assert classify(varied(vmruns=(shadow_cleared,)), varied(vmruns=(injecting,)), BP) == (Divergence.WRONG_RFLAGS,)
    idle = attrs.evolve(injecting, event_inj=0)
    assert classify(varied(vmruns=(attrs.evolve(idle, interrupt_shadow=False),)), varied(vmruns=(idle,)), BP) == ()


def test_nothing_is_compared_with_an_unspecified_reference() -> None:
    assert classify(varied(deliveries=()), varied(outcome=Outcome.UNSPECIFIED), BP) == ()


def test_the_same_failure_on_both_sides_is_no_divergence() -> None:
    failed = varied(outcome=Outcome.UNSUPPORTED, deliveries=())
    assert classify(failed, failed, BP) == ()
