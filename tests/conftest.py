"""Shared test configuration: Hypothesis profiles.

`ci` (chosen when the CI environment variable is set, as on the CI machine) is derandomized and keeps no example
database, so a run is reproducible and writes nothing into the clone; `dev` is Hypothesis' default.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,  # two shared cores: timing is not what these tests check
    suppress_health_check=(HealthCheck.too_slow,),
)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
