"""svm-dsl: scenarios of soft-event injection on AMD SVM, a reference engine, and test runners.

The public surface is small and loaded lazily, so that importing the engine alone does not pull in the parser,
Jinja2 or the runtime:

- `run_case(file, scenario, policy, row=None) -> CaseResult`: run one case (what the CLI and pytest call);
- `run_paths(paths, ...) -> RunReport`: every case under files or folders;
- `CaseResult`, `Verdict`: the verdict of a case, with mismatches and trace.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"
#: The suffix of scenario files. Defined here, with nothing imported, for the pytest plugin's entry point, which
#: every pytest session in an environment with svmdsl loads.
SCENARIO_SUFFIX = ".svm"
#: The package the grammar ships in (an editable install maps it from the repository's grammar/ folder).
GRAMMAR_PACKAGE = "dsl.grammar"

_EXPORTS: dict[str, str] = {
    "run_case": "dsl.runtime.runner",
    "run_paths": "dsl.runtime.session",
    "CaseResult": "dsl.runtime.verdict",
    "Verdict": "dsl.runtime.verdict",
}

__all__ = ["SCENARIO_SUFFIX", "CaseResult", "Verdict", "__version__", "run_case", "run_paths"]

if TYPE_CHECKING:
    from dsl.runtime.runner import run_case
    from dsl.runtime.session import run_paths
    from dsl.runtime.verdict import CaseResult, Verdict


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'dsl' has no attribute {name!r}")
