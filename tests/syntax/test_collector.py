"""`collector_paused`: the cycle collector is off inside the block, and as it was before afterwards."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from dsl.collector import collector_paused


@pytest.fixture
def collector_on() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.enable()
    yield
    if not was_enabled:
        gc.disable()


@pytest.mark.usefixtures("collector_on")
def test_the_collector_is_off_inside_and_on_again_after() -> None:
    with collector_paused():
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_the_collector_is_on_again_after_an_error() -> None:
    with pytest.raises(ValueError, match="mid-parse"), collector_paused():
        raise ValueError("mid-parse")
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_a_nested_pause_does_not_turn_the_collector_back_on() -> None:
    with collector_paused():
        with collector_paused():
            pass
        assert not gc.isenabled()
    assert gc.isenabled()


@pytest.mark.usefixtures("collector_on")
def test_a_collector_the_program_turned_off_stays_off() -> None:
    gc.disable()
    with collector_paused():
        pass
    assert not gc.isenabled()
