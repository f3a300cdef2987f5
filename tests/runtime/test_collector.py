"""``pace_collector``: what survived is frozen out of the collector's generations every second, so a young
collection sees at most a second's objects; every ``full_every_ms`` everything is given back and collected,
so a reference cycle made meanwhile is freed then. On the virtual clock."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator

import pytest

from sipactors.runtime.collector import pace_collector
from sipactors.runtime.scheduler import ManualScheduler


class _Node:
    def __init__(self) -> None:
        self.other: _Node | None = None


def _cycle() -> weakref.ref[_Node]:
    a, b = _Node(), _Node()
    a.other, b.other = b, a
    return weakref.ref(a)


@pytest.fixture
def scheduler() -> Iterator[ManualScheduler]:
    gc.collect()
    yield ManualScheduler()
    gc.unfreeze()  # the process's collector as it was: nothing frozen by this test stays so
    gc.collect()


def test_each_tick_freezes_what_survived_and_a_young_collection_no_longer_sees_it(scheduler: ManualScheduler) -> None:
    pace_collector(scheduler, freeze_every_ms=1000, full_every_ms=60_000)
    kept = _Node()
    assert any(o is kept for o in gc.get_objects())
    scheduler.advance(1000)
    assert gc.get_freeze_count() > 0
    assert not any(o is kept for o in gc.get_objects())  # out of every generation: no collection traverses it
    assert gc.get_count()[0] < 100  # (a new count: the young generation starts empty)


def test_a_cycle_frozen_by_a_tick_is_freed_by_the_next_full_collection_and_not_before(scheduler: ManualScheduler) -> None:
    pace_collector(scheduler, freeze_every_ms=1000, full_every_ms=5000)
    cycle = _cycle()
    scheduler.advance(1000)
    gc.collect()
    assert cycle() is not None  # frozen: not even a full collection looks at it
    scheduler.advance(3000)
    assert cycle() is not None
    scheduler.advance(1000)  # the fifth tick: unfreeze and collect everything
    assert cycle() is None


def test_the_ticks_go_on_for_as_long_as_the_scheduler_runs(scheduler: ManualScheduler) -> None:
    pace_collector(scheduler, freeze_every_ms=1000, full_every_ms=3000)
    for _ in range(3):
        cycle = _cycle()
        scheduler.advance(1000)
        assert cycle() is not None
        scheduler.advance(2000)
        assert cycle() is None
