"""Registration binding actors (RFC 3261 §10.3): one per (AOR, contact URI), driven by the binding machine
(spec/machines/binding.toml), owned by its registrar.

Flow (DESIGN §1): the registrar, having checked a whole REGISTER (§10.3 steps 1-7) and committed its
changes to the store in one transaction (step 7), tells each binding's actor ``Register`` or
``Unregister``, and after a restart ``Restore`` → ``BindingMachine.fire`` → effects, which the actor
carries out: the expiry timer run on the scheduler's clock, the binding removed from the store when that
timer fires (the one store write an actor makes: the registrar commits everything a REGISTER changes),
the owner told the binding as it now is and, once the machine says Terminated, that the actor ended.

* **Two clocks.** The store keeps a binding's expiry as wall-clock POSIX seconds (it outlives the
  process); timers run on the scheduler's clock, milliseconds that are monotonic (real mode) or virtual
  (simulation). The actor reads the wall clock only through the ``wall_now`` it is given, passes it to
  the machine as ``now``, and the machine starts the timer for ``expires - now``. A simulation passes
  ``wall_clock(scheduler, epoch)`` so both clocks move together; real mode passes ``time.time``. The timer
  may fire a little after the wall-clock expiry (the clocks drift apart): the store already hides an
  expired binding from ``bindings(aor, now)``, so routing never sees it late, and the timer removes it.
* **Replies.** Every message returns an ``Outcome`` (``ask(block=False)`` and a done-callback: DESIGN §3);
  the registrar, which has committed already, only ``tell``s.
* **Failures.** A store that raises while removing an expired binding ends the actor (its owner is told);
  the expired binding stays in the store, where nobody sees it (``bindings(aor, now)`` hides it) until
  the purge at the next start.
* **Trace.** Every transition is a record (time, actor id, machine, AOR and contact, state before and
  after, event, decision, the RFC section of its row, effects) given to ``trace``, if any.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from mypy_extensions import mypyc_attr

from sipactors.fsm import (
    BindingMachine,
    CancelTimer,
    ProtocolError,
    Refused,
    Removal,
    RemoveBinding,
    StartTimer,
    Terminated,
    ToRegistrar,
    binding_machine,
)
from sipactors.runtime.scheduler import Scheduler
from sipactors.runtime.timers import OwnedActor, TimerFired
from sipactors.store.model import Binding, LocationStore

__all__ = ["BindingActor", "BindingOwner", "Outcome", "Register", "Restore", "Unregister", "wall_clock"]

log = logging.getLogger("sipactors.binding")

_SERIAL = itertools.count(1)


class BindingOwner(Protocol):
    """What a binding actor tells the registrar that owns it (and keeps it in its dict by AOR and contact)."""

    def binding_changed(self, actor: BindingActor, binding: Binding | None) -> None:
        """The binding of ``actor`` is now ``binding`` (None: removed or expired)."""
        ...

    def binding_ended(self, actor: BindingActor) -> None:
        """``actor`` has stopped: forget it."""
        ...


@dataclass(frozen=True, slots=True)
class Register:
    """Add or refresh the binding (a Contact with an expiration above zero: RFC 3261 §10.2.1, §10.2.4).
    ``binding.expires`` is the absolute wall-clock expiry the registrar granted (§10.3 step 7)."""

    binding: Binding


#: Remove the binding: expiration 0 for its contact, or ``Contact: *`` (RFC 3261 §10.2.2, §10.3 step 6),
#: with the REGISTER's Call-ID and CSeq. The machine's own event data, passed to it as it is.
Unregister = Removal


@dataclass(frozen=True, slots=True)
class Restore:
    """Take up ``binding`` as the store kept it, after a restart, with the time it has left."""

    binding: Binding


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a message did: the machine state after it, the binding as stored (None: none), and why the
    update was refused (an out-of-order REGISTER, or an event the table declares an error), if it was."""

    state: str
    binding: Binding | None
    refused: str | None = None


def wall_clock(scheduler: Scheduler, epoch: float) -> Callable[[], float]:
    """A wall clock that is the scheduler's clock (ms) from POSIX time ``epoch``: a simulation's ``wall_now``."""
    return lambda: epoch + scheduler.now() / 1000.0


