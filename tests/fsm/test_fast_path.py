"""``KindMachine.fire`` (the pair's ``Transition`` objects resolved once, executed by ``_TableTransition``)
against the general path (``machine.events[event].trigger``) and against a stock ``transitions.Machine``
built from the same model: for every (kind, state, event) pair, on both kinds of transport, with every
timer of the kind running or none, the same state after, effects, running timers, request and last
response, or the same ``ProtocolError``."""

from __future__ import annotations

from typing import Any

import pytest

from sipactors.fsm import KINDS, KindMachine, ProtocolError, TimerConfig, Transaction, kind_machine
from sipactors.fsm.base import _check_lean
from sipactors.fsm.base import load_model as _model

STOCK = {kind: KindMachine(_model(kind), TimerConfig.default(), lean=False) for kind in KINDS}


def _placed(machine: KindMachine, state: str, reliable: bool, timers: bool, request: Any) -> Transaction:
    tx = machine.new(reliable, request=request)
    tx.state = state
    tx.last_response = "LAST RESPONSE" if state != machine.model["initial"] else None
    if timers:
        for timer in machine.model["timers"]:
            value = machine.timers.value(timer, reliable)
            if value is not None:
                tx.intervals[timer] = value
    return tx


def _outcome(step: Any, machine: KindMachine, tx: Transaction, event: str) -> tuple[Any, ...]:
    try:
        effects = step(tx, event, "MESSAGE")
    except ProtocolError as error:
        return ("error", str(error), tx.state, tx.intervals, tx.request, tx.last_response)
    return ("ok", effects, tx.state, tx.intervals, tx.request, tx.last_response)


def _cases() -> list[tuple[str, str, str]]:
    return [(kind, state, event) for kind in KINDS for state in _model(kind)["states"] for event in _model(kind)["events"]]


@pytest.mark.parametrize("request_known", [True, False], ids=["request", "no-request"])
@pytest.mark.parametrize("timers", [True, False], ids=["timers", "no-timers"])
@pytest.mark.parametrize("reliable", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(("kind", "state", "event"), _cases())
def test_fast_path_equals_trigger_and_stock_transitions(
    kind: str, state: str, event: str, reliable: bool, timers: bool, request_known: bool,
) -> None:
    lean, stock = kind_machine(kind), STOCK[kind]
    request = "REQUEST" if request_known else None
    outcomes = [
        _outcome(machine_step, machine, _placed(machine, state, reliable, timers, request), event)
        for machine, machine_step in ((lean, lean.fire), (lean, lean.trigger), (stock, stock.trigger))
    ]
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_the_fast_path_runs_the_machines_own_transitions() -> None:
    """What ``fire`` executes is the ``transitions`` Machine's: its Transition objects for the pair."""
    machine = kind_machine("non_invite_server")
    for state, by_event in machine._steps.items():
        for event, step in by_event.items():
            expected = machine.machine.events[event].transitions.get(state, []) if step.kind == "rows" else []
            assert list(step.transitions) == list(expected)


def test_a_lean_machine_refuses_callbacks_it_would_not_run() -> None:
    machine = KindMachine(_model("non_invite_server"), TimerConfig.default())
    machine.machine.before_state_change = [lambda event: None]
    with pytest.raises(ValueError, match="lean"):
        _check_lean(machine.machine)
