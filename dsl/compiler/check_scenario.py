"""Whole-scenario checks for `dsl.compiler.check`: facts about a scenario's set-up, and contradictions in it.

A scenario's statements here are its full list (background first); "the last one wins" for single-valued
settings, as the lowering applies them.
"""

from __future__ import annotations

from collections.abc import Sequence

from dsl.compiler.assemble import AssembleError, assemble
from dsl.compiler.check_report import Reporter
from dsl.engine.vocab import CpuMode, PolicyName, policy_by_name
from dsl.syntax import ast, render, vocabulary

#: Where the examples put the instruction under test when a scenario gives no `rip` (examples.md).
DEFAULT_RIP = 0x1000
#: Linear addresses wrap at 4 GiB outside 64-bit mode (README glossary, "linear RIP").
LINEAR_MASK_LEGACY = 0xFFFF_FFFF
#: Instructions that raise #UD in 64-bit mode (APM vol. 3): worth a warning when a scenario places them there.
INVALID_IN_64_BIT = ("into", "bound")


# --- facts ------------------------------------------------------------------------------------------------------


#: The settings that take one value, and their words; each is its own key (see `setting_key`).
_SINGLE_VALUED: dict[object, str] = {
    ast.ProfileSetting: "profile",
    ast.PoliciesSetting: "policies",
    ast.NripsSetting: "nrips",
    ast.PagingSetting: "paging",
    ast.ProtectionSetting: "protection",
    ast.VariantSetting: "variant",
    ast.ReadingSetting: "int-n reading",
    ast.GuestDebugSetting: "guest debug",
    ast.ModeSetting: "mode",
    ast.CsBaseSetting: "cs base",
    ast.RipSetting: "rip",
    ast.RflagsSetting: "rflags",
    ast.InterruptShadowSetting: "interrupt shadow",
    ast.CplSetting: "cpl",
    ast.GifSetting: "gif",
}


def setting_key(statement: ast.Statement) -> object | None:
    """What a single-valued setting sets (two statements with the same key contradict if they differ)."""
    match statement:
        case ast.VmcbFieldSetting(vmcb=vmcb, field=field):
            return (ast.VmcbFieldSetting, vmcb, field.text)
        case ast.L1FeatureSetting(feature=feature):
            return (ast.L1FeatureSetting, feature.text)
    # Looked up by class (AST node classes have no subclasses): 15 class patterns cost ~1 us per statement.
    return type(statement) if type(statement) in _SINGLE_VALUED else None


def setting_label(key: object) -> str:
    """The words for a setting key (`paging`, `vmcb12 rip`, `l1 nrips`)."""
    if isinstance(key, tuple):
        if key[0] is ast.VmcbFieldSetting:
            return f"{key[1].value} {key[2]}"
        return f"l1 {key[1]}"
    return _SINGLE_VALUED.get(key, "this setting")


def last_mode(statements: Sequence[ast.Statement]) -> CpuMode:
    mode = CpuMode.LONG_64  # the examples' default (examples.md § Conventions)
    for s in statements:
        if isinstance(s, ast.ModeSetting) and s.mode.text in vocabulary.MODES:
            mode = CpuMode(s.mode.text)
    return mode


def policies_of(statements: Sequence[ast.Statement]) -> tuple[PolicyName, ...] | None:
    """The policies the scenario runs (aliases resolved), or None when it names none."""
    chosen: tuple[PolicyName, ...] | None = None
    for s in statements:
        if isinstance(s, ast.PoliciesSetting):
            chosen = tuple(p for p in (policy_by_name(n.text) for n in s.policies) if p is not None)
    return chosen


def last_rip(statements: Sequence[ast.Statement]) -> int:
    rips = [s.rip for s in statements if isinstance(s, ast.RipSetting)]
    return rips[-1] if rips else DEFAULT_RIP


def last_cs_base(statements: Sequence[ast.Statement]) -> int:
    bases = [s.base for s in statements if isinstance(s, ast.CsBaseSetting)]
    return bases[-1] if bases else 0


def is_nesting(statement: ast.Statement) -> bool:
    """Set-up that only makes sense with an L1: `l1 …` lines and vmcb12 fields."""
    if isinstance(statement, ast.VmcbFieldSetting):
        return statement.vmcb is not ast.Vmcb.VMCB
    return isinstance(statement, ast.L1FeatureSetting | ast.L1InterceptSetting)


# --- contradictions ---------------------------------------------------------------------------------------------


