"""The on-disk cache of lowered files (issue 4, collection speed): read back only what would lower the same."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
from pathlib import Path

import pytest

import dsl
import dsl.compiler.lower as lowering
from dsl.runtime import disk_cache
from dsl.runtime.loader import clear_cache, load

FIXTURES = Path(__file__).parent / "fixtures"

WITH_INCLUDE = """\
include "common.svm"

scenario "INT3 delivered":
  source "EX-05"
  code at 0x1000: int3
  guest executes int3
  run
  expect delivered #BP with return rip=0x1001
"""
COMMON = "background:\n  policies {policy}\n  rip 0x1000\n"


def _unlowerable(text: str, file: str) -> None:
    raise AssertionError("lowered again although the cache holds this file")


@pytest.fixture(autouse=True)
def _fresh_process_cache() -> object:
    """Each test sees only the disk cache, as a new process (a pytest worker, the next run) does."""
    clear_cache()
    yield
    clear_cache()


def test_a_file_lowered_once_is_read_back_by_the_next_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = tmp_path / "cache"
    first = load(FIXTURES / "held.svm", disk=cache)
    assert first.lowered is not None
    assert list(cache.rglob("*.lowered"))
    clear_cache()
    monkeypatch.setattr(lowering, "lower_file", _unlowerable)
    again = load(FIXTURES / "held.svm", disk=cache)
    assert again.lowered == first.lowered
    assert again.lowered.warnings == first.lowered.warnings


def test_an_edited_included_file_is_lowered_again(tmp_path: Path) -> None:
    """The cache key is the including file's content; its includes are compared by digest on every read."""
    (tmp_path / "common.svm").write_text(COMMON.format(policy="kvm-6.0"))
    (tmp_path / "main.svm").write_text(WITH_INCLUDE)
    cache = tmp_path / "cache"
    before = load(tmp_path / "main.svm", disk=cache)
    assert before.lowered is not None
    assert before.lowered.includes == (str((tmp_path / "common.svm").resolve()),)
    clear_cache()
    (tmp_path / "common.svm").write_text(COMMON.format(policy="architectural"))
    after = load(tmp_path / "main.svm", disk=cache)
    assert after.lowered is not None
    assert [c.policy.value for c in after.lowered.cases] == ["architectural"]


def test_two_checkouts_of_a_project_do_not_read_each_others_entries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two clones (or git worktrees) share the user's cache, and each reports its files by the same relative path:
    the same file, byte for byte, lowers differently in each when what it includes differs."""
    cache = tmp_path / "cache"
    policies = {}
    for checkout, policy in (("a", "kvm-6.0"), ("b", "architectural")):
        (tmp_path / checkout).mkdir()
        (tmp_path / checkout / "common.svm").write_text(COMMON.format(policy=policy))
        (tmp_path / checkout / "main.svm").write_text(WITH_INCLUDE)
    for checkout in ("a", "b", "a"):
        monkeypatch.chdir(tmp_path / checkout)
        clear_cache()
        loaded = load("main.svm", disk=cache)
        assert loaded.display == "main.svm"
        assert loaded.lowered is not None
        policies[checkout] = [c.policy.value for c in loaded.lowered.cases]
    assert policies == {"a": ["kvm-6.0"], "b": ["architectural"]}


def test_a_damaged_entry_is_a_miss_not_an_error(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    load(FIXTURES / "held.svm", disk=cache)
    for entry in cache.rglob("*.lowered"):
        entry.write_bytes(b"not a pickle")
    clear_cache()
    loaded = load(FIXTURES / "held.svm", disk=cache)
    assert loaded.ok
    assert loaded.lowered is not None
    assert loaded.lowered.cases


def test_files_that_do_not_lower_are_not_cached(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert load(FIXTURES / "broken.svm", disk=cache).error is not None
    assert not list(cache.rglob("*.lowered"))


def test_the_folder_comes_from_svmdsl_cache_dir_and_an_empty_value_turns_it_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(disk_cache.CACHE_DIR_VARIABLE, str(tmp_path))
    assert disk_cache.default_folder() == tmp_path
    monkeypatch.setenv(disk_cache.CACHE_DIR_VARIABLE, "")
    assert disk_cache.default_folder() is None
    monkeypatch.delenv(disk_cache.CACHE_DIR_VARIABLE)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert disk_cache.default_folder() == tmp_path / "svmdsl" / "lowered"


def _build(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Act as another build of svmdsl (another source fingerprint), in a new process."""
    clear_cache()
    monkeypatch.setattr(disk_cache, "source_fingerprint", lambda: name * 64)
    disk_cache._used.cache_clear()


