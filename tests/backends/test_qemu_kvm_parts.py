"""The real-KVM backend's parts, without QEMU: version → policy, lowering, reading the guest program's output."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from pathlib import Path

import attrs
import pytest

from dsl.backends import command
from dsl.backends.qemu_kvm import BackendError, Kernel, boot, cpio, expect, layout, report
from dsl.backends.qemu_kvm.compare import Subject, classify, disagreements
from dsl.backends.qemu_kvm.compare import compare as compare_rows
from dsl.backends.qemu_kvm.expect import real_result
from dsl.backends.qemu_kvm.kernel import policy_for_version
from dsl.backends.qemu_kvm.lower import GuestCase, NotExpressible, lower, soft_vector
from dsl.backends.qemu_kvm.text import render as render_comparison
from dsl.compiler.lowered import Check
from dsl.compiler.lowered import Comparison as CheckComparison
from dsl.engine import CodeBytes, Event, Execute, Inject, Nesting, PolicyOptions, Program, Run, Setup, VectoringFault
from dsl.engine.vocab import (
    CpuMode,
    EventType,
    FaultKind,
    HardwareProfile,
    InjectionSource,
    Observable,
    Outcome,
    PagingMode,
    PolicyName,
)
from dsl.errors import Loc

# What svmrun printed for a real-mode INT3 whose frame push took an #NPF, under Debian's 6.1.192 (kvm_amd on TCG).
REAL_MODE_INT3_OUTPUT = """\
begin c0
deliver 3 0x7ffa 0x0 011000000202000000000000000000000000000000000000000000000000000000000000000000000000000000000000
stop hlt 0x1001
trace kvm_entry: vcpu 0, rip 0x1000
trace kvm_exit: vcpu 0 reason npf rip 0x1000 info1 0x0000000100000006 info2 0x000000000007fffe intr_info 0x80000403 \
error_code 0x00000000
trace kvm_inj_virq: Soft/INTn 0x3 [reinjected]
trace kvm_entry: vcpu 0, rip 0x1001[immediate exit]
trace kvm_exit: vcpu 0 reason interrupt rip 0x40030 info1 0x0 info2 0x0 intr_info 0x00000403 error_code 0x00000000
trace kvm_entry: vcpu 0, rip 0x40030
trace kvm_exit: vcpu 0 reason hlt rip 0x1001 info1 0x0 info2 0x0 intr_info 0x00000000 error_code 0x00000000
end
"""


def _int3_program(mode: CpuMode = CpuMode.REAL, *, faults: int = 1) -> Program:
    return Program(
        setup=Setup(mode=mode, rip=0x1000, code=(CodeBytes(0x1000, b"\xcc"),)),
        steps=(*(VectoringFault(FaultKind.NPF),) * faults, Execute(), Run()),
        profile=HardwareProfile.QEMU_TCG,
        policy=PolicyName.KVM_6_19,
        options=PolicyOptions(nrips=False, paging=PagingMode.NPT),
    )


@pytest.mark.parametrize(
    ("version", "policy"),
    [
        ("5.10.237-1", PolicyName.KVM_5_19),  # before the seed series (README § Policy names: merged for v6.0)
        ("6.0.12", PolicyName.KVM_6_0),
        ("6.1.10", PolicyName.KVM_6_0),  # before the 6.1.14 backport of 17122c06b86c
        ("6.1.20", PolicyName.KVM_6_2),
        ("6.1.192-2", PolicyName.KVM_6_19),  # carries 4da3768e1820 (observed: INT 0x80 retried)
        ("6.12.57", PolicyName.KVM_6_6),
        ("7.1", PolicyName.KVM_7_1),
    ],
)
def test_kernel_version_picks_the_policy_of_its_release(version: str, policy: PolicyName) -> None:
    """README § Policy names and § Stable and distribution kernels: a stable kernel is its base plus backports."""
    assert policy_for_version(version) is policy


def test_one_l0_fault_leaves_only_the_stack_page_cold() -> None:
    """EX-01: the delivery's first access that misses L0's tables is the frame push, so only the stack is cold."""
    lowered = lower(_int3_program(), "c0")
    assert isinstance(lowered, GuestCase)
    warm = next(line for line in lowered.lines if line.startswith(f"mem {layout.WARM_CODE:x} "))
    routine = bytes.fromhex(warm.split()[2])
    assert layout.IDT_BASE.to_bytes(4, "little") in routine
    assert layout.STACK_PAGE.to_bytes(4, "little") not in routine


def test_two_l0_faults_leave_the_idt_and_the_stack_cold() -> None:
    """EX-02 (delivery cut short twice): the CPU reads the gate, then pushes the frame; both pages start cold."""
    lowered = lower(_int3_program(CpuMode.PROTECTED_32, faults=2), "c0")
    assert isinstance(lowered, GuestCase)
    warm = next(line for line in lowered.lines if line.startswith(f"mem {layout.WARM_CODE:x} "))
    routine = bytes.fromhex(warm.split()[2])
    assert layout.IDT_BASE.to_bytes(4, "little") not in routine
    assert layout.STACK_PAGE.to_bytes(4, "little") not in routine


def test_a_fault_that_does_not_match_the_paging_mode_is_not_expressible() -> None:
    """Under npt=1 an L0 fault is an #NPF (exit 0x400), never an intercepted #PF."""
    program = _int3_program()
    program = attrs.evolve(program, steps=(VectoringFault(FaultKind.PF), Execute(), Run()))
    lowered = lower(program, "c0")
    assert isinstance(lowered, NotExpressible)
    assert "#NPF" in lowered.reason


