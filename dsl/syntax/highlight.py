"""Pygments lexer for `.svm` files, registered as the `svm` lexer through the `pygments.lexers` entry point."""

from __future__ import annotations

from typing import ClassVar

from pygments.lexer import RegexLexer, words  # type: ignore[import-untyped]
from pygments.token import (  # type: ignore[import-untyped]
    Comment,
    Keyword,
    Name,
    Number,
    Operator,
    Punctuation,
    String,
    Text,
    Whitespace,
)

from dsl import SCENARIO_SUFFIX
from dsl.engine.vocab import Outcome
from dsl.syntax import vocabulary

#: Words that start or structure a block.
BLOCK_KEYWORDS = ("scenario outline", "scenario", "background", "include", "examples", "under", "source")
#: Words of the sentences (set-up, steps, expectations).
SENTENCE_KEYWORDS = (
    "profile", "policies", "policy", "nrips", "paging", "protection", "variant", "int-n", "reading", "guest",
    "debug", "mode", "cs", "base", "rip", "rflags", "interrupt", "shadow", "cpl", "gif", "breakpoint", "page",
    "present", "not", "in", "idt", "gate", "dpl", "type", "vmcb12", "vmcb02", "vmcb", "l1", "L1", "L0", "with",
    "without", "intercepts", "code", "at", "executes", "inject", "from", "userspace", "vectoring", "of", "hits",
    "intercepted", "handled", "by", "exit", "for", "modified", "to", "mapped", "unmapped", "entry", "cancelled",
    "save", "and", "restore", "nested", "run", "pending", "regs", "first", "host", "re-enters", "expect",
    "delivered", "no", "spurious", "return", "contains", "bytes", "int", "irq", "nmi", "event", "true", "false",
)  # fmt: skip
OUTCOME_WORDS = tuple(vocabulary.outcome_spelling(o) for o in Outcome)
_WORD_END = r"(?![\w.\-])"


class SvmLexer(RegexLexer):  # type: ignore[misc]
    """Highlights scenarios: keywords, vectors (#PF), policies, mnemonics, numbers, tags, strings, comments."""

    name = "SVM scenario"
    aliases: ClassVar[list[str]] = ["svm", "svm-dsl"]
    filenames: ClassVar[list[str]] = [f"*{SCENARIO_SUFFIX}"]
    mimetypes: ClassVar[list[str]] = ["text/x-svm"]

    tokens: ClassVar[dict[str, list[tuple[object, object]]]] = {
        "root": [
            (r"\s+", Whitespace),
            (r"//.*?$", Comment.Single),
            (r'"""[\s\S]*?"""', String.Doc),
            (r'"(?:[^"\\\n]|\\.)*"', String),
            (r"@[A-Za-z0-9_.\-]+", Name.Decorator),
            (r"<[A-Za-z_][A-Za-z0-9_\-]*>", Name.Variable),
            (r"#[A-Za-z]+", Name.Exception),
            (words(BLOCK_KEYWORDS, suffix=_WORD_END), Keyword.Declaration),
            (words(OUTCOME_WORDS, suffix=_WORD_END), Keyword.Constant),
            (words(vocabulary.POLICIES, suffix=_WORD_END), Name.Constant),
            (words(vocabulary.PROFILES, suffix=_WORD_END), Name.Constant),
            (words(vocabulary.OBSERVABLES, suffix=_WORD_END), Name.Attribute),
            (words(SENTENCE_KEYWORDS, suffix=_WORD_END), Keyword),
            (words(vocabulary.MNEMONICS, suffix=_WORD_END), Name.Builtin),
            (r"-?0[xX][0-9a-fA-F_]+", Number.Hex),
            (r"-?[0-9][0-9_]*", Number.Integer),
            (r"==|!=|=", Operator),
            (r"[;:,|\[\]*+\-]", Punctuation),
            (r"[A-Za-z_][A-Za-z0-9_.\-]*", Name),
            (r".", Text),
        ],
    }