def test_entries_of_builds_not_used_lately_are_removed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every edit of svmdsl's sources starts a new generation; beyond the few used last, old ones only take space.
    A build that only reads its entries counts as used."""
    cache = tmp_path / "cache"
    (cache / "kernels").mkdir(parents=True)  # another tool's folder: left alone

    def kept() -> list[str]:
        return sorted(p.name[0] for p in cache.iterdir() if p.name != "kernels")

    for age, name in enumerate("12345"):
        _build(monkeypatch, name)
        load(FIXTURES / "held.svm", disk=cache)
        os.utime(cache / (name * 16), ns=(age * 10**9, age * 10**9))  # stored in this order, long ago
    assert kept() == ["2", "3", "4", "5"]
    assert (cache / "kernels").is_dir()
    _build(monkeypatch, "2")
    load(FIXTURES / "held.svm", disk=cache)  # read back: build 2 is now the one used last
    _build(monkeypatch, "6")
    load(FIXTURES / "held.svm", disk=cache)
    assert kept() == ["2", "4", "5", "6"]


def test_two_builds_used_in_turn_keep_each_others_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two installs of svmdsl (two virtual environments, two worktrees at different commits) share the user's
    cache: each keeps reading its own entries instead of removing the other's."""
    cache = tmp_path / "cache"
    for name in "ab":
        _build(monkeypatch, name)
        load(FIXTURES / "held.svm", disk=cache)
    _build(monkeypatch, "a")
    monkeypatch.setattr(lowering, "lower_file", _unlowerable)
    assert load(FIXTURES / "held.svm", disk=cache).ok


def test_every_runner_uses_the_folder_svmdsl_cache_dir_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`load` without `disk` (what `svmdsl run`, `check`, `gen`, `docs` and the generated modules call) reads and
    fills the user's cache; an empty `SVMDSL_CACHE_DIR` keeps it out of the way."""
    cache = tmp_path / "cache"
    monkeypatch.setenv(disk_cache.CACHE_DIR_VARIABLE, "")
    load(FIXTURES / "held.svm")
    assert not cache.exists()
    clear_cache()
    monkeypatch.setenv(disk_cache.CACHE_DIR_VARIABLE, str(cache))
    first = load(FIXTURES / "held.svm")
    assert list(cache.rglob("*.lowered"))
    clear_cache()
    monkeypatch.setattr(lowering, "lower_file", _unlowerable)
    assert load(FIXTURES / "held.svm").lowered == first.lowered


def test_a_process_whose_files_all_come_from_the_cache_never_loads_the_parser(tmp_path: Path) -> None:
    """The point of the cache is the parse it saves; importing the parser (Lark, the grammar) is part of it."""
    cache = tmp_path / "cache"
    load(FIXTURES / "held.svm", disk=cache)
    probe = (
        "import sys\n"
        "from dsl.runtime.loader import load\n"
        f"assert load({str(FIXTURES / 'held.svm')!r}).lowered is not None\n"
        "print(sorted(name for name in sys.modules if name.startswith(('lark', 'dsl.syntax', 'dsl.compiler.check'))))\n"
    )
    env = {**os.environ, disk_cache.CACHE_DIR_VARIABLE: str(cache)}
    completed = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "[]"


def test_a_user_without_a_home_folder_runs_without_a_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    def homeless() -> Path:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.delenv(disk_cache.CACHE_DIR_VARIABLE, raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setattr(Path, "home", homeless)
    assert disk_cache.default_folder() is None
    assert load(FIXTURES / "held.svm").ok


def test_reading_an_entry_back_leaves_the_cycle_collector_as_it_was(tmp_path: Path) -> None:
    """The collector is paused while an entry is unpickled (no cycles to find), then back on; off stays off."""
    cache = tmp_path / "cache"
    load(FIXTURES / "held.svm", disk=cache)
    for enabled in (True, False):
        clear_cache()
        (gc.enable if enabled else gc.disable)()
        try:
            assert load(FIXTURES / "held.svm", disk=cache).lowered is not None
            assert gc.isenabled() is enabled
        finally:
            gc.enable()


def test_the_fingerprint_covers_the_grammar_wherever_the_install_puts_it() -> None:
    """An editable install maps `dsl.grammar` from the repository's grammar/ folder, outside `dsl/`: an edit of the
    grammar must still start a new generation, or files would be read back as the old grammar parsed them."""
    from importlib import resources

    sources = dict(disk_cache.source_files())
    grammar = Path(str(resources.files(dsl.GRAMMAR_PACKAGE))) / "svm.lark"
    assert sources["grammar/svm.lark"].resolve() == grammar.resolve()
    assert sources["syntax/parse.py"].name == "parse.py"
    assert not [name for name in sources if "__pycache__" in name]


def test_the_fingerprint_covers_the_version_of_lark() -> None:
    """Lark parses every file: another release of it may parse one differently, so it starts a new generation."""
    import lark

    stated = dict(disk_cache.source_files())["lark/__init__.py"].read_text()
    assert "__version__" in stated
    assert f'"{lark.__version__}"' in stated


def test_the_fingerprint_follows_the_sources_content_not_their_modification_times(tmp_path: Path) -> None:
    """Every install writes svmdsl's files anew (pip does not keep a wheel's timestamps, a clone has checkout
    times), so a cache kept between CI runs is only worth keeping if the fingerprint ignores them."""
    sources = [(name, path) for name, path in disk_cache.source_files() if name.startswith("syntax/")]
    copies = []
    for name, path in sources:
        copy = tmp_path / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        copy.write_bytes(path.read_bytes())
        os.utime(copy, ns=(0, 0))
        copies.append((name, copy))
    assert disk_cache.fingerprint(copies) == disk_cache.fingerprint(sources)
    edited = copies[0][1]
    edited.write_bytes(edited.read_bytes() + b"\n")
    assert disk_cache.fingerprint(copies) != disk_cache.fingerprint(sources)