def test_nested_scenarios_are_reported_not_expressible() -> None:
    """Issue 8 item 5: nested scenarios are designed for, not built; they are listed with the reason."""
    program = _int3_program()
    nested = attrs.evolve(program, setup=Setup(nesting=Nesting()))
    lowered = lower(nested, "c0")
    assert isinstance(lowered, NotExpressible)
    assert "nested" in lowered.reason


def test_soft_vector_follows_the_opcode_after_prefixes() -> None:
    """H-26/H-27/H-28: prefixes do not change the vector; LOCK makes #UD; INTO is invalid in 64-bit mode."""

    def setup(code: bytes, mode: CpuMode = CpuMode.PROTECTED_32) -> Setup:
        return Setup(mode=mode, rip=0x1000, code=(CodeBytes(0x1000, code),))

    assert soft_vector(setup(b"\x26\xcc")) == 3
    assert soft_vector(setup(b"\x48\xcc", CpuMode.LONG_64)) == 3
    assert soft_vector(setup(b"\x66\xcd\x21")) == 0x21
    assert soft_vector(setup(b"\xf0\xcc")) is None
    assert soft_vector(setup(b"\xce", CpuMode.LONG_64)) is None
    assert soft_vector(setup(b"\x2e" * 14 + b"\xcd\x21")) is None


def test_the_guest_programs_output_reads_into_observables() -> None:
    """Q-4: on TCG the INT3's EXITINTINFO is type 4 (0x80000403); KVM re-injects it as Soft/INTn 0x3 (K-6.0-18)."""
    observed = report.parse(REAL_MODE_INT3_OUTPUT, {"c0": CpuMode.REAL})["c0"]
    assert [(d.vector, d.return_rip) for d in observed.deliveries] == [(3, 0x1001)]
    assert [(e.exit_code, e.exit_int_info) for e in observed.exits[:1]] == [(0x400, 0x80000403)]
    assert observed.injections == ("kvm_inj_virq: Soft/INTn 0x3 [reinjected]",)
    assert classify(observed, 3) == "reinject"


def test_a_cut_short_event_never_delivered_is_lost_and_one_not_requeued_is_retried() -> None:
    """Glossary: lost = never delivered; retry = not requeued, the guest re-executes the instruction."""
    exit_line = "kvm_exit: vcpu 0 reason npf rip 0x1000 info1 0x1 info2 0x2 intr_info 0x80000403 error_code 0x0"
    exits = (report.RealExit("npf", 0x400, 0x1000, 0x80000403),)
    lost = report.Observation("c0", (), exits, (), (exit_line,), "hlt", 0x1003)
    retried = report.Observation(
        "c0", (report.RealDelivery(3, 0x1001, None, 0),), exits, (), (exit_line,), "hlt", 0x1001
    )
    assert classify(lost, 3) == "lost"
    assert classify(retried, 3) == "retry"


