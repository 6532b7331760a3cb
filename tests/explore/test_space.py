"""The axes and the space: restrictions, applicability, the shrink order, and the programs configurations become."""

from __future__ import annotations

import itertools

import pytest

from dsl.engine import run
from dsl.engine.program import Execute, Inject, L1Vmrun, Run, VectoringFault
from dsl.engine.vocab import CpuMode, FaultKind, InjectionSource, Level, PolicyName
from dsl.explore.axes import AXES
from dsl.explore.build import build_program, linear_rip
from dsl.explore.compare import Divergence
from dsl.explore.findings import compare
from dsl.explore.space import AXIS_NAMES, AxisError, Configuration, Space, applicable, exclusion, parse_restriction


def test_an_unknown_axis_names_the_axes_there_are() -> None:
    with pytest.raises(AxisError, match="NAME one of source, instruction, mode"):
        parse_restriction("colour=red", Space.default())


def test_an_unknown_value_names_the_values_of_the_axis() -> None:
    with pytest.raises(AxisError, match="unknown value long65 for mode; expected one or more of long64"):
        parse_restriction("mode=long65", Space.default())


def test_a_restriction_keeps_the_axis_order_so_the_first_value_stays_the_simplest() -> None:
    space = parse_restriction("mode=compat32,long64", Space.default())
    assert space.values("mode") == ("long64", "compat32")


def test_all_selects_every_value_and_a_dash_may_stand_for_the_underscore() -> None:
    space = parse_restriction("cs-base=all", parse_restriction("mode=all", Space.default()))
    assert space.values("mode") == next(a for a in AXES if a.name == "mode").values
    assert space.values("cs_base") == ("0x0", "0x10000")


def test_every_axis_default_starts_with_its_simplest_value() -> None:
    """examples.md § Conventions: the defaults are the first values, the shrink target."""
    for axis in AXES:
        assert axis.default[0] == axis.values[0], axis.name
    assert Configuration().rank[0] == 0


def test_into_in_64_bit_mode_is_not_explored() -> None:
    """INTO is invalid in 64-bit mode (#UD, H-23): not a soft event there."""
    assert not applicable(Configuration(instruction="into", mode="long64"))
    assert applicable(Configuration(instruction="into", mode="protected32"))


def test_an_axis_that_does_not_apply_holds_its_first_value() -> None:
    assert not applicable(Configuration(l1_nrips="no"))  # L1's NRIPS without nesting
    assert applicable(Configuration(source="l1", l1_nrips="no"))
    assert not applicable(Configuration(second_exit="again"))  # nothing was cut short the first time
    assert not applicable(Configuration(code_change="call"))  # nobody decodes after a clean delivery
    assert not applicable(Configuration(profile="amd-no-nrips", nrips="0"))  # effective nrips is 0 anyway


def test_the_default_space_has_no_duplicates_and_only_applicable_configurations() -> None:
    configs = list(Space.default().configurations())
    assert len(configs) == len(set(configs))
    assert all(applicable(config) for config in configs)


def test_a_guest_int3_cut_short_by_an_l0_fault_is_ex_01() -> None:
    """EX-01: `CC` at 0x1000, shadow paging, the delivery hits an intercepted #PF."""
    program = build_program(Configuration(vectoring="host"), PolicyName.KVM_6_0)
    assert program.setup.code[0].data[:1] == b"\xcc"
    assert program.steps == (VectoringFault(FaultKind.PF, handled_by=Level.L0), Execute(), Run())


def test_npt_turns_the_l0_fault_into_an_npf() -> None:
    program = build_program(Configuration(vectoring="host", paging="npt"), PolicyName.KVM_6_0)
    assert program.steps[0] == VectoringFault(FaultKind.NPF, handled_by=Level.L0)


