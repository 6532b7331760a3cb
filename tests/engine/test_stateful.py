"""A stateful Hypothesis machine whose rules are the scenario step kinds: any sequence of steps either runs or is
refused with an EngineError — never a Python traceback — and under `architectural` a soft event that was raised is
delivered at most once, with the right return address."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from dsl.engine import (
    CancelEntry,
    CodeBytes,
    EngineError,
    Event,
    Execute,
    ExitFor,
    Inject,
    ModifyCode,
    Program,
    Reenter,
    Result,
    Run,
    SetPage,
    Setup,
    Step,
    VectoringFault,
    run,
)
from dsl.engine.vocab import (
    EventType,
    ExitCode,
    FaultKind,
    InjectionSource,
    Level,
    Observable,
    Outcome,
    PageTable,
    PolicyName,
    Vector,
)

CODE = b"\xcc\x90\xcd\x80\x90\xf4"  # INT3, NOP, INT 0x80, NOP, HLT
BASE = 0x1000
POLICIES = (*(name for name in PolicyName if name.value.startswith("kvm-")), PolicyName.ARCHITECTURAL)


class StepSequences(RuleBasedStateMachine):
    """Each rule appends one scenario step; the invariants run the program under every policy."""

    @initialize()
    def start(self) -> None:
        self.steps: list[Step] = []
        self.modified = False

    @rule()
    def execute(self) -> None:
        self.steps.append(Execute())

    @rule(fault=st.sampled_from([FaultKind.PF, FaultKind.NPF]))
    def vectoring_fault(self, fault: FaultKind) -> None:
        self.steps.append(VectoringFault(fault, Level.L0))

    @rule(code=st.sampled_from([ExitCode.INTR, ExitCode.NMI, ExitCode.NPF]))
    def exit_for(self, code: ExitCode) -> None:
        self.steps.append(ExitFor(code))

    @rule(data=st.sampled_from([b"\x90", b"\xcc", b"\xe8\x00\x00\x00\x00"]))
    def modify_code(self, data: bytes) -> None:
        self.modified = True
        self.steps.append(ModifyCode(BASE, data))

    @rule(present=st.booleans())
    def set_page(self, present: bool) -> None:
        self.steps.append(SetPage(BASE, PageTable.GUEST, present))

    @rule(vector=st.sampled_from([Vector.BP, Vector.OF]))
    def inject(self, vector: int) -> None:
        self.steps.append(Inject(InjectionSource.USERSPACE, Event(vector, EventType.EXCEPTION)))

    @rule()
    def cancel_entry(self) -> None:
        self.steps.append(CancelEntry())

    @rule()
    def reenter(self) -> None:
        self.steps.append(Reenter())

    @rule()
    def run_until_settled(self) -> None:
        self.steps.append(Run())

    def results(self) -> dict[PolicyName, Result | EngineError]:
        setup = Setup(rip=BASE, code=(CodeBytes(BASE, CODE),))
        outcomes: dict[PolicyName, Result | EngineError] = {}
        for policy in POLICIES:
            try:
                outcomes[policy] = run(Program(setup, (*self.steps, Run()), policy=policy))
            except EngineError as refused:
                outcomes[policy] = refused
        return outcomes

    @invariant()
    def runs_or_refuses_cleanly(self) -> None:
        """Only EngineError may escape (results() lets nothing else through); the oracle never duplicates."""
        oracle = self.results()[PolicyName.ARCHITECTURAL]
        if isinstance(oracle, Result) and not self.modified and oracle.subject_vector is not None:
            assert oracle.outcome is not Outcome.DUPLICATED
            assert oracle.observe(Observable.DELIVERY_COUNT) in (0, 1)


StepSequences.TestCase.settings = settings(
    derandomize=True, database=None, deadline=None, max_examples=40, stateful_step_count=8
)
TestStepSequences = StepSequences.TestCase