def test_the_engine_and_a_matching_observation_agree() -> None:
    """K-6.0-7 with nrips=0 on qemu-tcg (Q-1, Q-4): the engine's EX-01 matches what real KVM printed."""
    observed = report.parse(REAL_MODE_INT3_OUTPUT, {"c0": CpuMode.REAL})["c0"]
    assert disagreements(_int3_program(), observed) == ()


def test_a_wrong_return_address_is_a_disagreement() -> None:
    """Any observable that differs is reported, with both values."""
    wrong = REAL_MODE_INT3_OUTPUT.replace("deliver 3 0x7ffa 0x0 0110", "deliver 3 0x7ffa 0x0 0010")
    observed = report.parse(wrong, {"c0": CpuMode.REAL})["c0"]
    found = disagreements(_int3_program(), observed)
    assert [d.observable for d in found] == ["deliveries (vector, return address)"]
    assert found[0].engine == "(0x3, 0x1001)"
    assert found[0].real == "(0x3, 0x1000)"


def test_initramfs_archives_are_newc_and_end_with_the_trailer() -> None:
    """The kernel's unpacker (init/initramfs.c) needs the 070701 magic, 4-byte alignment and TRAILER!!!."""
    data = cpio.archive((cpio.Entry("init", cpio.EXECUTABLE, b"#!/bin/sh\n"),))
    assert data.startswith(b"070701")
    assert data.rstrip(b"\0").endswith(b"TRAILER!!!")
    assert len(data) % 4 == 0


def _compare_args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="svmdsl")
    command.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["compare", *argv])


def test_a_missing_kernel_package_file_is_a_clear_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """Issue 8 item 3: clear errors when a package is missing; a usage error, no traceback."""
    seed = Path(__file__).resolve().parents[2] / "scenarios" / "seed"
    args = _compare_args(str(seed), "--kernel", str(tmp_path / "missing.deb"))
    assert args.handler(args) == command.EXIT_USAGE
    error = capsys.readouterr().err
    assert error == f"svmdsl compare: error: {tmp_path / 'missing.deb'}: no such kernel package file\n"


