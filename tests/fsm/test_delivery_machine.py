"""The stored-message delivery machine against its table (spec/machines/delivery.toml, RFC 3428 §4, §7, §8).

* completeness (the h2 discipline): every (state, event) pair moves as its row says and produces the
  effects its actions name, or is a declared ignore (no effect, no move) or error (ProtocolError, no move);
* the fast path equals ``trigger`` and a stock ``transitions.Machine``;
* the family: the machine implements exactly the delivery vocabulary; the model is generated with the others.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sipactors.fsm import FAMILIES, ProtocolError, Terminated
from sipactors.fsm.base import load_model
from sipactors.fsm.compile import compile_models
from sipactors.fsm.delivery import (
    DeleteStored,
    DeliveryMachine,
    DeliveryState,
    Dropped,
    Kept,
    SendMessage,
    delivery_machine,
)
from sipactors.store.messages import StoredMessage

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "spec" / "machines"
MODEL = load_model("delivery")
MESSAGE = StoredMessage("sip:bob@example.com", "<sip:alice@example.com>", "<sip:bob@example.com>",
                        "Fri, 15 Jan 2027 08:00:00 GMT", "text/plain", b"hi", None, 1.0, 2.0, id=7)
EFFECT_OF = {"send_message": SendMessage(MESSAGE), "delete_stored": DeleteStored(MESSAGE), "keep": Kept(MESSAGE),
             "drop": Dropped(MESSAGE), "terminate": Terminated()}
PAIRS = [(state, event) for state in MODEL["states"] for event in MODEL["events"]]


@pytest.mark.parametrize(("state", "event"), PAIRS)
def test_every_pair_is_decided_as_the_table_says(state: str, event: str) -> None:
    machine = delivery_machine()
    d = DeliveryState(MESSAGE, state)
    decision = machine.decision(state, event)
    if decision["kind"] == "error":
        with pytest.raises(ProtocolError, match="RFC"):
            machine.fire(d, event)
        assert d.state == state
        return
    effects = machine.fire(d, event)
    if decision["kind"] == "ignore":
        assert effects == [] and d.state == state
        return
    (row,) = decision["rows"]
    assert d.state == row["target"]
    assert effects == [EFFECT_OF[action] for action in row["actions"]]


def test_a_message_leaves_the_store_only_when_delivered_refused_or_expired_rfc3428_7() -> None:
    deleting = {(state, event) for state, event in PAIRS
                if MODEL["decisions"][state][event]["kind"] == "rows"
                and "delete_stored" in MODEL["decisions"][state][event]["rows"][0]["actions"]}
    assert deleting == {("sending", "accepted"), ("sending", "refused"), ("queued", "expired")}
    (kept,) = MODEL["decisions"]["sending"]["deferred"]["rows"]
    assert kept["target"] == "queued" and kept["actions"] == ["keep"]


def test_one_transaction_at_a_time_rfc3428_8() -> None:
    machine = delivery_machine()
    d = machine.new(MESSAGE)
    assert machine.fire(d, "send") == [SendMessage(MESSAGE)]
    with pytest.raises(ProtocolError, match="RFC 3428 §8"):
        machine.fire(d, "send")


STOCK = DeliveryMachine(MODEL, lean=False)


@pytest.mark.parametrize(("state", "event"), PAIRS)
def test_fast_path_equals_trigger_and_stock_transitions(state: str, event: str) -> None:
    outcomes = []
    for step in (delivery_machine().fire, delivery_machine().trigger, STOCK.trigger):
        d = DeliveryState(MESSAGE, state)
        try:
            outcomes.append(("ok", d.state, step(d, event)))
        except ProtocolError as error:
            outcomes.append(("error", d.state, str(error)))
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_the_delivery_machine_implements_exactly_its_vocabulary() -> None:
    assert DeliveryMachine.missing() == []
    assert FAMILIES["delivery"] is DeliveryMachine.family


def test_the_delivery_model_is_generated_with_the_others() -> None:
    files = compile_models(SPEC)
    assert (REPO / "models" / "delivery.json").read_text(encoding="utf-8") == files["delivery.json"]
    assert '"family": "delivery"' in files["delivery.json"]
