"""The engine's public contract: plain picklable input, one generic observable accessor, clear errors."""

from __future__ import annotations

import pickle

import pytest

from dsl.engine import (
    STEP_TYPES,
    CodeBytes,
    EngineError,
    Event,
    Execute,
    ExitFor,
    IdtGate,
    Inject,
    L1Vmrun,
    Nesting,
    Program,
    Reenter,
    Run,
    SaveRestore,
    Setup,
    VectoringFault,
    policy_catalog,
    profile_catalog,
    run,
)
from dsl.engine.vocab import (
    CpuMode,
    EventType,
    ExitCode,
    FaultKind,
    InjectionSource,
    Level,
    Observable,
    Outcome,
    Pick,
    PolicyName,
    Vector,
)

from .builders import INT3, KVM_6_0, execute_cut_short, obs, options


def test_program_and_result_pickle() -> None:
    """Programs and Results cross process boundaries (pytest-xdist) unchanged."""
    program = Program(Setup(code=(CodeBytes(0x1000, INT3),)), (VectoringFault(FaultKind.PF), Execute(), Run()))
    assert pickle.loads(pickle.dumps(program)) == program
    result = run(program)
    assert pickle.loads(pickle.dumps(result)) == result


def test_runs_are_deterministic() -> None:
    """The same Program gives the same Result."""
    program = Program(Setup(code=(CodeBytes(0x1000, INT3),)), (VectoringFault(FaultKind.PF), Execute(), Run()))
    assert run(program) == run(program)


def test_every_observable_is_readable_and_described() -> None:
    """H-1: the observables are the VMCB fields (EVENTINJ, EXITINTINFO, next_rip …); each has a stable snake_case
    name, a description, and a value for any Result."""
    result = execute_cut_short(INT3, KVM_6_0)
    for observable in Observable:
        assert observable.value == observable.value.lower()
        assert observable.description
        result.observe(observable)
    assert all(outcome.description for outcome in Outcome)


def test_pick_chooses_the_vmrun_exit_or_delivery() -> None:
    """Result.observe(…, Pick.FIRST / LAST / index) reads another VMRUN than the focus one."""
    result = execute_cut_short(INT3, KVM_6_0)
    assert result.observe(Observable.EVENT_INJ, Pick.FIRST) == 0
    assert result.observe(Observable.EVENT_INJ, Pick.LAST) == 0x80000303
    assert result.observe(Observable.EVENT_INJ, 1) == 0x80000303
    assert result.observe(Observable.EVENT_INJ, 7) == 0


def test_the_trace_names_actor_action_rule_and_changes() -> None:
    """Every engine step is a trace entry with the rule it applies and the fields it changed."""
    result = execute_cut_short(INT3, KVM_6_0)
    restuff_or_save = [t for t in result.trace if t.rule == "K-6.0-5"]
    assert restuff_or_save
    assert any(change.name == "vmcb.next_rip" and change.new == 0x1001 for change in restuff_or_save[0].changes)
    assert {t.actor.value for t in result.trace} >= {"guest", "CPU", "L0"}


def test_catalog_lists_policies_with_alias_and_profiles() -> None:
    """`svmdsl policies`: every policy and the kvm-mainline alias, with one-line summaries; three profiles."""
    names = [entry.name for entry in policy_catalog()]
    assert "kvm-mainline" in names
    assert all(entry.summary for entry in policy_catalog())
    assert [entry.name for entry in profile_catalog()] == ["amd-nrips", "amd-no-nrips", "qemu-tcg"]


def test_step_types_listed() -> None:
    assert len(STEP_TYPES) == 11


@pytest.mark.parametrize(
    ("program", "field", "expected"),
    [
        (Program(Setup(rip=0x1_0000, mode=CpuMode.REAL)), "setup.rip", "real mode"),
        (Program(Setup(cpl=4)), "setup.cpl", "0 … 3"),
        (Program(Setup(cs_base=1 << 33)), "setup.cs_base", "0xffffffff"),
        (Program(Setup(idt=(IdtGate(0x100),))), "setup.idt.vector", "0xff"),
        (
            Program(steps=(Inject(InjectionSource.USERSPACE, Event(0x40, EventType.EXCEPTION)),)),
            "steps[0].event.vector",
            "0 … 31",
        ),
        (Program(steps=(Inject(InjectionSource.L1, Event(3, EventType.EXCEPTION)),)), "steps[0].source", "L1 VMRUN"),
        (Program(steps=(L1Vmrun(event_inj=0x80000303),)), "steps[0]", "nesting"),
        (Program(steps=(VectoringFault(FaultKind.PF, Level.L1),)), "steps[0].handled_by", "nesting"),
        (
            Program(steps=(VectoringFault(FaultKind.NPF, Level.GUEST),)),
            "steps[0].handled_by",
            "never handled by the guest",
        ),
        (Program(steps=(ExitFor(ExitCode.EXCP_GP),)), "steps[0].exit_code", "INTR"),
        (Program(steps=(SaveRestore(),)), "steps[0]", "nesting"),
        (
            Program(policy=PolicyName.KVM_6_2, options=options(seed_as_committed=True)),
            "options.seed_as_committed",
            "kvm-6.0",
        ),
        (Program(steps=(Run(max_entries=0),)), "steps[0].max_entries", "at least 1"),
    ],
)
def test_bad_configurations_name_the_field(program: Program, field: str, expected: str) -> None:
    """Impossible programs raise EngineError naming the field, its value and what was expected."""
    with pytest.raises(EngineError) as caught:
        run(program)
    assert caught.value.field == field
    assert expected in caught.value.expected
    assert str(caught.value).startswith(f"{field} = ")
    copy = pickle.loads(pickle.dumps(caught.value))
    assert (copy.field, copy.value, copy.expected) == (field, caught.value.value, caught.value.expected)


def test_state_errors_name_the_step() -> None:
    """Steps that need L0 outside the guest say so (an injection while the guest runs, a re-entry twice)."""
    setup = Setup(code=(CodeBytes(0x1000, b"\x90\x90"),))
    with pytest.raises(EngineError, match="steps\\[1\\]"):
        run(Program(setup, (Execute(), Inject(InjectionSource.USERSPACE, Event(Vector.BP, EventType.EXCEPTION)))))
    with pytest.raises(EngineError, match="steps\\[1\\]"):
        run(Program(setup, (Reenter(), Reenter())))


def test_l0_entry_after_a_reflected_exit_needs_l1() -> None:
    """After an exit reflected to L1, only an L1 VMRUN lets L2 run again."""
    setup = Setup(code=(CodeBytes(0x1000, b"\x0f\x01\xd9"),), nesting=Nesting(intercepted_exits=(ExitCode.VMMCALL,)))
    steps = (L1Vmrun(rip=0x1000), Execute(), Execute(), Execute())
    with pytest.raises(EngineError, match="L1 VMRUN"):
        run(Program(setup, steps))


def test_vmrun_failure_is_modelled_not_raised() -> None:
    """H-8: an invalid EVENTINJ is VMEXIT_INVALID, not an error."""
    setup = Setup(nesting=Nesting())
    result = run(Program(setup, (L1Vmrun(event_inj=0x80000502, rip=0x1000), Run()), policy=KVM_6_0))
    assert obs(result, "outcome") is Outcome.VMEXIT_INVALID
