"""Property tests: the architectural policy is the oracle; KVM agrees where the spec says it does, and every
known divergence is reported (outcome, spurious #DB, evidence) rather than hidden."""

from __future__ import annotations

import attrs
from hypothesis import given, settings
from hypothesis import strategies as st

from dsl.engine import CodeBreakpoint, CodeBytes, ExitFor, Program, Result, Run, Setup, VectoringFault, run
from dsl.engine.vocab import CpuMode, Evidence, ExitCode, FaultKind, Outcome, PolicyName, Vector

from .builders import ARCHITECTURAL, KVM_5_19, KVM_6_0, KVM_6_19, options

PROPERTY_SETTINGS = settings(derandomize=True, database=None, deadline=None, max_examples=120)
SIGN_BIT = 0x80


@attrs.frozen
class SoftInstruction:
    """A guest soft instruction and the event it raises."""

    code: bytes
    vector: int
    mode: CpuMode

    @property
    def length(self) -> int:
        return len(self.code)


@st.composite
def soft_instructions(draw: st.DrawFn) -> SoftInstruction:
    mode = draw(st.sampled_from([CpuMode.LONG_64, CpuMode.PROTECTED_32]))
    prefix = draw(st.sampled_from([b"", b"\x26", b"\x2e", b"\x3e\x3e"]))
    kind = draw(st.sampled_from(["int3", "into", "int n"] if mode is CpuMode.PROTECTED_32 else ["int3", "int n"]))
    if kind == "int3":
        return SoftInstruction(prefix + b"\xcc", Vector.BP, mode)
    if kind == "into":
        return SoftInstruction(prefix + b"\xce", Vector.OF, mode)
    vector = draw(st.integers(min_value=0x20, max_value=0xFF))
    return SoftInstruction(prefix + bytes((0xCD, vector)), vector, mode)


@attrs.frozen
class Scenario:
    insn: SoftInstruction
    address: int
    cs_base: int
    faults: tuple[FaultKind, ...]
    intr_after: bool
    breakpoint: bool

    def program(self, policy: PolicyName, nrips: bool = True, npt: bool = False) -> Program:
        setup = Setup(
            mode=self.insn.mode,
            cs_base=self.cs_base,
            rip=self.address,
            rflags=0x202 | 0x800,  # OF set: INTO raises #OF
            code=(CodeBytes(self.linear, self.insn.code),),
            breakpoints=(CodeBreakpoint(0, self.linear),) if self.breakpoint else (),
        )
        steps = (
            *(VectoringFault(fault, during=self.insn.vector) for fault in self.faults),
            *((ExitFor(ExitCode.INTR),) if self.intr_after else ()),
            Run(),
        )
        return Program(setup, steps, policy=policy, options=options(nrips=nrips, npt=npt))

    @property
    def linear(self) -> int:
        return self.address if self.insn.mode is CpuMode.LONG_64 else (self.cs_base + self.address) & 0xFFFF_FFFF

    @property
    def arch_return(self) -> int:
        return self.address + self.insn.length


@st.composite
def scenarios(draw: st.DrawFn) -> Scenario:
    insn = draw(soft_instructions())
    page = draw(st.integers(min_value=1, max_value=0xFF))
    offset = draw(st.integers(min_value=0, max_value=0xFF0))
    cs_base = draw(st.sampled_from([0, 0x10000, 0x7FFF0000]))
    return Scenario(
        insn=insn,
        address=page * 0x1000 + offset,
        cs_base=cs_base,
        faults=tuple(draw(st.lists(st.sampled_from([FaultKind.PF, FaultKind.NPF]), max_size=3))),
        intr_after=draw(st.booleans()),
        breakpoint=draw(st.booleans()),
    )


def subject_deliveries(result: Result, vector: int) -> list[int | None]:
    return [d.return_rip for d in result.deliveries if d.vector == vector]


@PROPERTY_SETTINGS
@given(scenarios())
def test_architectural_delivers_exactly_once_with_the_right_return_address(scenario: Scenario) -> None:
    """architectural: never lost, never duplicated, the return address after the instruction, no spurious #DB."""
    result = run(scenario.program(ARCHITECTURAL))
    assert subject_deliveries(result, scenario.insn.vector) == [scenario.arch_return]
    assert result.outcome in (Outcome.DELIVERED, Outcome.REINJECT)
    assert result.spurious_db is False


@PROPERTY_SETTINGS
@given(scenarios())
def test_kvm_6_0_with_nrips_agrees_with_architectural_on_unmodified_code(scenario: Scenario) -> None:
    """K-6.0-5, K-6.0-10, K-6.0-14: with NRIPS, unmodified code and a successful decode, kvm-6.0 is architectural."""
    kvm = run(scenario.program(KVM_6_0))
    oracle = run(scenario.program(ARCHITECTURAL))
    assert subject_deliveries(kvm, scenario.insn.vector) == subject_deliveries(oracle, scenario.insn.vector)
    assert kvm.outcome is oracle.outcome
    assert kvm.spurious_db is False


@PROPERTY_SETTINGS
@given(scenarios())
def test_kvm_5_19_divergence_is_reported_as_retry(scenario: Scenario) -> None:
    """K-5.19-14, K-5.19-16, H-37: a cut-short soft event is retried, and a breakpoint on it fires again."""
    result = run(scenario.program(KVM_5_19))
    if scenario.faults:
        assert result.outcome is Outcome.RETRY
        assert result.requeued == ()
        assert result.spurious_db is scenario.breakpoint
    else:
        assert result.outcome is Outcome.DELIVERED
    assert subject_deliveries(result, scenario.insn.vector) == [scenario.arch_return]


@PROPERTY_SETTINGS
@given(scenarios())
def test_kvm_6_19_reading_b_drop_is_reported_as_predicted(scenario: Scenario) -> None:
    """K-6.19-6 [I]: when kvm-6.19 must decode an INT n >= 0x80, the drop is reported, flagged unconfirmed."""
    result = run(scenario.program(KVM_6_19))
    must_decode = bool(scenario.faults)
    if must_decode and scenario.insn.code[-2:-1] == b"\xcd" and scenario.insn.vector >= SIGN_BIT:
        assert result.outcome is Outcome.DROPPED
        assert result.evidence is Evidence.INFERRED
    else:
        assert subject_deliveries(result, scenario.insn.vector) == [scenario.arch_return]


@PROPERTY_SETTINGS
@given(scenarios())
def test_kvm_6_0_nrips0_cs_base_divergence_is_reported(scenario: Scenario) -> None:
    """K-6.0-28 [D]: with nrips=0, a 64-bit non-zero CS.base and two exits, the re-injection skips twice — and the
    result says it rests on a derived rule. Otherwise nrips=0 is architectural too (K-6.0-11)."""
    result = run(scenario.program(KVM_6_0, nrips=False))
    skewed = scenario.insn.mode is CpuMode.LONG_64 and scenario.cs_base != 0 and len(scenario.faults) >= 2
    if skewed:
        assert result.evidence is Evidence.DERIVED
        assert any(t.rule == "K-6.0-28" for t in result.trace)
    else:
        assert subject_deliveries(result, scenario.insn.vector) == [scenario.arch_return]
