"""The front door (issue 4, item 7): a non-editable install (`pip install .`) ships every module and data file.

Packages are listed by hand in pyproject.toml (automatic discovery cannot see `dsl.grammar`, mapped from
`grammar/`), so a new package or template folder must be added there; these tests say so when it is not.
"""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SETUPTOOLS = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def _package_dir(package: str) -> Path:
    mapped = SETUPTOOLS.get("package-dir", {})
    if package in mapped:
        return ROOT / mapped[package]
    return ROOT.joinpath(*package.split("."))


def test_every_package_under_dsl_is_listed() -> None:
    found = {".".join(init.parent.relative_to(ROOT).parts) for init in (ROOT / "dsl").rglob("__init__.py")}
    found.add("dsl.grammar")
    assert found == set(SETUPTOOLS["packages"])


def test_every_data_file_is_covered_by_package_data() -> None:
    """Templates, static assets and the grammar: every non-Python file of a package is matched by a pattern."""
    patterns = SETUPTOOLS["package-data"]["*"]
    missing = []
    for package in SETUPTOOLS["packages"]:
        folder = _package_dir(package)
        for path in folder.rglob("*"):
            if not path.is_file() or path.suffix in (".py", ".pyc") or "__pycache__" in path.parts:
                continue
            relative = path.relative_to(folder)
            if (folder / relative.parts[0] / "__init__.py").exists():
                continue  # belongs to a sub-package, checked there
            if not any(fnmatch.fnmatch(relative.as_posix(), pattern) for pattern in patterns):
                missing.append(f"{package}: {relative.as_posix()}")
    assert not missing
