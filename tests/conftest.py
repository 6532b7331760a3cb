"""Shared test configuration: Hypothesis profiles, and no lowered-file cache.

`ci` (chosen when the CI environment variable is set, as on the CI machine) is derandomized and keeps no example
database, so a run is reproducible and writes nothing into the clone; `dev` is Hypothesis' default.

svmdsl keeps lowered files in the user's cache folder (`dsl.runtime.disk_cache`); the tests turn that off for
themselves and every command they start, so that no test reads what another test (or an earlier build) left
there. The tests of the cache itself point `SVMDSL_CACHE_DIR` at a temporary folder.

The parser module is imported here, once for the whole session: pytester's in-process runs drop the modules first
imported inside them, and lark-cython (an extension module, which Python does not import twice) would then meet a
second copy of Lark's classes in the next run ("Using an undefined rule: NonTerminal('start')").
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

import dsl.syntax.embedded  # noqa: F401  (see the module docstring)
from dsl.runtime.disk_cache import CACHE_DIR_VARIABLE

os.environ[CACHE_DIR_VARIABLE] = ""

settings.register_profile(
    "ci",
    derandomize=True,
    database=None,
    deadline=None,  # two shared cores: timing is not what these tests check
    suppress_health_check=(HealthCheck.too_slow,),
)
settings.register_profile("dev", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))
