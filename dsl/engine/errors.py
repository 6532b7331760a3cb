"""The engine's error for impossible configurations: names the field, the value and what was expected.

Where the hardware itself would fail (an invalid EVENTINJ on VMRUN), the engine does not raise: it models
VMEXIT_INVALID (H-8). This error is for programs the model cannot run at all.
"""

from __future__ import annotations

import attrs


@attrs.frozen(auto_exc=True)
class EngineError(Exception):
    """A Program the engine cannot run: `field` holds `value`, but `expected` says what it must be.

    An attrs class, so it pickles (pytest-xdist) and compares by value. The compiler maps `field` back to the
    scenario line that set it.
    """

    field: str
    value: object
    expected: str

    def __str__(self) -> str:
        shown = hex(self.value) if isinstance(self.value, int) and not isinstance(self.value, bool) else self.value
        return f"{self.field} = {shown!s}: expected {self.expected}"
