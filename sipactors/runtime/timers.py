"""Machine timers on the scheduler's clock, for every actor driven by a table (transactions, bindings).

A machine says ``StartTimer(name, delay)`` and ``CancelTimer(name)``; ``TimedActor`` keeps one
``TimerHandle`` per running timer, and when one fires the scheduler tells the actor ``TimerFired(name)``
(if it still lives), which the actor turns into its table's ``timer_<name>`` event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mypy_extensions import mypyc_attr
from pykka._envelope import Envelope

from sipactors.fsm import CancelTimer, StartTimer
from sipactors.runtime.actor import ScheduledActor, ScheduledInbox
from sipactors.runtime.scheduler import TimerHandle

__all__ = ["OwnedActor", "TimedActor", "TimerFired"]


@dataclass(frozen=True, slots=True)
class TimerFired:
    timer: str


@mypyc_attr(native_class=False, allow_interpreted_subclasses=True)  # a pykka actor; interpreted actors subclass it
class TimedActor(ScheduledActor):
    """A scheduled actor that carries out its machine's timer effects."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        ScheduledActor.__init__(self)  # not super(): an actor per transaction, and super() costs an object
        self.timers: dict[str, TimerHandle] = {}

    def _start_timer(self, effect: StartTimer) -> None:
        running = self.timers.pop(effect.timer, None)
        if running is not None:
            running.cancel()
        self.timers[effect.timer] = self._scheduler.call_later(effect.delay, _Expiry(self.actor_inbox, effect.timer))  # type: ignore[arg-type]

    def _cancel_timer(self, effect: CancelTimer) -> None:
        running = self.timers.pop(effect.timer, None)
        if running is not None:
            running.cancel()

    def _cancel_timers(self) -> None:
        for handle in self.timers.values():
            handle.cancel()
        self.timers.clear()


@mypyc_attr(native_class=False, allow_interpreted_subclasses=True)  # subclassed by interpreted actors (publications)
class OwnedActor(TimedActor):
    """A timed actor its owner keeps in a dict (a registrar's bindings, a presence role's publications): the
    owner hears exactly once that it ended, by its method named ``owner_ended`` (DESIGN §3: a failing actor
    logs and stops; its role runs on and forgets it)."""

    owner: Any
    owner_ended: str  # the owner's method told ``(actor)`` once the actor ended
    _ended = False

    def _end(self) -> None:
        """The machine is over, or failed: cancel the timers, tell the owner, stop."""
        self._forget()
        self.stop_now()

    def _forget(self) -> None:
        self._cancel_timers()
        if not self._ended:
            self._ended = True
            getattr(self.owner, self.owner_ended)(self)

    def on_failure(self, *exc_info: Any) -> None:
        """A failure nobody asked about: the owner forgets the actor, once (it may have ended already)."""
        self._forget()


class _Expiry:
    """A running timer's callback: tell the actor, if it still lives, that the timer fired. A slotted
    object (48 octets) rather than a closure (a function, its cells and their tuple: about 300), as
    every live transaction holds one. It holds the actor's inbox, as an ``ActorRef`` would (its stopped
    flag and its mail), not a ref, which the actor makes only for whoever asks (``actor_ref``); the
    ``TimerFired`` messages and their envelopes are shared, one per timer (nobody replies to a tell)."""

    __slots__ = ("inbox", "envelope")

    def __init__(self, inbox: ScheduledInbox, timer: str) -> None:
        self.inbox = inbox
        self.envelope = _FIRED.get(timer) or _FIRED.setdefault(timer, Envelope(TimerFired(timer)))

    def __call__(self) -> None:
        inbox = self.inbox
        if not inbox._stopped:  # inbox.is_set(), as ActorRef.tell asks before it posts
            inbox.put(self.envelope)


_FIRED: dict[str, Envelope[TimerFired]] = {}
