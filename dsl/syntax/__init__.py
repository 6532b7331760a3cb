"""Parse `.svm` text into the immutable AST (`dsl.syntax.ast`); diagnostics, formatter, highlighter."""

from dsl.syntax.parse import parse_file, parse_text

__all__ = ["parse_file", "parse_text"]
