"""The notifier's subscription and dialog machines: one shared ``transitions.Machine`` per table of the
subscription family, models/subscription.json (spec/machines/subscription.toml, RFC 6665 §4.2) and
models/dialog.json (spec/machines/dialog.toml, RFC 3261 §12), each driving many states.

Rules of this module (DESIGN §1, §2):
 * ``fire(s, event, message, now)`` returns the effects of that step and nothing else happens: no store,
   no clock, no message sent. ``now`` is the wall clock in POSIX seconds, the clock of a subscription's
   ``expires`` (it outlives the process); the expiry timer's delay is ``expires - now`` in milliseconds;
 * the events and what they carry: the subscription's ``subscribe``, ``fetch``, ``refresh``,
   ``unsubscribe``, ``reauthorized`` and ``restore`` a ``Grant`` (the authorization and the absolute
   expiry, either of which may be absent); the dialog's ``create`` and ``request`` a ``DialogRequest``
   (the request's CSeq, Contact and Record-Route), ``restore`` the stored record (anything with
   ``remote_target``, ``route_set``, ``local_cseq`` and ``remote_cseq``); the other events nothing;
 * one ``SubscriptionMachine`` class serves both tables, as ``KindMachine`` serves the four transaction
   tables: the family's vocabulary is one, and a table uses the part of it that is its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from transitions import EventData

from sipactors.fsm.base import Run, TableMachine, load_model
from sipactors.fsm.effects import (
    Answer,
    CancelTimer,
    DeleteSubscription,
    NextNotify,
    Notify,
    SaveSubscription,
    StartTimer,
    SubscriptionEffect,
    ToPackage,
)
from sipactors.fsm.families import SUBSCRIPTION
from sipactors.roles.events import Authorization

__all__ = [
    "DialogRequest", "DialogState", "Grant", "SubscriptionMachine", "SubscriptionState", "dialog_machine",
    "subscription_machine",
]


@dataclass(frozen=True, slots=True)
class Grant:
    """What a subscription event decides: the package's authorization and the absolute wall-clock expiry
    the notifier granted (RFC 6665 §4.2.1.1); None leaves the subscription's own as it is."""

    authorization: Authorization | None = None
    expires: float | None = None


@dataclass(frozen=True, slots=True)
class DialogRequest:
    """What the dialog needs of a SUBSCRIBE (RFC 3261 §12.1.1, §12.2.2): its CSeq number, its Contact URI
    (None: none, the target stays) and its Record-Route URIs in the order received."""

    cseq: int
    contact: str | None = None
    record_route: tuple[str, ...] = ()


@dataclass(eq=False, slots=True)
class SubscriptionState:
    """One subscription's state as the subscription table needs it."""

    state: str = "init"
    authorization: Authorization | None = None
    expires: float = 0.0  # wall-clock POSIX seconds
    intervals: dict[str, int] = field(default_factory=dict)


@dataclass(eq=False, slots=True)
class DialogState:
    """The UAS side of a dialog (RFC 3261 §12.1.1): its ID, the route set, the remote target, both CSeqs."""

    call_id: str
    local_tag: str
    remote_tag: str
    state: str = "init"
    remote_target: str = ""
    route_set: tuple[str, ...] = ()
    local_cseq: int = 0  # §12.1.1: empty at the UAS until it sends; the first NOTIFY carries 1
    remote_cseq: int = 0
    intervals: dict[str, int] = field(default_factory=dict)

    @property
    def id(self) -> tuple[str, str, str]:
        """The dialog ID (RFC 3261 §12): Call-ID, local tag, remote tag."""
        return (self.call_id, self.local_tag, self.remote_tag)


#: The reason a package is told when the subscription ends on each event (RFC 6665 §4.1.3; the watcher's
#: own Expires 0 is "unsubscribed", as is a NOTIFY answered "no such subscription").
ENDED_BY = {
    "unsubscribe": "unsubscribed", "timer_expiry": "timeout", "reauthorized": "rejected",
    "deactivated": "deactivated", "resource_gone": "noresource", "notify_gone": "unsubscribed",
    "notify_timeout": "timeout",
}


def _authorization(event: EventData) -> Authorization | None:
    return event.kwargs["message"].authorization  # type: ignore[no-any-return]


def _allowed(event: EventData) -> bool:
    return _authorization(event) in (Authorization.ALLOW, Authorization.POLITE_BLOCK)


def _awaiting(event: EventData) -> bool:
    return _authorization(event) is Authorization.PENDING


def _blocked(event: EventData) -> bool:
    return _authorization(event) is Authorization.BLOCK


def _in_order(event: EventData) -> bool:
    """RFC 3261 §12.2.2: a request whose CSeq is above the remote sequence number."""
    dialog: DialogState = event.model  # type: ignore[assignment]  # the object the machine drives
    return bool(event.kwargs["message"].cseq > dialog.remote_cseq)


def _out_of_order(event: EventData) -> bool:
    return not _in_order(event)


