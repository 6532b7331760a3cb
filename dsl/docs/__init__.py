"""Spec-by-example documentation: a static site (HTML and Markdown) of the scenarios and this run's verdicts.

`dsl.docs.build.build_site(paths, out_dir, check=False) -> BuildResult` is the entry point; `dsl.docs.command`
wires it into `svmdsl docs`. Nothing is imported here: every `svmdsl` command loads this package for its
sub-command's options, and only `svmdsl docs` needs the site builder.
"""
