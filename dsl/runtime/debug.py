"""`SVMDSL_DEBUG`: let internal errors (bugs in svmdsl, never bad input) show their traceback.

A module of its own so that the command line can read it without importing the compiler.
"""

from __future__ import annotations

import os

DEBUG_VARIABLE = "SVMDSL_DEBUG"
#: The line that follows every internal-error message.
BUG_HINT = f"this is a bug in svmdsl; set {DEBUG_VARIABLE}=1 to see the traceback"


def debugging() -> bool:
    """True when `SVMDSL_DEBUG` is set to anything non-empty."""
    return bool(os.environ.get(DEBUG_VARIABLE))