@mypyc_attr(native_class=False)  # a pykka actor (mypyc compiles its methods, not its class)
class BindingActor(OwnedActor):
    """One binding: its machine state, its expiry timer, and the store it keeps the binding in."""

    owner_ended = "binding_ended"

    def __init__(
        self, owner: BindingOwner, aor: str, contact: str, store: LocationStore, wall_now: Callable[[], float],
        trace: Callable[[dict[str, Any]], None] | None = None, machine: BindingMachine | None = None,
        actor_id: str | None = None,
    ) -> None:
        super().__init__()
        self.owner = owner
        self.store = store
        self.wall_now = wall_now
        self.trace = trace
        self.machine = machine or binding_machine()
        self.b = self.machine.new(aor, contact)
        # The owner may number its actors itself, so that a seeded simulation names them the same every run.
        self.actor_id = actor_id or f"binding-{next(_SERIAL)}"
        self._refused: str | None = None

    @property
    def aor(self) -> str:
        return self.b.aor

    @property
    def contact(self) -> str:
        return self.b.contact

    @property
    def state(self) -> str:
        return self.b.state

    # -- events ---------------------------------------------------------------------------------
    def on_receive(self, message: Any) -> Outcome:
        kind = type(message)
        if kind is Register:
            return self.step("register", message.binding)
        if kind is Unregister:
            return self.step("unregister", message)
        if kind is Restore:
            return self.step("restore", message.binding)
        if kind is TimerFired:
            self.timers.pop(message.timer, None)
            return self.step(f"timer_{message.timer}", None)
        raise TypeError(f"a binding actor does not take {message!r}")

    def step(self, event: str, message: Any) -> Outcome:
        before = self.b.state
        try:
            effects = self.machine.fire(self.b, event, message, self.wall_now())
        except ProtocolError as error:
            # An event the table declares an error here (a second restore): the sender is at fault, the
            # binding is not, and stays as it was.
            self._emit({"type": "refused", "event": event, "state": before, "why": str(error)})
            return Outcome(before, self.b.binding, str(error))
        if self.trace is not None:
            decision = self.machine.decision(before, event)
            self._emit({"type": "transition", "event": event, "before": before, "after": self.b.state,
                        "decision": decision["kind"], "rfc": self.machine.rfc(before, event),
                        "effects": [type(effect).__name__ for effect in effects]})
        try:
            for effect in effects:
                _EFFECTS[type(effect)](self, effect)
        except Exception:
            # The store failed: the update did not happen, and this actor no longer knows what the store
            # holds. End it; the error goes to the asker (§10.3 step 7: the REGISTER fails with 500).
            log.exception("binding %s %s: %s failed", self.b.aor, self.b.contact, event)
            self._end()
            raise
        # Read, then reset for the next step (not reset before the effects: mypy would then take the value
        # for None after them, and the compiled build checks what mypy believes).
        refused, self._refused = self._refused, None
        return Outcome(self.b.state, self.b.binding, refused)

    def _emit(self, record: dict[str, Any]) -> None:
        if self.trace is not None:
            self.trace({"time": self._scheduler.now(), "actor": self.actor_id, "machine": self.machine.name,
                        "aor": self.b.aor, "contact": self.b.contact, **record})

    # -- effects --------------------------------------------------------------------------------
    def _remove(self, effect: RemoveBinding) -> None:
        self.store.remove_expired(effect.aor, effect.contact, effect.expires)

    def _to_registrar(self, effect: ToRegistrar) -> None:
        self.owner.binding_changed(self, effect.binding)

    def _refuse(self, effect: Refused) -> None:
        self._refused = effect.why

    def _terminated(self, effect: Terminated) -> None:
        self._end()



#: What the actor does with each kind of effect (dispatch by type, as the transaction actors do).
_EFFECTS: dict[type, Callable[[BindingActor, Any], None]] = {
    RemoveBinding: BindingActor._remove, ToRegistrar: BindingActor._to_registrar,
    Refused: BindingActor._refuse, StartTimer: BindingActor._start_timer, CancelTimer: BindingActor._cancel_timer,
    Terminated: BindingActor._terminated,
}
