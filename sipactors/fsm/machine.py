"""Pure transaction machines: one shared ``transitions.Machine`` per kind, built from its model.

Rules of this module (DESIGN §2):
 * a ``Transaction`` is plain state (its machine state, the request, the last response, the timer
   intervals); many of them are driven through one ``KindMachine``;
 * ``fire(tx, event, message)`` returns the effects of that step and nothing else happens: no socket, no
   clock, no thread. A pair the table declares ``ignore`` returns no effects; one it declares ``error``
   raises ``ProtocolError``. Every other pair is a transition of the ``transitions`` machine, whose
   callbacks are the table's actions;
 * ``fire`` runs the machine's own ``Transition`` objects, looked up once per (state, event) from
   ``machine.events``, instead of going through ``Event.trigger`` each time; ``trigger`` is that general
   path, and tests/fsm proves the two equal, and equal to a stock ``transitions.Machine``, for every
   (kind, state, event) pair.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from transitions import EventData

from sipactors._resources import model_file
from sipactors.fsm.base import ProtocolError, Run, TableMachine, load_model
from sipactors.fsm.effects import Effect, Send, StartTimer, ToTU
from sipactors.fsm.families import TRANSACTION
from sipactors.fsm.tables import evaluate

__all__ = ["KINDS", "KindMachine", "ProtocolError", "TimerConfig", "Transaction", "kind_machine"]

KINDS = ("invite_client", "non_invite_client", "invite_server", "non_invite_server")

#: Events that carry the request a transaction is created for.
_REQUEST_EVENTS = frozenset({"tu_request", "recv_invite", "recv_request"})


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


@dataclass(eq=False, slots=True)
class Transaction:
    """The state of one transaction, as the machine needs it (slots: tens of thousands live at once)."""

    kind: str
    reliable: bool
    state: str = "init"
    request: Any = None
    last_response: Any = None
    intervals: dict[str, int] = field(default_factory=dict)  # running timers and their current interval


def _reliable(event: EventData) -> bool:
    transaction: Transaction = event.model  # type: ignore[assignment]  # the object the machine drives
    return transaction.reliable


def _unreliable(event: EventData) -> bool:
    transaction: Transaction = event.model  # type: ignore[assignment]  # the object the machine drives
    return not transaction.reliable


class KindMachine(TableMachine):
    """The machine of one kind of transaction, shared by all transactions of that kind."""

    family = TRANSACTION
    guards = {"reliable": _reliable, "unreliable": _unreliable}

    def __init__(self, model: dict[str, Any], timers: TimerConfig, lean: bool = True) -> None:
        self.server = model["name"].endswith("server")  # a server transaction (RFC 3261 §17.2)
        self.timers = timers
        # A timer's initial value per kind of transport, evaluated once rather than per start.
        self._delays = {(timer, reliable): timers.value(timer, reliable) for timer in timers.timers
                        for reliable in (False, True)}
        # ... and its StartTimer effect, built once too (effects are frozen: every transaction may share one)
        self._starts = {key: StartTimer(key[0], delay) for key, delay in self._delays.items() if delay is not None}
        super().__init__(model, lean)

    def new(self, reliable: bool, request: Any = None) -> Transaction:
        return Transaction(self.name, reliable, self.model["initial"], request)

    def fire(self, tx: Transaction, event: str, message: Any = None, run: Run | None = None) -> list[Effect]:
        """One step: the effects of ``event`` in the transaction's current state. ``run`` runs the row:
        ``_execute`` when None (the fast path), ``_trigger`` for ``trigger``."""
        step = self._steps[tx.state].get(event)
        if step is None or step.kind != "rows":
            self._declined(tx.state, event, step)
            return []
        if tx.request is None and event in _REQUEST_EVENTS:
            tx.request = message
        effects: list[Effect] = []
        fired = step.fired
        kwargs = {"message": message, "effects": effects, "fired": fired}
        plain = step.plain
        if plain is not None and run is None:  # _execute's work for one unguarded row, inline
            tx.state = plain[0]
            for action, timer in plain[1]:
                action(tx, kwargs, timer)
        elif not (self._execute(step, tx, kwargs) if run is None else run(step, tx, kwargs)):
            raise self._unguarded(tx.state, event)
        if fired is not None:
            self._stopped(tx.intervals, fired, effects)
        return effects

    def trigger(self, tx: Transaction, event: str, message: Any = None) -> list[Effect]:
        """``fire`` through the general path, ``machine.events[event].trigger``, for the tests to compare."""
        return self.fire(tx, event, message, self._trigger)

    # -- actions ------------------------------------------------------------------------------------
    def _do_send_request(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(Send("request", tx.request))

    def _do_send_ack(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(Send("ack", kw["message"]))

    def _do_send_response(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        tx.last_response = message = kw["message"]
        kw["effects"].append(Send("response", message))

    def _do_resend_response(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        if tx.last_response is None:
            kw["effects"].append(Send("100", tx.request))
        else:
            kw["effects"].append(Send("response", tx.last_response))

    def _do_send_100(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(Send("100", tx.request))

    def _do_to_tu(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(ToTU("message", kw["message"]))

    def _do_timeout_to_tu(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(ToTU("timeout"))

    def _do_transport_error_to_tu(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        kw["effects"].append(ToTU("transport_error"))

    def _do_start(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        start = self._starts.get((timer, tx.reliable))
        if start is not None:  # None: "none", the timer is not used on this transport
            tx.intervals[timer] = start.delay
            kw["effects"].append(start)

    @staticmethod
    def _restart(tx: Transaction, timer: str, delay: int, effects: list[Effect]) -> None:
        tx.intervals[timer] = delay
        effects.append(StartTimer(timer, delay))

    def _do_double(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        if timer in tx.intervals:
            self._restart(tx, timer, 2 * tx.intervals[timer], kw["effects"])

    def _do_double_capped(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        if timer in tx.intervals:
            self._restart(tx, timer, min(2 * tx.intervals[timer], self.timers.base["T2"]), kw["effects"])

    def _do_set_t2(self, tx: Transaction, kw: dict[str, Any], timer: str) -> None:
        if timer in tx.intervals:
            self._restart(tx, timer, self.timers.base["T2"], kw["effects"])


@cache
def kind_machine(name: str) -> KindMachine:
    """The shared machine of kind ``name`` with the default timers."""
    return KindMachine(load_model(name), TimerConfig.default())
