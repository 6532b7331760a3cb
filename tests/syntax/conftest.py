"""Hypothesis settings for the language's property tests: derandomized, no example database, no deadline.

Registered as the `syntax` profile and applied per test with `@settings(SYNTAX)` (see syntax_strategies.py), so
these tests are reproducible whatever profile the session loads.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings

settings.register_profile(
    "syntax",
    derandomize=True,
    database=None,
    deadline=None,  # two shared cores: timing is not what these tests check
    max_examples=150,
    suppress_health_check=(HealthCheck.too_slow,),
)
