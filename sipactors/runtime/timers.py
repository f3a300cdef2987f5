"""Machine timers on the scheduler's clock, for every actor driven by a table (transactions, bindings).

A machine says ``StartTimer(name, delay)`` and ``CancelTimer(name)``; ``TimedActor`` keeps one
``TimerHandle`` per running timer, and when one fires the scheduler tells the actor ``TimerFired(name)``
(if it still lives), which the actor turns into its table's ``timer_<name>`` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sipactors.fsm import CancelTimer, StartTimer
from sipactors.runtime.actor import ScheduledActor
from sipactors.runtime.scheduler import TimerHandle

__all__ = ["TimedActor", "TimerFired"]


@dataclass(frozen=True, slots=True)
class TimerFired:
    timer: str


class TimedActor(ScheduledActor):
    """A scheduled actor that carries out its machine's timer effects."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()
        self.timers: dict[str, TimerHandle] = {}

    def _start_timer(self, effect: StartTimer) -> None:
        running = self.timers.pop(effect.timer, None)
        if running is not None:
            running.cancel()
        self.timers[effect.timer] = self._scheduler.call_later(effect.delay, _Expiry(self.actor_ref, effect.timer))

    def _cancel_timer(self, effect: CancelTimer) -> None:
        running = self.timers.pop(effect.timer, None)
        if running is not None:
            running.cancel()

    def _cancel_timers(self) -> None:
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()


class _Expiry:
    """A running timer's callback: tell the actor, if it still lives, that the timer fired. A slotted
    object (48 octets) rather than a closure (a function, its cells and their tuple: about 300), as
    every live transaction holds one; the ``TimerFired`` messages are shared, one per timer."""

    __slots__ = ("ref", "fired")

    def __init__(self, ref: Any, timer: str) -> None:
        self.ref = ref
        self.fired = _FIRED.get(timer) or _FIRED.setdefault(timer, TimerFired(timer))

    def __call__(self) -> None:
        if self.ref.is_alive():
            self.ref.tell(self.fired)


_FIRED: dict[str, TimerFired] = {}