class SubscriptionMachine(TableMachine):
    """The machine of the subscription family (a subscription table or a dialog table)."""

    family = SUBSCRIPTION
    guards = {"allowed": _allowed, "awaiting": _awaiting, "blocked": _blocked, "in_order": _in_order,
              "out_of_order": _out_of_order}

    def new(self) -> SubscriptionState:
        return SubscriptionState(self.model["initial"])

    def new_dialog(self, call_id: str, local_tag: str, remote_tag: str) -> DialogState:
        return DialogState(call_id, local_tag, remote_tag, self.model["initial"])

    def fire(self, s: Any, event: str, message: Any = None, now: float = 0.0) -> list[SubscriptionEffect]:
        """One step: the effects of ``event`` in the current state of ``s``, at wall-clock ``now``."""
        return self._fire(s, event, message, now, self._execute)

    def trigger(self, s: Any, event: str, message: Any = None, now: float = 0.0) -> list[SubscriptionEffect]:
        """``fire`` through the general path, ``machine.events[event].trigger``, for the tests to compare."""
        return self._fire(s, event, message, now, self._trigger)

    def _fire(self, s: Any, event: str, message: Any, now: float, run: Run) -> list[SubscriptionEffect]:
        step = self._steps[s.state].get(event)
        if step is None or step.kind != "rows":
            self._declined(s.state, event, step)
            return []
        effects: list[SubscriptionEffect] = []
        kwargs = {"message": message, "effects": effects, "now": now, "fired": step.fired, "event": event}
        if not run(step, s, kwargs):
            raise self._unguarded(s.state, event)
        self._stopped(s.intervals, step.fired, effects)
        return effects

    # -- subscription actions ---------------------------------------------------------------------
    def _do_adopt(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        grant: Grant = kw["message"]
        if grant.authorization is not None:
            s.authorization = grant.authorization
        if grant.expires is not None:
            s.expires = grant.expires

    def _do_authorize(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        s.authorization = kw["message"].authorization

    def _do_accept(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(Answer(200))

    def _do_refuse(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(Answer(403))

    def _do_notify(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        # the state the row moved to: active or pending (the table notifies from nowhere else)
        kw["effects"].append(Notify(s.state))

    def _final(self, kw: dict[str, Any], reason: str) -> None:
        kw["effects"].append(Notify("terminated", reason))

    def _do_notify_timeout(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        self._final(kw, "timeout")

    def _do_notify_rejected(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        self._final(kw, "rejected")

    def _do_notify_deactivated(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        self._final(kw, "deactivated")

    def _do_notify_noresource(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        self._final(kw, "noresource")

    def _do_next_notify(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(NextNotify())

    def _do_save(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(SaveSubscription())

    def _do_delete(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(DeleteSubscription())

    def _do_tell_started(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(ToPackage("started"))

    def _do_tell_ended(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(ToPackage("ended", ENDED_BY[kw["event"]]))

    def _do_start(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        # Wall-clock seconds to scheduler milliseconds; an interval already over fires at once.
        delay = max(0, round((s.expires - kw["now"]) * 1000))
        s.intervals[timer] = delay
        kw["effects"].append(StartTimer(timer, delay))

    def _do_restart(self, s: SubscriptionState, kw: dict[str, Any], timer: str) -> None:
        if s.intervals.pop(timer, None) is not None:
            kw["effects"].append(CancelTimer(timer))
        self._do_start(s, kw, timer)

    # -- dialog actions ---------------------------------------------------------------------------
    def _do_establish(self, d: DialogState, kw: dict[str, Any], timer: str) -> None:
        request: DialogRequest = kw["message"]
        # §12.1.1: the UAS's route set is the Record-Route list in order; its remote target the Contact
        d.route_set = request.record_route
        d.remote_target = request.contact or d.remote_target
        d.remote_cseq = request.cseq

    def _do_restore_dialog(self, d: DialogState, kw: dict[str, Any], timer: str) -> None:
        record = kw["message"]
        d.remote_target, d.route_set = record.remote_target, tuple(record.route_set)
        d.local_cseq, d.remote_cseq = record.local_cseq, record.remote_cseq

    def _do_take_cseq(self, d: DialogState, kw: dict[str, Any], timer: str) -> None:
        d.remote_cseq = kw["message"].cseq

    def _do_refresh_target(self, d: DialogState, kw: dict[str, Any], timer: str) -> None:
        contact = kw["message"].contact
        if contact:  # a re-SUBSCRIBE without Contact is malformed (§8.1.1.8); the target stays
            d.remote_target = contact

    def _do_reject_500(self, d: DialogState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(Answer(500))

    def _do_next_cseq(self, d: DialogState, kw: dict[str, Any], timer: str) -> None:
        d.local_cseq += 1


@cache
def subscription_machine() -> SubscriptionMachine:
    """The shared subscription machine (models/subscription.json)."""
    return SubscriptionMachine(load_model("subscription"))


@cache
def dialog_machine() -> SubscriptionMachine:
    """The shared dialog machine (models/dialog.json)."""
    return SubscriptionMachine(load_model("dialog"))
