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
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from transitions import Event, EventData, Machine, State, Transition

from sipactors._resources import model_file
from sipactors.fsm.effects import CancelTimer, Effect, Send, StartTimer, Terminated, ToTU
from sipactors.fsm.tables import evaluate

__all__ = ["KINDS", "KindMachine", "ProtocolError", "TimerConfig", "Transaction", "kind_machine"]

KINDS = ("invite_client", "non_invite_client", "invite_server", "non_invite_server")

#: Events that carry the request a transaction is created for.
_REQUEST_EVENTS = frozenset({"tu_request", "recv_invite", "recv_request"})


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


@dataclass(eq=False, slots=True)
class Transaction:
    """The state of one transaction, as the machine needs it (slots: tens of thousands live at once)."""

    kind: str
    reliable: bool
    state: str = "init"
    request: Any = None
    last_response: Any = None
    intervals: dict[str, int] = field(default_factory=dict)  # running timers and their current interval


class _TableTransition(Transition):
    """A ``transitions`` Transition, executed as the tables configure it.

    transitions' own ``execute`` runs, in order: the ``prepare`` callbacks, the conditions, the machine's
    ``before_state_change`` and the transition's ``before`` callbacks, the source state's exit callbacks,
    ``Machine.set_state``, the destination's enter callbacks (and ``on_final``), then ``after`` and
    ``after_state_change``, logging at each stage. The tables configure only conditions (guards) and
    ``after`` (the row's actions) — ``KindMachine`` refuses a machine with any of the others — so this
    runs the same steps without walking the empty lists and formatting the log calls, which cost three
    quarters of a step (measured: 40 µs against 10 µs for a one-action row).
    """

    def execute(self, event_data: EventData) -> bool:
        for condition in self.conditions:
            if not condition.check(event_data):
                return False
        if self.dest:  # None would be an internal transition; every table row names its target
            event_data.machine.set_state(self.dest, event_data.model)
        for callback in self.after:
            callback(event_data)
        return True


class _TableMachine(Machine):
    transition_cls = _TableTransition


@dataclass(frozen=True, slots=True)
class _Step:
    """The table's decision for one (state, event), resolved once: for rows, the machine's ``Transition``
    objects for that pair in the order ``Event._process`` tries them."""

    decision: dict[str, Any]
    kind: str  # "rows", "ignore" or "error"
    event: Event | None
    source: State
    transitions: tuple[Transition, ...]
    fired: str | None  # the timer whose firing this event is: it is no longer running
    takes_request: bool


