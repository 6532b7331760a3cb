"""Spec-by-example documentation: a static site (HTML and Markdown) of the scenarios and this run's verdicts.

`build_site(paths, out_dir, check=False) -> BuildResult` is the public entry point; `dsl.docs.command` wires it
into `svmdsl docs`.
"""

from dsl.docs.build import BuildResult, build_site

__all__ = ["BuildResult", "build_site"]