def check_consistency(
    report: Reporter, statements: Sequence[ast.Statement], mode: CpuMode, policies: tuple[PolicyName, ...] | None
) -> None:
    """Set-up that contradicts itself or the policies it runs under."""
    settings = {type(s): s for s in statements if isinstance(s, ast.SETTING_TYPES)}
    nrips = settings.get(ast.NripsSetting)
    protection = settings.get(ast.ProtectionSetting)
    profile = settings.get(ast.ProfileSetting)
    variant = settings.get(ast.VariantSetting)
    nrips_off = isinstance(nrips, ast.NripsSetting) and not nrips.enabled
    if isinstance(protection, ast.ProtectionSetting) and protection.protection.text != "none" and nrips_off:
        report.warn(
            protection.loc,
            f"{protection.protection.text} with nrips 0: kvm-6.6 and later refuse to create the VM (K-6.6-4, EX-37)",
        )
    without_nrips = isinstance(profile, ast.ProfileSetting) and profile.profile.text == "amd-no-nrips"
    if without_nrips and isinstance(nrips, ast.NripsSetting) and nrips.enabled:
        report.warn(nrips.loc, "nrips 1 on a CPU without NRIPS: the effective value is 0 (K-5.19-1)")
    if isinstance(variant, ast.VariantSetting) and policies is not None and PolicyName.KVM_6_0 not in policies:
        report.error(
            variant.loc, f"variant {variant.variant.text} is a variant of kvm-6.0, which this scenario does not run"
        )
    placed = check_code_overlaps(report, statements, mode)
    check_executed_code(report, statements, mode, placed)
    if mode is CpuMode.LONG_64:
        check_invalid_in_64_bit(report, statements)


def _size(code: ast.Code, address: int, mode: CpuMode) -> bytes | None:
    try:
        return assemble(code, address, mode)
    except AssembleError:
        return None  # reported where the code is checked


def check_code_overlaps(
    report: Reporter, statements: Sequence[ast.Statement], mode: CpuMode
) -> dict[int, tuple[ast.CodeSetting, bytes]]:
    """Two `code at` lines whose bytes overlap; returns the code placed, by address."""
    placed: dict[int, tuple[ast.CodeSetting, bytes]] = {}
    for s in statements:
        if not isinstance(s, ast.CodeSetting):
            continue
        data = _size(s.code, s.address, mode)
        if data is None:
            continue
        for start, (other, other_data) in placed.items():
            if s.address < start + len(other_data) and start < s.address + len(data) and other != s:
                report.error(
                    s.loc,
                    f"code at {s.address:#x} overlaps the code at {start:#x} (line {other.loc.line})",
                    hint="use `code at … modified to …` for code that changes during the scenario",
                )
        placed[s.address] = (s, data)
    return placed


def check_executed_code(
    report: Reporter,
    statements: Sequence[ast.Statement],
    mode: CpuMode,
    placed: dict[int, tuple[ast.CodeSetting, bytes]],
) -> None:
    """`guest executes X` as the first step must name the instruction the set-up put at RIP.

    Only the first step: any step may move RIP (a retry leaves it, a skip or a re-injection advances it, by
    policy), so a later `guest executes` names an instruction at an address the checker cannot know. The
    instruction is compared with the bytes at RIP, wherever the `code at` that holds them starts, and only with
    as many bytes as it takes: what follows it (`bytes cc 90`) is other instructions.
    """
    steps = [s for s in statements if isinstance(s, ast.STEP_TYPES)]
    if not steps or not isinstance(steps[0], ast.ExecuteStep) or steps[0].instruction is None:
        return
    step = steps[0]
    assert step.instruction is not None
    rip = last_rip(statements)
    linear = rip if mode is CpuMode.LONG_64 else (last_cs_base(statements) + rip) & LINEAR_MASK_LEGACY
    holder = next(((start, s, d) for start, (s, d) in placed.items() if start <= linear < start + len(d)), None)
    if holder is None:
        return
    start, setting, data = holder
    executed = _size(step.instruction, linear, mode)
    at_rip = data[linear - start :]
    if executed is not None and at_rip[: len(executed)] != executed:
        quoted = render.code(setting.code) if start == linear else _bytes(at_rip)
        report.error(
            step.loc,
            f"guest executes {render.code(step.instruction)}, but the code at {linear:#x} is {quoted} "
            f"(line {setting.loc.line})",
            hint="name the instruction at RIP, or write `guest executes` alone",
        )


#: How many bytes at RIP a message quotes (the longest x86 instruction is 15 bytes).
QUOTED_BYTES = 15


def _bytes(data: bytes) -> str:
    shown = data[:QUOTED_BYTES].hex(" ")
    return f"bytes {shown}" + (" …" if len(data) > QUOTED_BYTES else "")


def check_invalid_in_64_bit(report: Reporter, statements: Sequence[ast.Statement]) -> None:
    for s in statements:
        code = s.code if isinstance(s, ast.CodeSetting | ast.CodeModifiedStep) else None
        if isinstance(code, ast.Instruction) and code.mnemonic.text in INVALID_IN_64_BIT:
            report.warn(code.mnemonic.loc, f"{code.mnemonic.text} is invalid in 64-bit mode: executing it raises #UD")
