"""The assembler: every mnemonic of the vocabulary encodes, and iced-x86 decodes it back to the same instruction."""

from __future__ import annotations

import pytest
from iced_x86 import Decoder, Formatter, FormatterSyntax

from dsl.compiler.assemble import AssembleError, assemble
from dsl.engine.vocab import CpuMode
from dsl.syntax import ast, parse_text, vocabulary

#: (instruction as written, mode, bytes: from the examples where they give them, else from the APM).
FORMS = [
    ("int3", CpuMode.LONG_64, "cc"),  # EX-01
    ("into", CpuMode.PROTECTED_32, "ce"),  # EX-03
    ("int 0x80", CpuMode.PROTECTED_32, "cd 80"),  # EX-04
    ("cs int 0x80", CpuMode.PROTECTED_32, "2e cd 80"),  # EX-08
    ("int 3", CpuMode.LONG_64, "cd 03"),  # EX-09
    ("es int3", CpuMode.LONG_64, "26 cc"),  # EX-10
    ("data16 int 0x80", CpuMode.PROTECTED_32, "66 cd 80"),
    ("mov rax, rcx", CpuMode.LONG_64, "48 89 c8"),  # EX-12, EX-23
    ("out 0x80, al", CpuMode.LONG_64, "e6 80"),  # EX-22
    ("call 0x2000", CpuMode.LONG_64, "e8 fb 0f 00 00"),  # EX-27: E8 rel32 from 0x1000
    ("nop", CpuMode.LONG_64, "90"),  # EX-28
    ("jmp short 0x1012", CpuMode.LONG_64, "eb 10"),  # EX-29
    ("icebp", CpuMode.LONG_64, "f1"),  # EX-32
    ("bswap esp", CpuMode.LONG_64, "0f cc"),  # EX-33
    ("vmmcall", CpuMode.LONG_64, "0f 01 d9"),  # S-12
    ("ud2", CpuMode.LONG_64, "0f 0b"),  # S-13
    ("hlt", CpuMode.LONG_64, "f4"),  # S-15
    ("sti", CpuMode.LONG_64, "fb"),  # EX-17
    ("mov ss, ax", CpuMode.PROTECTED_32, "8e d0"),  # H-35: MOV SS shadow
    ("bound eax, [ebx]", CpuMode.PROTECTED_32, "62 03"),
    ("bound eax, dword ptr [ebx + esi*4 + 0x10]", CpuMode.PROTECTED_32, "62 44 b3 10"),
    ("bound ax, [ebx]", CpuMode.PROTECTED_16, "67 62 03"),
    ("cpuid", CpuMode.LONG_64, "0f a2"),
    ("in al, dx", CpuMode.PROTECTED_32, "ec"),
    ("out dx, eax", CpuMode.PROTECTED_32, "ef"),
    ("mov eax, 0x7000", CpuMode.PROTECTED_32, "b8 00 70 00 00"),
    ("push rbp", CpuMode.LONG_64, "55"),
    ("pop ss", CpuMode.PROTECTED_32, "17"),
    ("mov r8, rcx", CpuMode.LONG_64, "49 89 c8"),
    ("jmp 0x1000", CpuMode.REAL, "e9 fd ff"),
]


def instruction(text: str) -> ast.Code:
    scenario = parse_text(f'scenario "t":\n  code at 0x1000: {text}\n').items[0]
    assert isinstance(scenario, ast.Scenario)
    setting = scenario.statements[0]
    assert isinstance(setting, ast.CodeSetting)
    return setting.code


@pytest.mark.parametrize(("text", "mode", "encoded"), FORMS, ids=[f[0] for f in FORMS])
def test_encoding_matches_and_decodes_back(text: str, mode: CpuMode, encoded: str) -> None:
    data = assemble(instruction(text), 0x1000, mode)
    assert data.hex(" ") == encoded
    decoded = Decoder(mode.bitness, data, ip=0x1000).decode()
    assert decoded.len == len(data)
    mnemonic = Formatter(FormatterSyntax.INTEL).format(decoded).split()[0]
    written = next(w for w in text.replace(",", " ").split() if w not in ("cs", "es", "data16"))
    assert mnemonic == {"icebp": "int1"}.get(written, written)


def test_every_mnemonic_of_the_vocabulary_has_an_encoding() -> None:
    """The language's list (used for "did you mean") and the assembler's table agree."""
    written = {f[0].split()[0] for f in FORMS} | {f[0].split()[1] for f in FORMS if " " in f[0]}
    operand_free = [m for m in vocabulary.MNEMONICS if m not in written]
    for mnemonic in operand_free:
        assert assemble(instruction(mnemonic), 0x1000, CpuMode.LONG_64)


def test_raw_bytes_are_kept_verbatim() -> None:
    assert assemble(instruction("bytes 66 cd 80"), 0x1000, CpuMode.REAL) == bytes.fromhex("66cd80")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("int 0x100", "'int' needs an 8-bit immediate (0-0xff)"),
        ("int3 0x3", "'int3' takes no operands"),
        ("mov rax, ecx", "'mov' needs two registers of the same size"),
        ("jmp short 0x2000", "'jmp' short target 0x2000 is out of reach of 0x1000 (±128 bytes)"),
        ("frobnicate", "unknown mnemonic 'frobnicate'"),
    ],
)
def test_what_cannot_be_encoded_is_said_plainly(text: str, message: str) -> None:
    with pytest.raises(AssembleError) as caught:
        assemble(instruction(text), 0x1000, CpuMode.LONG_64)
    assert caught.value.message == message
