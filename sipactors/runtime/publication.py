"""Publication actors (RFC 3903 §6): one per publication of event state, driven by the publication machine
(spec/machines/publication.toml), owned by the presence role (the event state compositor).

Flow (DESIGN §1): the role decides a PUBLISH (RFC 3903 §6 steps 1-4), stores its outcome in one
transaction (step 5: atomically), then tells the publication's actor ``Publish``, ``Refresh``, ``Modify``
or ``Remove`` (after a restart ``Restore``) → ``PublicationMachine.fire`` → effects, which the actor
carries out: the expiry timer on the scheduler's clock, the publication removed from the store when it
fires (the one write an actor makes), the owner told the publication as it now is and, once the machine
says Terminated, that the actor ended.

As for bindings (``sipactors.runtime.binding``) there are two clocks: the store keeps the wall-clock
expiry; the timer runs on the scheduler's clock for ``expires - now``. When it fires early on the wall
clock the table's ``early`` row starts it again for the time left.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from sipactors.fsm import CancelTimer, ProtocolError, StartTimer, Terminated
from sipactors.fsm.publication import (
    PublicationMachine,
    RemovePublication,
    ToCompositor,
    publication_machine,
)
from sipactors.runtime.timers import OwnedActor, TimerFired
from sipactors.store.publications import Publication, PublicationStore

__all__ = ["Modify", "Publish", "PublicationActor", "PublicationOwner", "Refresh", "Remove", "Restore"]

log = logging.getLogger("sipactors.publication")

_SERIAL = itertools.count(1)


class PublicationOwner(Protocol):
    """What a publication actor tells the presence role that owns it."""

    def publication_changed(self, actor: PublicationActor, previous: str | None, publication: Publication | None) -> None:
        """The publication of ``actor``, known until now by the entity-tag ``previous``, is now ``publication``
        (None: removed or expired)."""
        ...

    def publication_ended(self, actor: PublicationActor) -> None:
        """``actor`` has stopped: forget it."""
        ...


@dataclass(frozen=True, slots=True)
class Publish:
    """An initial publication (no SIP-If-Match, RFC 3903 §4.2), stored with its first entity-tag."""

    publication: Publication


@dataclass(frozen=True, slots=True)
class Refresh:
    """A refresh (SIP-If-Match, no body, RFC 3903 §4.3): the same state under a new tag and expiry."""

    publication: Publication


@dataclass(frozen=True, slots=True)
class Modify:
    """A modification (SIP-If-Match and a body, RFC 3903 §4.4): new state, a new tag and expiry."""

    publication: Publication


@dataclass(frozen=True, slots=True)
class Remove:
    """A removal (SIP-If-Match, Expires: 0, RFC 3903 §4.5), already deleted from the store."""


@dataclass(frozen=True, slots=True)
class Restore:
    """Take up ``publication`` as the store kept it, after a restart, with the time it has left."""

    publication: Publication


_EVENTS: dict[type, str] = {Publish: "publish", Refresh: "refresh", Modify: "modify", Restore: "restore"}


class PublicationActor(OwnedActor):
    """One publication: its machine state, its expiry timer, and the store it is kept in."""

    owner_ended = "publication_ended"

    def __init__(
        self, owner: PublicationOwner, presentity: str, store: PublicationStore, wall_now: Callable[[], float],
        trace: Callable[[dict[str, Any]], None] | None = None, machine: PublicationMachine | None = None,
        actor_id: str | None = None,
    ) -> None:
        super().__init__()
        self.owner = owner
        self.store = store
        self.wall_now = wall_now
        self.trace = trace
        self.machine = machine or publication_machine()
        self.p = self.machine.new(presentity)
        self.actor_id = actor_id or f"publication-{next(_SERIAL)}"

    @property
    def presentity(self) -> str:
        return self.p.presentity

    @property
    def state(self) -> str:
        return self.p.state

    @property
    def publication(self) -> Publication | None:
        return self.p.publication

    def on_receive(self, message: Any) -> str:
        """Run the message's event; answers the machine's state after it."""
        kind = type(message)
        event = _EVENTS.get(kind)
        if event is not None:
            return self.step(event, message.publication)
        if kind is Remove:
            return self.step("remove", None)
        if kind is TimerFired:
            self.timers.pop(message.timer, None)
            return self.step(f"timer_{message.timer}", None)
        raise TypeError(f"a publication actor does not take {message!r}")

    def step(self, event: str, message: Any) -> str:
        before = self.p.state
        try:
            effects = self.machine.fire(self.p, event, message, self.wall_now())
        except ProtocolError as error:
            # An event the table declares an error here: the sender is at fault; the publication stays.
            log.warning("publication %s: %s", self.actor_id, error)
            self._emit({"type": "refused", "event": event, "state": before, "why": str(error)})
            return before
        self._emit({"type": "transition", "event": event, "before": before, "after": self.p.state,
                    "decision": self.machine.decision(before, event)["kind"], "rfc": self.machine.rfc(before, event),
                    "effects": [type(effect).__name__ for effect in effects]})
        try:
            for effect in effects:
                _EFFECTS[type(effect)](self, effect)
        except Exception:
            # The store failed to remove an expired publication: end the actor; the row stays, unseen
            # (every read asks for expires > now), until the purge at the next start.
            log.exception("publication %s of %s: %s failed", self.actor_id, self.p.presentity, event)
            self._end()
            raise
        return self.p.state

    def _emit(self, record: dict[str, Any]) -> None:
        if self.trace is not None:
            self.trace({"time": self._scheduler.now(), "actor": self.actor_id, "machine": self.machine.name,
                        "presentity": self.p.presentity, **record})

    # -- effects --------------------------------------------------------------------------------
    def _remove(self, effect: RemovePublication) -> None:
        self.store.remove_expired(effect.presentity, effect.etag, effect.expires)

    def _to_compositor(self, effect: ToCompositor) -> None:
        self.owner.publication_changed(self, effect.previous, effect.publication)

    def _terminated(self, effect: Terminated) -> None:
        self._end()



_EFFECTS: dict[type, Callable[[PublicationActor, Any], None]] = {
    RemovePublication: PublicationActor._remove, ToCompositor: PublicationActor._to_compositor,
    StartTimer: PublicationActor._start_timer, CancelTimer: PublicationActor._cancel_timer,
    Terminated: PublicationActor._terminated,
}
