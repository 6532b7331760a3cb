"""Instruction text → `ast.Instruction`: prefixes, mnemonic and operands out of the grammar's flat word groups.

The grammar reads an instruction as comma-separated groups of words, numbers and `[…]` memory references
(`es int3`, `jmp short 0x1012`, `bound eax, dword ptr [ebx]`), because which words are prefixes is vocabulary,
not grammar. This module knows the prefixes and the operand shapes; the assembler (`dsl.compiler.assemble`)
knows which mnemonics exist.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from dsl.errors import Loc
from dsl.syntax import ast
from dsl.syntax.tokens import Token

#: Legacy prefixes by name (APM vol. 3 §1.2), spelled as disassemblers print them.
LEGACY_PREFIXES: dict[str, int] = {
    "es": 0x26,
    "cs": 0x2E,
    "ss": 0x36,
    "ds": 0x3E,
    "fs": 0x64,
    "gs": 0x65,
    "data16": 0x66,
    "data32": 0x66,
    "addr16": 0x67,
    "addr32": 0x67,
    "lock": 0xF0,
    "repne": 0xF2,
    "repnz": 0xF2,
    "rep": 0xF3,
    "repe": 0xF3,
    "repz": 0xF3,
}

#: REX prefix (64-bit mode only): `rex` = 0x40, `rex.w` = 0x48, any combination of w/r/x/b after the dot.
REX_BASE = 0x40
REX_BITS = {"w": 0x8, "r": 0x4, "x": 0x2, "b": 0x1}
_REX = re.compile(r"rex(\.[wrxb]{1,4})?")

#: Words that qualify a branch target (`jmp short 0x1012`) or a memory operand's size (`dword ptr [ebx]`).
BRANCH_MODIFIERS = ("short", "near", "far")
MEMORY_SIZES = ("byte", "word", "dword", "qword", "fword", "tbyte")


def is_prefix(word: str) -> bool:
    """True for the prefix words an instruction may start with."""
    return word in LEGACY_PREFIXES or _REX.fullmatch(word) is not None


def prefix_byte(word: str) -> int:
    """The encoding of a prefix word (see `is_prefix`)."""
    if word in LEGACY_PREFIXES:
        return LEGACY_PREFIXES[word]
    suffix = word.partition(".")[2]
    return REX_BASE | sum(REX_BITS[bit] for bit in suffix)


class ShapeError(Exception):
    """A sentence the grammar accepted but whose parts do not fit together (e.g. an instruction's words)."""

    def __init__(self, loc: Loc, message: str, expected: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message
        self.expected = expected
        self.hint = hint


def split_instruction(groups: list[list[Any]], loc: Loc, token_loc: Callable[[Token], Loc]) -> ast.Instruction:
    """Build an instruction from the grammar's comma-separated groups (see the module docstring)."""
    first = list(groups[0])
    prefixes: list[ast.Name] = []
    while first and isinstance(first[0], Token) and is_prefix(str(first[0]).lower()) and len(first) > 1:
        token = first.pop(0)
        prefixes.append(ast.Name(str(token).lower(), loc=token_loc(token)))
    head = first.pop(0)
    if not isinstance(head, Token):
        raise ShapeError(loc, "an instruction must start with its mnemonic", "a mnemonic such as int3")
    mnemonic = ast.Name(str(head).lower(), loc=token_loc(head))
    operand_groups = ([first] if first else []) + [list(g) for g in groups[1:]]
    operands = tuple(_operand(group, loc, token_loc) for group in operand_groups)
    return ast.Instruction(tuple(prefixes), mnemonic, operands, loc=loc)


def _operand(atoms: list[Any], loc: Loc, token_loc: Callable[[Token], Loc]) -> ast.Operand:
    words = [str(a).lower() for a in atoms if isinstance(a, Token)]
    where = token_loc(atoms[0]) if isinstance(atoms[0], Token) else loc
    match atoms:
        case [register] if isinstance(register, Token):
            return ast.Register(str(register).lower(), loc=token_loc(register))
        case [int() as value]:
            return ast.Immediate(value, None, loc=where)
        case [modifier, int() as value] if isinstance(modifier, Token) and str(modifier).lower() in BRANCH_MODIFIERS:
            return ast.Immediate(value, str(modifier).lower(), loc=where)
        case [ast.Memory() as memory]:
            return memory
        case [*_, ast.Memory() as memory] if _is_size(words):
            return ast.Memory(words[0], memory.base, memory.index, memory.scale, memory.displacement, loc=where)
    text = " ".join(str(a) for a in atoms)
    raise ShapeError(
        where,
        f"'{text}' is not an operand",
        "a register (rcx), a number (0x80), `short 0x1012`, or a memory reference ([ebx], dword ptr [ebx])",
    )


def _is_size(words: list[str]) -> bool:
    return words in ([size] for size in MEMORY_SIZES) or words in ([size, "ptr"] for size in MEMORY_SIZES)


def build_memory(children: list[Any], loc: Loc) -> ast.Memory:
    """`[base + index*scale + displacement]` from the grammar's terms and signs."""
    base: str | None = None
    index: str | None = None
    scale = 1
    displacements: list[int] = []
    sign = 1
    for child in children:
        if isinstance(child, Token):  # MEMORY_SIGN
            sign = -1 if str(child) == "-" else 1
            continue
        register, value = child
        if register is None:
            displacements.append(_signed(value, sign))
        elif value != 1 or base is not None:
            if index is not None:
                raise ShapeError(loc, "a memory reference has at most a base and an index", "[base+index*scale+disp]")
            index, scale = register, value
        else:
            base = register
        sign = 1
    # One displacement keeps its spelling; several (`[ebx + 4 + 4]`) are summed into a plain int.
    displacement = displacements[0] if len(displacements) == 1 else sum(displacements)
    return ast.Memory(None, base, index, scale, displacement, loc=loc)


def _signed(value: int, sign: int) -> int:
    """`value` after a `+`/`-` sign, keeping its spelling (`- 0x8` is `-0x8`, `- -8` is `8`)."""
    if sign > 0:
        return value
    if not isinstance(value, ast.Number):
        return -value
    spelling = value.spelling[1:] if value.spelling.startswith("-") else "-" + value.spelling
    return ast.Number(-value, spelling)
