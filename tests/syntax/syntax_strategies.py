"""Hypothesis strategies that build AST statements of every kind, and the language's test settings."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st

from dsl.engine.vocab import InjectionSource, Level, Outcome, PageTable
from dsl.syntax import ast, parse_text, vocabulary

SYNTAX = settings.get_profile("syntax")

NOWHERE = ast.Loc("<generated>", 0, 0)

INSTRUCTION_TEXTS = (
    "int3",
    "into",
    "int 0x80",
    "es int3",
    "cs int 0x80",
    "data16 int 0x80",
    "icebp",
    "nop",
    "ud2",
    "sti",
    "hlt",
    "out 0x80, al",
    "cpuid",
    "vmmcall",
    "mov rax, rcx",
    "jmp short 0x1012",
    "call 0x2000",
    "bswap esp",
    "bound eax, [ebx]",
    "bound eax, dword ptr [ebx + esi*4 + 0x10]",
    "rex.w mov rax, rcx",
    "lock nop",
    "bytes 66 cd 80",
    "bytes cc",
    "mov ss, ax",
    "bound eax, [ebp - 0x8]",
)


def _code_of(text: str) -> ast.Code:
    scenario = parse_text(f'scenario "s":\n  code at 0x1000: {text}\n').items[0]
    assert isinstance(scenario, ast.Scenario)
    statement = scenario.statements[0]
    assert isinstance(statement, ast.CodeSetting)
    return statement.code


CODES = tuple(_code_of(text) for text in INSTRUCTION_TEXTS)


def name(options: tuple[str, ...] | list[str]) -> st.SearchStrategy[ast.Name]:
    return st.sampled_from(tuple(options)).map(lambda text: ast.Name(text, loc=NOWHERE))


numbers = st.integers(min_value=0, max_value=2**32 - 1)
small = st.integers(min_value=0, max_value=3)
codes = st.sampled_from(CODES)
vectors = st.one_of(name(tuple(vocabulary.VECTORS)), st.integers(0, 255))
tables = st.sampled_from(tuple(PageTable))
levels = st.sampled_from(tuple(Level))


def field_values(allowed: tuple[str, ...]) -> st.SearchStrategy[tuple[ast.FieldValue, ...]]:
    one = st.builds(lambda f, v: ast.FieldValue(f, v, loc=NOWHERE), name(allowed), numbers)
    return st.lists(one, max_size=2).map(tuple)


EXCEPTION_NAMES = tuple(v for v in vocabulary.VECTORS if v.startswith("#"))
events = st.one_of(
    st.builds(lambda v: ast.EventSpec(ast.EventKind.EXCEPTION, v, None, loc=NOWHERE), name(EXCEPTION_NAMES)),
    st.builds(lambda v: ast.EventSpec(ast.EventKind.SOFT_INTERRUPT, v, None, loc=NOWHERE), st.integers(0, 255)),
    st.builds(lambda v: ast.EventSpec(ast.EventKind.INTERRUPT, v, None, loc=NOWHERE), st.integers(0, 255)),
    st.just(ast.EventSpec(ast.EventKind.NMI, None, None, loc=NOWHERE)),
    st.builds(lambda v: ast.EventSpec(ast.EventKind.RAW, None, v, loc=NOWHERE), numbers),
)


def _loc(cls: type, *args: object) -> object:
    return cls(*args, loc=NOWHERE)


settings_ = st.one_of(
    st.builds(lambda n: _loc(ast.ProfileSetting, n), name(vocabulary.PROFILES)),
    st.builds(
        lambda ns: _loc(ast.PoliciesSetting, tuple(ns)), st.lists(name(vocabulary.POLICIES), min_size=1, max_size=4)
    ),
    st.builds(lambda b: _loc(ast.NripsSetting, b), st.booleans()),
    st.builds(lambda n: _loc(ast.PagingSetting, n), name(vocabulary.PAGING)),
    st.builds(lambda n: _loc(ast.ProtectionSetting, n), name(vocabulary.PROTECTIONS)),
    st.builds(lambda n: _loc(ast.VariantSetting, n), name(vocabulary.VARIANTS)),
    st.builds(lambda n: _loc(ast.ReadingSetting, n), name(vocabulary.READINGS)),
    st.builds(lambda n: _loc(ast.GuestDebugSetting, n), name(vocabulary.GUEST_DEBUG_MODES)),
    st.builds(lambda n: _loc(ast.ModeSetting, n), name(vocabulary.MODES)),
    st.builds(lambda v: _loc(ast.CsBaseSetting, v), numbers),
    st.builds(lambda v: _loc(ast.RipSetting, v), numbers),
    st.builds(lambda v: _loc(ast.RflagsSetting, v, ()), numbers),
    st.builds(
        lambda fs: _loc(ast.RflagsSetting, None, tuple(fs)),
        st.lists(name(tuple(vocabulary.RFLAGS_BITS)), min_size=1, max_size=3),
    ),
    st.builds(lambda n: _loc(ast.InterruptShadowSetting, n), name(vocabulary.INTERRUPT_SHADOWS)),
    st.builds(lambda v: _loc(ast.CplSetting, v), small),
    st.builds(lambda v: _loc(ast.GifSetting, v), st.integers(0, 1)),
    st.builds(lambda r, a: _loc(ast.BreakpointSetting, r, a), name(vocabulary.BREAKPOINT_REGISTERS), numbers),
    st.builds(lambda a, p, t: _loc(ast.PageSetting, a, p, t), numbers, st.booleans(), tables),
    st.builds(
        lambda v, p, d, t: _loc(ast.IdtGateSetting, v, p, d, t),
        vectors,
        st.booleans(),
        st.none() | small,
        st.none() | name(vocabulary.GATE_TYPES),
    ),
    st.builds(
        lambda f, v: _loc(ast.VmcbFieldSetting, ast.Vmcb.VMCB12, f, v),
        name(tuple(vocabulary.VMCB_FIELDS["vmcb12"])),
        numbers,
    ),
    st.builds(lambda f, v: _loc(ast.VmcbFieldSetting, ast.Vmcb.VMCB, f, v), name(("next_rip",)), numbers),
    st.builds(lambda f, p: _loc(ast.L1FeatureSetting, f, p), name(vocabulary.L1_FEATURES), st.booleans()),
    st.builds(
        lambda ns: _loc(ast.L1InterceptSetting, tuple(ns)),
        st.lists(name(tuple(vocabulary.EXIT_REASONS)), min_size=1, max_size=3),
    ),
    st.builds(lambda a, c: _loc(ast.CodeSetting, a, c), numbers, codes),
)

steps = st.one_of(
    st.builds(lambda c: _loc(ast.ExecuteStep, c), st.none() | codes),
    st.builds(
        lambda e, s, fs: _loc(ast.InjectStep, e, s, fs),
        events,
        st.sampled_from(tuple(InjectionSource)),
        field_values(("rip", "next_rip", "error_code")),
    ),
    st.builds(
        lambda f, d, fs, h: _loc(ast.VectoringStep, f, d, fs, h),
        name(vocabulary.FAULTS),
        st.none() | vectors,
        field_values(("error_code", "cr2")),
        levels,
    ),
    st.builds(lambda r, h: _loc(ast.ExitStep, r, h), name(tuple(vocabulary.EXIT_REASONS)), levels),
    st.builds(lambda a, c: _loc(ast.CodeModifiedStep, a, c), numbers, codes),
    st.builds(lambda a, m, t: _loc(ast.PageStep, a, m, t), numbers, st.booleans(), tables),
    st.just(ast.CancelEntryStep(loc=NOWHERE)),
    st.builds(lambda p, r: _loc(ast.SaveRestoreStep, p, r), st.booleans(), st.booleans()),
    st.just(ast.ReenterStep(loc=NOWHERE)),
    st.just(ast.RunStep(loc=NOWHERE)),
)

expected_values = st.one_of(numbers, st.booleans(), name(vocabulary.OUTCOMES), st.text("abc #[]:", max_size=8))

outcome_checks = st.lists(
    st.builds(lambda f, v: ast.FieldCheck(f, v, loc=NOWHERE), name(("next_rip", "spurious_db")), expected_values),
    max_size=2,
).map(tuple)

expectations = st.one_of(
    st.builds(lambda o, cs: _loc(ast.OutcomeExpectation, o, cs), st.sampled_from(tuple(Outcome)), outcome_checks),
    st.builds(
        lambda e, r, c: _loc(ast.DeliveredExpectation, e, r, c, False), events, st.none() | numbers, st.none() | numbers
    ),
    st.builds(lambda e: _loc(ast.DeliveredExpectation, e, None, None, True), events),
    st.builds(lambda p: _loc(ast.SpuriousDbExpectation, p), st.booleans()),
    st.builds(
        lambda o, p, c, v: _loc(ast.FieldExpectation, o, p, c, v),
        name(vocabulary.OBSERVABLES),
        st.none() | name(vocabulary.PICKS) | st.integers(0, 3),
        st.sampled_from(tuple(ast.Comparison)),
        expected_values,
    ),
)

unders = st.builds(
    lambda ps, es: _loc(ast.Under, tuple(ps), tuple(es)),
    st.lists(name(vocabulary.POLICIES), min_size=1, max_size=3),
    st.lists(expectations, min_size=1, max_size=3),
)

statements = st.one_of(settings_, steps, expectations, unders)

#: The statements of one source line: `under …:` takes the rest of its line, so it can only come last.
lines = st.builds(
    lambda head, tail: tuple(head) + tuple(tail),
    st.lists(st.one_of(settings_, steps, expectations), max_size=3),
    st.lists(unders, max_size=1),
).filter(bool)