def test_an_unbacked_userspace_injection_has_a_mov_at_rip() -> None:
    """EX-23: userspace injects #BP where no INT3 is."""
    program = build_program(Configuration(source="userspace-unbacked"), PolicyName.KVM_6_0)
    assert program.setup.code[0].data == bytes.fromhex("89c8")
    assert isinstance(program.steps[0], Inject)
    assert program.steps[0].source is InjectionSource.USERSPACE


def test_l1_without_nrips_advances_l2_rip_itself() -> None:
    """EX-44: L1 without NRIPS writes RIP past the instruction and next_rip 0."""
    program = build_program(Configuration(source="l1", l1_nrips="no", instruction="int-0x20"), PolicyName.KVM_6_0)
    vmrun = program.steps[0]
    assert isinstance(vmrun, L1Vmrun)
    assert (vmrun.event_inj, vmrun.rip, vmrun.next_rip) == (0x80000420, 0x1002, 0)


def test_cs_base_applies_outside_64_bit_mode_only() -> None:
    """H-31: the linear RIP adds CS.base except in 64-bit mode."""
    assert linear_rip(Configuration(cs_base="0x10000")) == 0x1000
    assert linear_rip(Configuration(cs_base="0x10000", mode=CpuMode.COMPAT_32.value)) == 0x11000


def test_an_out_before_a_userspace_injection_leaves_a_stale_next_rip() -> None:
    """EX-22: `E6 80` at 0x0FFE is intercepted first; KVM skips to 0x1000 and the VMCB keeps next_rip 0x1000."""
    program = build_program(Configuration(source="userspace", previous_exit="out"), PolicyName.KVM_6_0)
    assert program.setup.rip == 0x0FFE
    assert program.setup.code[0].data[:3] == bytes.fromhex("e680cc")
    assert program.steps[0] == Execute()
    assert not applicable(Configuration(previous_exit="out"))  # the guest's own INT3 does not read next_rip


@pytest.mark.parametrize(
    ("save_restore", "policy", "divergences"),
    [
        ("pending", PolicyName.KVM_6_0, (Divergence.WRONG_RETURN_ADDRESS,)),  # EX-44: ret 0x0
        ("pending", PolicyName.KVM_7_1, ()),  # EX-44: nr from the live L2 RIP at VMRUN
        ("requeued", PolicyName.KVM_6_19, (Divergence.LOST_EVENT,)),  # EX-45: the decode does not match
        ("requeued", PolicyName.KVM_7_1, ()),  # EX-45: the synced NextRIP is restored
    ],
)
def test_nested_save_and_restore_by_l1_without_nrips(
    save_restore: str, policy: PolicyName, divergences: tuple[Divergence, ...]
) -> None:
    """EX-44, EX-45: L1 without NRIPS injects INT 0x20 into L2; the nested state crosses a save/restore."""
    vectoring = "host" if save_restore == "requeued" else "none"
    config = Configuration(
        source="l1", l1_nrips="no", instruction="int-0x20", vectoring=vectoring, save_restore=save_restore
    )
    assert applicable(config)
    assert compare(config, policy, PolicyName.ARCHITECTURAL, run).divergences == divergences


def test_enumeration_yields_exactly_the_applicable_combinations_in_product_order() -> None:
    """The per-source pinning is only a shortcut: the same configurations as filtering the whole product."""
    space = parse_restriction("instruction=int3", parse_restriction("mode=long64", Space.default()))
    space = parse_restriction("l1_nrips=no", space)  # a first value missing from the selection pins to nothing
    brute = [
        config
        for combination in itertools.product(*space.selection)
        if applicable(config := Configuration(**dict(zip(AXIS_NAMES, combination, strict=True))))
    ]
    assert list(space.configurations()) == brute
    assert brute


def test_every_exclusion_says_why() -> None:
    assert (
        exclusion(Configuration(instruction="into")) == "INTO is invalid in 64-bit mode (#UD): not a soft event there"
    )
    assert exclusion(Configuration()) is None
