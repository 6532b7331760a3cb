"""The executable model of SVM soft-event injection: `run(Program) -> Result`. Knows nothing about the syntax.

The catalog functions are exported as `policy_catalog` / `profile_catalog`: the name `policies` belongs to the
`dsl.engine.policies` sub-package (the policy registry).
"""

from dsl.engine.catalog import Described
from dsl.engine.catalog import policies as policy_catalog
from dsl.engine.catalog import profiles as profile_catalog
from dsl.engine.errors import EngineError
from dsl.engine.program import (
    STEP_TYPES,
    CancelEntry,
    CodeBreakpoint,
    CodeBytes,
    Event,
    Execute,
    ExitFor,
    IdtGate,
    Inject,
    L1Vmrun,
    ModifyCode,
    Nesting,
    PagePresence,
    PolicyOptions,
    Program,
    Reenter,
    Run,
    SaveRestore,
    SetPage,
    Setup,
    Step,
    VectoringFault,
)
from dsl.engine.result import (
    Action,
    Change,
    Delivery,
    ExitRecord,
    Result,
    SoftIntRecord,
    TraceEntry,
    Vmcb12Exit,
    VmrunRecord,
)
from dsl.engine.runner import run
from dsl.engine.vocab import Actor, Observable, Outcome, Pick

__all__ = [
    "STEP_TYPES",
    "Action",
    "Actor",
    "CancelEntry",
    "Change",
    "CodeBreakpoint",
    "CodeBytes",
    "Delivery",
    "Described",
    "EngineError",
    "Event",
    "Execute",
    "ExitFor",
    "ExitRecord",
    "IdtGate",
    "Inject",
    "L1Vmrun",
    "ModifyCode",
    "Nesting",
    "Observable",
    "Outcome",
    "PagePresence",
    "Pick",
    "PolicyOptions",
    "Program",
    "Reenter",
    "Result",
    "Run",
    "SaveRestore",
    "SetPage",
    "Setup",
    "SoftIntRecord",
    "Step",
    "TraceEntry",
    "VectoringFault",
    "Vmcb12Exit",
    "VmrunRecord",
    "policy_catalog",
    "profile_catalog",
    "run",
]
