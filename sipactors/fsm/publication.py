"""The publication machine: one shared ``transitions.Machine`` built from models/publication.json
(spec/machines/publication.toml), driving one ``PublicationState`` per publication of event state
(RFC 3903 §6).

Rules of this module (DESIGN §1, §2):
 * ``fire(p, event, message, now)`` returns the effects of that step and nothing else happens: no store,
   no clock. ``now`` is the wall clock in POSIX seconds, the clock of ``Publication.expires``; the expiry
   timer's delay is ``expires - now`` in milliseconds, which the actor runs on its scheduler's clock;
 * the events and what they carry: ``publish``, ``refresh``, ``modify`` and ``restore`` a ``Publication``
   (stored already, with its new entity-tag: RFC 3903 §6 step 6), ``remove`` and ``timer_expiry`` nothing;
 * the effects are this family's own (below), plus ``StartTimer``, ``CancelTimer`` and ``Terminated``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from transitions import EventData

from sipactors.fsm.base import Run, TableMachine, load_model
from sipactors.fsm.effects import CancelTimer, StartTimer, Terminated
from sipactors.fsm.families import PUBLICATION
from sipactors.store.publications import Publication

__all__ = [
    "PublicationEffect", "PublicationMachine", "PublicationState", "RemovePublication", "ToCompositor",
    "publication_machine",
]


@dataclass(frozen=True, slots=True)
class RemovePublication:
    """Remove the publication ``etag`` of ``presentity`` from the store if its expiry is not after
    ``expires`` (RFC 3903 §6 step 5: its interval ran out)."""

    presentity: str
    etag: str
    expires: float


@dataclass(frozen=True, slots=True)
class ToCompositor:
    """Tell the presence role the publication as it now is (None: removed or expired). ``previous`` is
    the entity-tag it had before this step, so the role can re-key it (RFC 3903 §6 step 6)."""

    presentity: str
    previous: str | None
    publication: Publication | None


PublicationEffect = RemovePublication | ToCompositor | StartTimer | CancelTimer | Terminated


@dataclass(eq=False, slots=True)
class PublicationState:
    """The state of one publication, as the machine needs it."""

    presentity: str
    state: str = "init"
    publication: Publication | None = None  # what the store holds; None before it exists and once removed
    intervals: dict[str, int] = field(default_factory=dict)  # the running timer and its delay, ms
    etag: str | None = None  # the entity-tag before the current step (what the role keyed it by)


def _due(event: EventData) -> bool:
    """The expiry has come to the millisecond the timers run at (a remainder that rounds to 0 ms would start
    a timer due at once, forever)."""
    model: PublicationState = event.model  # type: ignore[assignment]  # the object the machine drives
    publication = model.publication
    return publication is None or round((publication.expires - event.kwargs["now"]) * 1000) <= 0


def _early(event: EventData) -> bool:
    return not _due(event)


class PublicationMachine(TableMachine):
    """The machine of the publication family, shared by every publication."""

    family = PUBLICATION
    guards = {"due": _due, "early": _early}

    def new(self, presentity: str) -> PublicationState:
        return PublicationState(presentity, self.model["initial"])

    def fire(self, p: PublicationState, event: str, message: Any = None, now: float = 0.0) -> list[PublicationEffect]:
        """One step: the effects of ``event`` in the publication's current state, at wall-clock ``now``."""
        return self._fire(p, event, message, now, self._execute)

    def trigger(self, p: PublicationState, event: str, message: Any = None, now: float = 0.0) -> list[PublicationEffect]:
        """``fire`` through the general path, ``machine.events[event].trigger``, for the tests to compare."""
        return self._fire(p, event, message, now, self._trigger)

    def _fire(self, p: PublicationState, event: str, message: Any, now: float, run: Run) -> list[PublicationEffect]:
        step = self._steps[p.state].get(event)
        if step is None or step.kind != "rows":
            self._declined(p.state, event, step)
            return []
        if isinstance(message, Publication) and message.presentity != p.presentity:
            raise ValueError(f"a publication of {message.presentity!r} sent to one of {p.presentity!r}")
        effects: list[PublicationEffect] = []
        p.etag = p.publication.etag if p.publication is not None else None
        if step.fired is not None:  # the timer that fired runs no more (an early one is started again, not cancelled)
            p.intervals.pop(step.fired, None)
        if not run(step, p, {"message": message, "effects": effects, "now": now, "fired": step.fired}):
            raise self._unguarded(p.state, event)
        self._stopped(p.intervals, step.fired, effects)
        return effects

    # -- actions ------------------------------------------------------------------------------------
    def _do_adopt(self, p: PublicationState, kw: dict[str, Any], timer: str) -> None:
        p.publication = kw["message"]

    def _do_forget(self, p: PublicationState, kw: dict[str, Any], timer: str) -> None:
        p.publication = None

    def _do_store_remove(self, p: PublicationState, kw: dict[str, Any], timer: str) -> None:
        assert p.publication is not None  # the table removes only a publication that exists
        kw["effects"].append(RemovePublication(p.presentity, p.publication.etag, p.publication.expires))
        p.publication = None

    def _do_tell_compositor(self, p: PublicationState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(ToCompositor(p.presentity, p.etag, p.publication))

    def _do_start(self, p: PublicationState, kw: dict[str, Any], timer: str) -> None:
        assert p.publication is not None  # the table starts the expiry once the publication is this one's
        # Wall-clock seconds to scheduler milliseconds; an interval already over fires at once.
        delay = max(0, round((p.publication.expires - kw["now"]) * 1000))
        p.intervals[timer] = delay
        kw["effects"].append(StartTimer(timer, delay))

    def _do_restart(self, p: PublicationState, kw: dict[str, Any], timer: str) -> None:
        if p.intervals.pop(timer, None) is not None:
            kw["effects"].append(CancelTimer(timer))
        self._do_start(p, kw, timer)


@cache
def publication_machine() -> PublicationMachine:
    """The shared publication machine (models/publication.json)."""
    return PublicationMachine(load_model("publication"))
