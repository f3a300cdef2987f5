"""Pure transaction machines: one shared ``transitions.Machine`` per kind, built from its model.

Rules of this module (DESIGN §2):
 * a ``Transaction`` is plain state (its machine state, the request, the last response, the timer
   intervals); many of them are driven through one ``KindMachine`` (``machine.events[e].trigger(tx)``);
 * ``fire(tx, event, message)`` returns the effects of that step and nothing else happens: no socket, no
   clock, no thread. A pair the table declares ``ignore`` returns no effects; one it declares ``error``
   raises ``ProtocolError``. Every other pair is a transition of the ``transitions`` machine, whose
   callbacks are the table's actions.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from transitions import EventData, Machine

from sipactors._resources import model_file
from sipactors.fsm.effects import CancelTimer, Effect, Send, StartTimer, Terminated, ToTU
from sipactors.fsm.tables import evaluate

__all__ = ["KINDS", "KindMachine", "ProtocolError", "TimerConfig", "Transaction", "kind_machine"]

KINDS = ("invite_client", "non_invite_client", "invite_server", "non_invite_server")


class ProtocolError(RuntimeError):
    """An event the table declares an error in the current state (the message names the RFC rule)."""


@dataclass(frozen=True)
class TimerConfig:
    """Timer values: the generated models/timers.json, with T1, T2 and T4 overridable (RFC 3261 §17.1.1.1:
    "T1 ... SHOULD be 500 ms"; a network with a known RTT may use another value)."""

    base: dict[str, int]
    timers: dict[str, dict[str, str]]

    @classmethod
    def default(cls, **base: int) -> TimerConfig:
        model = json.loads(model_file("timers.json").read_text(encoding="utf-8"))
        return cls({**model["base"], **base}, model["timers"])

    def value(self, timer: str, reliable: bool) -> int | None:
        return evaluate(self.timers[timer]["reliable" if reliable else "unreliable"], self.base)


@dataclass(eq=False)
class Transaction:
    """The state of one transaction, as the machine needs it."""

    kind: str
    reliable: bool
    state: str = "init"
    request: Any = None
    last_response: Any = None
    intervals: dict[str, int] = field(default_factory=dict)  # running timers and their current interval
    effects: list[Effect] = field(default_factory=list)
    fired: str | None = None  # the timer whose firing is being handled


class KindMachine:
    """The machine of one kind of transaction, shared by all transactions of that kind."""

    def __init__(self, model: dict[str, Any], timers: TimerConfig) -> None:
        self.model = model
        self.name: str = model["name"]
        self.timers = timers
        self.decisions: dict[str, dict[str, Any]] = model["decisions"]
        transitions = []
        for state, by_event in self.decisions.items():
            for event, decision in by_event.items():
                if decision["kind"] != "rows":
                    continue
                for row in decision["rows"]:
                    transitions.append(
                        {
                            "trigger": event,
                            "source": state,
                            "dest": row["target"],
                            "conditions": [_GUARDS[row["guard"]]] if row["guard"] else [],
                            "after": [self._action(action) for action in row["actions"]],
                        }
                    )
        self.machine = Machine(
            model=None, states=model["states"], transitions=transitions, initial=model["initial"],
            auto_transitions=False, send_event=True,
        )

    def new(self, reliable: bool, request: Any = None) -> Transaction:
        return Transaction(self.name, reliable, self.model["initial"], request)

    def decision(self, state: str, event: str) -> dict[str, Any]:
        return self.decisions[state][event]

    def fire(self, tx: Transaction, event: str, message: Any = None) -> list[Effect]:
        """One step: the effects of ``event`` in the transaction's current state."""
        decision = self.decisions[tx.state].get(event)
        if decision is None:
            raise ProtocolError(f"{self.name}: unknown event {event!r}")
        if decision["kind"] == "ignore":
            return []
        if decision["kind"] == "error":
            raise ProtocolError(f"{self.name}: {event} in {tx.state}: {decision['why']} ({decision['rfc']})")
        tx.effects = []
        if event in ("tu_request", "recv_invite", "recv_request") and tx.request is None:
            tx.request = message
        # A timer that fires is no longer running, unless its action restarts it.
        tx.fired = event[6:].upper() if event.startswith("timer_") else None
        if not self.machine.events[event].trigger(tx, message=message):
            raise ProtocolError(f"{self.name}: no guard of ({tx.state}, {event}) holds")
        effects, tx.effects = tx.effects, []
        if tx.fired is not None and not any(isinstance(e, StartTimer) and e.timer == tx.fired for e in effects):
            tx.intervals.pop(tx.fired, None)
        return effects

    # -- actions ------------------------------------------------------------------------------------
    def _action(self, action: str) -> Callable[[EventData], None]:
        name, _, timer = action.partition(":")
        run = getattr(self, "_do_" + name)

        def callback(event: EventData) -> None:
            run(event.model, event.kwargs.get("message"), timer)

        callback.__name__ = action
        return callback

    def _do_send_request(self, tx: Transaction, message: Any, timer: str) -> None:
        tx.effects.append(Send("request", tx.request))

    def _do_send_ack(self, tx: Transaction, message: Any, timer: str) -> None:
        tx.effects.append(Send("ack", message))

    def _do_send_response(self, tx: Transaction, message: Any, timer: str) -> None:
        tx.last_response = message
        tx.effects.append(Send("response", message))

    def _do_resend_response(self, tx: Transaction, message: Any, timer: str) -> None:
        if tx.last_response is None:
            tx.effects.append(Send("100", tx.request))
        else:
            tx.effects.append(Send("response", tx.last_response))

    def _do_send_100(self, tx: Transaction, message: Any, timer: str) -> None:
        tx.effects.append(Send("100", tx.request))

    def _do_to_tu(self, tx: Transaction, message: Any, timer: str) -> None:
        tx.effects.append(ToTU("message", message))

    def _do_timeout_to_tu(self, tx: Transaction, message: Any, timer: str) -> None:
        tx.effects.append(ToTU("timeout"))

    def _do_transport_error_to_tu(self, tx: Transaction, message: Any, timer: str) -> None:
        tx.effects.append(ToTU("transport_error"))

    def _do_terminate(self, tx: Transaction, message: Any, timer: str) -> None:
        for running in sorted(tx.intervals):
            if running != tx.fired:
                tx.effects.append(CancelTimer(running))
        tx.intervals.clear()
        tx.effects.append(Terminated())

    def _do_start(self, tx: Transaction, message: Any, timer: str) -> None:
        delay = self.timers.value(timer, tx.reliable)
        if delay is not None:  # "none": the timer is not used on this transport
            tx.intervals[timer] = delay
            tx.effects.append(StartTimer(timer, delay))

    def _do_cancel(self, tx: Transaction, message: Any, timer: str) -> None:
        if tx.intervals.pop(timer, None) is not None:
            tx.effects.append(CancelTimer(timer))

    def _restart(self, tx: Transaction, timer: str, delay: int) -> None:
        tx.intervals[timer] = delay
        tx.effects.append(StartTimer(timer, delay))

    def _do_double(self, tx: Transaction, message: Any, timer: str) -> None:
        if timer in tx.intervals:
            self._restart(tx, timer, 2 * tx.intervals[timer])

    def _do_double_capped(self, tx: Transaction, message: Any, timer: str) -> None:
        if timer in tx.intervals:
            self._restart(tx, timer, min(2 * tx.intervals[timer], self.timers.base["T2"]))

    def _do_set_t2(self, tx: Transaction, message: Any, timer: str) -> None:
        if timer in tx.intervals:
            self._restart(tx, timer, self.timers.base["T2"])


def _reliable(event: EventData) -> bool:
    return bool(event.model.reliable)


def _unreliable(event: EventData) -> bool:
    return not event.model.reliable


_GUARDS = {"reliable": _reliable, "unreliable": _unreliable}


@cache
def _model(name: str) -> dict[str, Any]:
    return json.loads(model_file(f"{name}.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@cache
def kind_machine(name: str) -> KindMachine:
    """The shared machine of kind ``name`` with the default timers."""
    return KindMachine(_model(name), TimerConfig.default())