def test_missing_qemu_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Issue 8 item 3: without QEMU the boot says which package to install."""
    monkeypatch.setattr(boot.shutil, "which", lambda _name: None)
    kernel = Kernel("linux-image-test", tmp_path / "vmlinuz", (), "6.1.192")
    with pytest.raises(BackendError, match=r"qemu-system-x86_64 is not installed \(Debian: apt-get install -y qemu"):
        boot.boot(kernel, (), tmp_path)


def test_a_userspace_injection_is_lowered_into_kvm_set_vcpu_events() -> None:
    """K-5.19-19: userspace puts a soft INT n into KVM's interrupt queue (soft = 1), as QEMU's KVM_SET_VCPU_EVENTS."""
    program = _int3_program()
    injected = attrs.evolve(
        program,
        steps=(Inject(InjectionSource.USERSPACE, Event(0x80, EventType.SOFT)), VectoringFault(FaultKind.NPF), Run()),
    )
    lowered = lower(injected, "c0")
    assert isinstance(lowered, GuestCase)
    assert "event soft 128 0 0" in lowered.lines
    assert lowered.lines.index("event soft 128 0 0") == len(lowered.lines) - 2  # after regs, right before run


def test_an_injection_by_l1_is_not_expressible() -> None:
    """Nested injections need an L1 in the guest program (issue 8 item 5): reported, not run."""
    program = _int3_program()
    injected = attrs.evolve(program, steps=(Inject(InjectionSource.L1, Event(3, EventType.EXCEPTION)), Run()))
    lowered = lower(injected, "c0")
    assert isinstance(lowered, NotExpressible)
    assert "L1" in lowered.reason


def test_real_runs_answer_the_observables_real_kvm_shows() -> None:
    """Issue 8 item 1: the same observables as the engine where real KVM shows them (frames, kvm_exit, kvm_inj_*)."""
    observed = report.parse(REAL_MODE_INT3_OUTPUT, {"c0": CpuMode.REAL})["c0"]
    result = real_result(_int3_program(), observed)
    assert result.observe(Observable.EXIT_INT_INFO) == 0x80000403  # type 4 on TCG
    assert result.observe(Observable.EXIT_CODE) == 0x400
    assert result.observe(Observable.RETURN_RIP) == 0x1001
    assert result.observe(Observable.OUTCOME) is Outcome.REINJECT
    assert result.observe(Observable.REQUEUED) is True


def test_vmcb_fields_at_vmrun_are_not_observable_on_real_kvm() -> None:
    """EVENTINJ and next_rip at each VMRUN live inside kvm_amd: expectations on them are counted, not checked."""
    assert not expect.observable(_check(Observable.EVENT_INJ))
    assert not expect.observable(_check(Observable.NEXT_RIP))
    assert expect.observable(_check(Observable.RETURN_RIP))


def _check(target: Observable) -> Check:
    return Check(Loc("x.svm", 1, 1), "expect", target, CheckComparison.EQ, 0)


def test_a_dead_boot_names_the_kernel_panic_ahead_of_the_last_console_lines() -> None:
    """A guest that died in early boot is reported with the line that says why, not only its last lines."""
    console = "\n".join(
        [
            "[    0.020000] ..TIMER: vector=0x30 apic1=0 pin1=2 apic2=-1 pin2=-1",
            "[    0.024000] Kernel panic - not syncing: IO-APIC + timer doesn't work!",
            *(f"[    0.024000]  frame {n}" for n in range(8)),
        ]
    )
    said = boot._diagnosis(console)
    assert said.startswith("[    0.024000] Kernel panic - not syncing: IO-APIC + timer doesn't work!")
    assert said.endswith("frame 7")


def _boots(monkeypatch: pytest.MonkeyPatch, *results: str) -> list[list[str]]:
    """Make each boot print the next of `results`; returns the case ids each boot was given."""
    given: list[list[str]] = []

    def booted(kernel: Kernel, cases: Iterable[GuestCase], cache: Path) -> boot.BootOutput:
        given.append([case.case_id for case in cases])
        return boot.BootOutput(results[len(given) - 1], "", 1.0)

    monkeypatch.setattr(boot, "boot", booted)
    return given


WRONG_RETURN_OUTPUT = REAL_MODE_INT3_OUTPUT.replace("deliver 3 0x7ffa 0x0 0110", "deliver 3 0x7ffa 0x0 0010")


@pytest.mark.parametrize(
    ("second", "disturbed"), [(REAL_MODE_INT3_OUTPUT, True), (WRONG_RETURN_OUTPUT, False)], ids=["gone", "again"]
)
def test_a_disagreement_counts_only_if_a_second_boot_shows_it_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, second: str, disturbed: bool
) -> None:
    """The host may cancel an entry at random (KVM then takes the event back): a row that disagrees is run again,
    alone; one that agrees then is reported as disturbed, not as a disagreement."""
    given = _boots(monkeypatch, WRONG_RETURN_OUTPUT, second)
    kernel = Kernel("linux-image-test", tmp_path / "vmlinuz", (), "6.1.192")
    subjects = (Subject("EX-01", _int3_program()),)
    result = compare_rows(subjects, kernel, tmp_path)
    (row,) = result.comparisons
    assert given == [["c0"], ["c0"]]
    assert bool(row.disturbed) is disturbed
    assert bool(row.disagreements) is not disturbed
    assert [d.observable for d in row.disturbed or row.disagreements] == ["deliveries (vector, return address)"]
    shown = render_comparison(result)
    assert "compared in 2 boots (the second for the rows that disagreed)" in shown
    if disturbed:
        assert "disturbed        EX-01: disagreed in the first boot only (deliveries" in shown
        assert "1 agree (1 only in the second boot), 0 disagree" in shown
    else:
        assert "DISAGREE         EX-01" in shown


def test_rows_that_agree_take_one_boot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    given = _boots(monkeypatch, REAL_MODE_INT3_OUTPUT)
    kernel = Kernel("linux-image-test", tmp_path / "vmlinuz", (), "6.1.192")
    result = compare_rows((Subject("EX-01", _int3_program()),), kernel, tmp_path)
    assert given == [["c0"]]
    assert result.boots == 1
    assert not result.comparisons[0].disagreements