class KindMachine:
    """The machine of one kind of transaction, shared by all transactions of that kind.

    ``lean=False`` builds a stock ``transitions.Machine`` (its own ``Transition.execute``); the tests use it
    as the reference the lean one must equal.
    """

    def __init__(self, model: dict[str, Any], timers: TimerConfig, lean: bool = True) -> None:
        self.model = model
        self.name: str = model["name"]
        self.server = self.name.endswith("server")  # a server transaction (RFC 3261 §17.2)
        self.timers = timers
        self.decisions: dict[str, dict[str, Any]] = model["decisions"]
        # A timer's initial value per kind of transport, evaluated once rather than per start.
        self._delays = {(timer, reliable): timers.value(timer, reliable) for timer in timers.timers
                        for reliable in (False, True)}
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
                            "after": [self._row_callback(row["actions"])],
                        }
                    )
        machine_cls = _TableMachine if lean else Machine
        self.machine = machine_cls(
            model=None, states=model["states"], transitions=transitions, initial=model["initial"],
            auto_transitions=False, send_event=True,
        )
        if lean:
            _check_lean(self.machine)
        self._steps: dict[str, dict[str, _Step]] = {
            state: {event: self._resolve(state, event, decision) for event, decision in by_event.items()}
            for state, by_event in self.decisions.items()
        }

    def _resolve(self, state: str, event: str, decision: dict[str, Any]) -> _Step:
        machine_event = self.machine.events.get(event)
        found = machine_event.transitions.get(state, []) if machine_event is not None else []
        return _Step(
            decision, decision["kind"], machine_event, self.machine.get_state(state), tuple(found),
            event[6:].upper() if event.startswith("timer_") else None, event in _REQUEST_EVENTS,
        )

    def new(self, reliable: bool, request: Any = None) -> Transaction:
        return Transaction(self.name, reliable, self.model["initial"], request)

    def decision(self, state: str, event: str) -> dict[str, Any]:
        return self.decisions[state][event]

    def fire(self, tx: Transaction, event: str, message: Any = None) -> list[Effect]:
        """One step: the effects of ``event`` in the transaction's current state."""
        return self._fire(tx, event, message, self._execute)

    def trigger(self, tx: Transaction, event: str, message: Any = None) -> list[Effect]:
        """``fire`` through the general path, ``machine.events[event].trigger``, for the tests to compare."""
        return self._fire(tx, event, message, self._trigger)

    def _fire(
        self, tx: Transaction, event: str, message: Any, run: Callable[[_Step, Transaction, dict[str, Any]], bool],
    ) -> list[Effect]:
        step = self._steps[tx.state].get(event)
        if step is None:
            raise ProtocolError(f"{self.name}: unknown event {event!r}")
        if step.kind != "rows":
            if step.kind == "ignore":
                return []
            decision = step.decision
            raise ProtocolError(f"{self.name}: {event} in {tx.state}: {decision['why']} ({decision['rfc']})")
        if step.takes_request and tx.request is None:
            tx.request = message
        effects: list[Effect] = []
        if not run(step, tx, {"message": message, "effects": effects, "fired": step.fired}):
            raise ProtocolError(f"{self.name}: no guard of ({tx.state}, {event}) holds")
        # A timer that fires is no longer running, unless its action restarts it.
        fired = step.fired
        if fired is not None and not any(type(e) is StartTimer and e.timer == fired for e in effects):
            tx.intervals.pop(fired, None)
        return effects

    def _execute(self, step: _Step, tx: Transaction, kwargs: dict[str, Any]) -> bool:
        # Event._process, for the pair's transitions found once: the first whose conditions hold runs.
        data = EventData(step.source, step.event, self.machine, tx, (), kwargs)
        for transition in step.transitions:
            data.transition = transition
            if transition.execute(data):
                data.result = True
                return True
        return False

    @staticmethod
    def _trigger(step: _Step, tx: Transaction, kwargs: dict[str, Any]) -> bool:
        assert step.event is not None  # a pair decided by rows has its event in the machine
        return bool(step.event.trigger(tx, **kwargs))

    # -- actions ------------------------------------------------------------------------------------
    def _row_callback(self, actions: list[str]) -> Callable[[EventData], None]:
        """One ``after`` callback per row, running its actions in the table's order (one callback rather
        than one per action: each costs transitions a resolve and a call)."""
        steps = [(getattr(self, "_do_" + name), timer) for name, _, timer in (a.partition(":") for a in actions)]

        def callback(event: EventData) -> None:
            tx, kwargs = event.model, event.kwargs
            message, effects, fired = kwargs["message"], kwargs["effects"], kwargs["fired"]
            for run, timer in steps:
                run(tx, message, timer, effects, fired)

        callback.__name__ = "+".join(actions) or "no_action"
        return callback

    def _do_send_request(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        effects.append(Send("request", tx.request))

    def _do_send_ack(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        effects.append(Send("ack", message))

    def _do_send_response(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        tx.last_response = message
        effects.append(Send("response", message))

    def _do_resend_response(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        if tx.last_response is None:
            effects.append(Send("100", tx.request))
        else:
            effects.append(Send("response", tx.last_response))

    def _do_send_100(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        effects.append(Send("100", tx.request))

    def _do_to_tu(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        effects.append(ToTU("message", message))

    def _do_timeout_to_tu(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        effects.append(ToTU("timeout"))

    def _do_transport_error_to_tu(
        self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None,
    ) -> None:
        effects.append(ToTU("transport_error"))

    def _do_terminate(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        for running in sorted(tx.intervals):
            if running != fired:
                effects.append(CancelTimer(running))
        tx.intervals.clear()
        effects.append(Terminated())

    def _do_start(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        delay = self._delays[timer, tx.reliable]
        if delay is not None:  # "none": the timer is not used on this transport
            tx.intervals[timer] = delay
            effects.append(StartTimer(timer, delay))

    def _do_cancel(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        if tx.intervals.pop(timer, None) is not None:
            effects.append(CancelTimer(timer))

    @staticmethod
    def _restart(tx: Transaction, timer: str, delay: int, effects: list[Effect]) -> None:
        tx.intervals[timer] = delay
        effects.append(StartTimer(timer, delay))

    def _do_double(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        if timer in tx.intervals:
            self._restart(tx, timer, 2 * tx.intervals[timer], effects)

    def _do_double_capped(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        if timer in tx.intervals:
            self._restart(tx, timer, min(2 * tx.intervals[timer], self.timers.base["T2"]), effects)

    def _do_set_t2(self, tx: Transaction, message: Any, timer: str, effects: list[Effect], fired: str | None) -> None:
        if timer in tx.intervals:
            self._restart(tx, timer, self.timers.base["T2"], effects)


def _check_lean(machine: Machine) -> None:
    """``_TableTransition.execute`` skips the callbacks the tables never configure: refuse a machine that
    has any, rather than silently not run them."""
    hooks = (machine.prepare_event, machine.finalize_event, machine.before_state_change, machine.after_state_change,
             machine.on_exception, machine.on_final)
    states = [callback for state in machine.states.values() for callback in (*state.on_enter, *state.on_exit)]
    steps = [callback for event in machine.events.values() for ts in event.transitions.values() for t in ts
             for callback in (*t.prepare, *t.before)]
    if any(hooks) or states or steps or machine.has_queue:
        raise ValueError(f"{machine.name}: the lean transitions execute only conditions and after callbacks")


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
