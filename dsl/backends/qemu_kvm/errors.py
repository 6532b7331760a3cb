"""The backend's one error: something the set-up or a boot needs is missing or broke. Always a sentence to show."""

from __future__ import annotations

import attrs


@attrs.frozen(auto_exc=True)
class BackendError(Exception):
    """A missing tool or package, a failed download or build, a boot that did not finish."""

    message: str

    def __str__(self) -> str:
        return self.message
