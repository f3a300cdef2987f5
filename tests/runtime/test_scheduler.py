"""The scheduler's timer heap: cancelled timers let go of what they hold at once, and the heap is swept so
that a long run of refreshes (each cancelling a binding's hour-long expiry) does not grow it without end."""

from __future__ import annotations

import gc
import weakref

from sipactors.runtime.scheduler import _COMPACT_MIN, ManualScheduler


class _Held:
    pass


def test_a_cancelled_timer_frees_what_its_callback_holds_before_it_is_due() -> None:
    scheduler = ManualScheduler()
    held = _Held()
    ref = weakref.ref(held)
    handle = scheduler.call_later(3_600_000, lambda held=held: None)
    del held
    handle.cancel()
    gc.collect()
    assert ref() is None


def test_the_heap_stays_in_proportion_to_the_live_timers_and_they_still_fire_in_order() -> None:
    scheduler = ManualScheduler()
    fired: list[int] = []
    for refresh in range(20 * _COMPACT_MIN):  # an expiry per refresh, each cancelled by the next
        handle = scheduler.call_later(3_600_000 + refresh, lambda: fired.append(-1))
        handle.cancel()
        assert len(scheduler._timers) <= 2 * _COMPACT_MIN + 1
    for n in (3, 1, 2):
        scheduler.call_later(1000 * n, lambda n=n: fired.append(n))
    scheduler.advance(4_000_000)
    assert fired == [1, 2, 3]
