"""The registration binding machine: one shared ``transitions.Machine`` built from models/binding.json
(spec/machines/binding.toml), driving one ``BindingState`` per (AOR, contact URI) (RFC 3261 §10.2, §10.3).

Rules of this module (DESIGN §1, §2):
 * ``fire(b, event, message, now)`` returns the effects of that step and nothing else happens: no store,
   no clock. ``now`` is the wall clock in POSIX seconds, the clock of ``Binding.expires`` (a binding
   outlives the process); the expiry timer's delay is ``expires - now``, in milliseconds, which the actor
   runs on its scheduler's clock;
 * the events and what they carry: ``register`` and ``restore`` a ``Binding`` (the one the registrar
   made from the REGISTER and has committed, with its granted expiry; the one the store kept), ``unregister`` a ``Removal``
   (the REGISTER's Call-ID and CSeq), ``timer_expiry`` nothing;
 * Call-ID/CSeq ordering (RFC 3261 §10.3 steps 6-7) is the table's guard pair ``in_order`` /
   ``out_of_order``, decided against the binding the state holds; spec/machines/binding.toml says why
   the registrar checks it as well.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from typing import Any

from transitions import EventData

from sipactors.fsm.base import Run, TableMachine, load_model
from sipactors.fsm.effects import (
    BindingEffect,
    CancelTimer,
    Refused,
    RemoveBinding,
    StartTimer,
    ToRegistrar,
)
from sipactors.fsm.families import BINDING
from sipactors.store.model import Binding

__all__ = ["BindingMachine", "BindingState", "Removal", "binding_machine"]


@dataclass(frozen=True, slots=True)
class Removal:
    """What a REGISTER that removes a binding says of it: expiration 0 for its contact, or ``Contact: *``
    (RFC 3261 §10.2.2), with the request's Call-ID and CSeq for the ordering check (§10.3 step 6)."""

    call_id: str
    cseq: int


@dataclass(eq=False, slots=True)
class BindingState:
    """The state of one binding, as the machine needs it."""

    aor: str
    contact: str  # the contact URI as the registrar keys the binding (compared by RFC 3261 §19.1.4)
    state: str = "init"
    binding: Binding | None = None  # what the store holds for it; None before it exists and once removed
    intervals: dict[str, int] = field(default_factory=dict)  # the running timer and its delay, ms


def _in_order(event: EventData) -> bool:
    """RFC 3261 §10.3 step 7: another Call-ID, or the same one with a higher CSeq, may update the binding."""
    model: BindingState = event.model  # type: ignore[assignment]  # the object the machine drives
    current, update = model.binding, event.kwargs["message"]
    return current is None or update.call_id != current.call_id or update.cseq > current.cseq


def _out_of_order(event: EventData) -> bool:
    return not _in_order(event)


class BindingMachine(TableMachine):
    """The machine of the binding family, shared by every binding."""

    family = BINDING
    guards = {"in_order": _in_order, "out_of_order": _out_of_order}

    def new(self, aor: str, contact: str) -> BindingState:
        return BindingState(aor, contact, self.model["initial"])

    def fire(self, b: BindingState, event: str, message: Any = None, now: float = 0.0) -> list[BindingEffect]:
        """One step: the effects of ``event`` in the binding's current state, at wall-clock ``now``."""
        return self._fire(b, event, message, now, self._execute)

    def trigger(self, b: BindingState, event: str, message: Any = None, now: float = 0.0) -> list[BindingEffect]:
        """``fire`` through the general path, ``machine.events[event].trigger``, for the tests to compare."""
        return self._fire(b, event, message, now, self._trigger)

    def _fire(self, b: BindingState, event: str, message: Any, now: float, run: Run) -> list[BindingEffect]:
        step = self._steps[b.state].get(event)
        if step is None or step.kind != "rows":
            self._declined(b.state, event, step)
            return []
        if isinstance(message, Binding) and message.aor != b.aor:
            raise ValueError(f"a binding of {message.aor!r} sent to the binding {b.aor!r} {b.contact!r}")
        effects: list[BindingEffect] = []
        if not run(step, b, {"message": message, "effects": effects, "now": now, "fired": step.fired}):
            raise self._unguarded(b.state, event)
        self._stopped(b.intervals, step.fired, effects)
        return effects

    # -- actions ------------------------------------------------------------------------------------
    def _do_adopt(self, b: BindingState, kw: dict[str, Any], timer: str) -> None:
        b.binding = kw["message"]

    def _do_forget(self, b: BindingState, kw: dict[str, Any], timer: str) -> None:
        b.binding = None

    def _do_store_remove(self, b: BindingState, kw: dict[str, Any], timer: str) -> None:
        assert b.binding is not None  # the table removes only a binding that exists
        kw["effects"].append(RemoveBinding(b.aor, b.contact, b.binding.expires))
        b.binding = None

    def _do_tell_registrar(self, b: BindingState, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(ToRegistrar(b.aor, b.contact, b.binding))

    def _do_refuse(self, b: BindingState, kw: dict[str, Any], timer: str) -> None:
        update, current = kw["message"], b.binding
        assert current is not None  # out_of_order holds only against a binding
        kw["effects"].append(Refused(
            f"out of order: Call-ID {update.call_id} CSeq {update.cseq} is not above the binding's CSeq "
            f"{current.cseq} (RFC 3261 §10.3 step 7)"
        ))

    def _do_start(self, b: BindingState, kw: dict[str, Any], timer: str) -> None:
        assert b.binding is not None  # the table starts the expiry once the binding is this one's
        # Wall-clock seconds to scheduler milliseconds; an interval already over fires at once.
        delay = max(0, round((b.binding.expires - kw["now"]) * 1000))
        b.intervals[timer] = delay
        kw["effects"].append(StartTimer(timer, delay))

    def _do_restart(self, b: BindingState, kw: dict[str, Any], timer: str) -> None:
        if b.intervals.pop(timer, None) is not None:
            kw["effects"].append(CancelTimer(timer))
        self._do_start(b, kw, timer)


@cache
def binding_machine() -> BindingMachine:
    """The shared binding machine (models/binding.json)."""
    return BindingMachine(load_model("binding"))
