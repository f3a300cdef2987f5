"""The subscription and dialog machines against their tables (spec/machines/subscription.toml, RFC 6665
§4.2; dialog.toml, RFC 3261 §12).

* completeness (the h2 discipline): every (state, event) pair, under every guard of the family, moves as
  its row says, or is a declared ignore (no effect, no move) or error (ProtocolError, no move); every row
  is exercised;
* the fast path equals ``trigger`` and a stock ``transitions.Machine``;
* the dialog's CSeq rules: local CSeq up by one per request sent (§12.2.1.1), a lower remote CSeq is
  refused with 500 (§12.2.2), a re-SUBSCRIBE's Contact refreshes the remote target.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.fsm import FAMILIES, CancelTimer, ProtocolError, StartTimer, Terminated
from sipactors.fsm.base import load_model
from sipactors.fsm.effects import Answer, DeleteSubscription, NextNotify, Notify, SaveSubscription, ToPackage
from sipactors.fsm.subscription import (
    DialogRequest,
    DialogState,
    Grant,
    SubscriptionMachine,
    SubscriptionState,
    dialog_machine,
    subscription_machine,
)
from sipactors.roles.events import Authorization

NOW = 1_800_000_000.0
AUTHORIZATIONS = {"allowed": Authorization.ALLOW, "awaiting": Authorization.PENDING, "blocked": Authorization.BLOCK}


def _subscription(state: str) -> SubscriptionState:
    s = subscription_machine().new()
    s.state = state
    if state in ("pending", "active"):
        s.authorization = Authorization.ALLOW if state == "active" else Authorization.PENDING
        s.expires = NOW + 600
        s.intervals["expiry"] = 600_000
    return s


def _dialog(state: str) -> DialogState:
    d = dialog_machine().new_dialog("call", "ours", "theirs")
    d.state = state
    if state == "confirmed":
        d.remote_target, d.local_cseq, d.remote_cseq = "sip:alice@192.0.2.1", 4, 10
    return d


def _message(machine: SubscriptionMachine, event: str, guard: str) -> Any:
    if machine.name == "dialog":
        if event in ("create", "request"):
            return DialogRequest(9 if guard == "out_of_order" else 11, "sip:alice@192.0.2.7", ("sip:p.example.com;lr",))
        return DialogState("call", "ours", "theirs", remote_target="sip:alice@192.0.2.1", local_cseq=7, remote_cseq=3)
    return Grant(AUTHORIZATIONS.get(guard, Authorization.ALLOW), NOW + 300)


def _cases() -> list[tuple[str, str, str, str]]:
    cases = []
    for machine in (subscription_machine(), dialog_machine()):
        for state in machine.model["states"]:
            for event in machine.model["events"]:
                decision = machine.decision(state, event)
                guards = [row["guard"] for row in decision["rows"]] if decision["kind"] == "rows" else [""]
                cases += [(machine.name, state, event, guard) for guard in guards]
    return cases


def _machine(name: str) -> SubscriptionMachine:
    return subscription_machine() if name == "subscription" else dialog_machine()


@pytest.mark.parametrize(("name", "state", "event", "guard"), _cases())
def test_every_state_event_pair_and_every_row_moves_as_its_table_says(name: str, state: str, event: str, guard: str) -> None:
    machine = _machine(name)
    obj = _subscription(state) if name == "subscription" else _dialog(state)
    decision = machine.decision(state, event)
    message = _message(machine, event, guard)
    if decision["kind"] == "ignore":
        assert machine.fire(obj, event, message, NOW) == [] and obj.state == state
        return
    if decision["kind"] == "error":
        with pytest.raises(ProtocolError):
            machine.fire(obj, event, message, NOW)
        assert obj.state == state
        return
    (row,) = [r for r in decision["rows"] if r["guard"] == guard]
    effects = machine.fire(obj, event, message, NOW)
    assert obj.state == row["target"]
    actions = row["actions"]
    assert (Terminated() in effects) == ("terminate" in actions)
    assert ("terminate" in actions) == (row["target"] == machine.model["final"])
    kinds = [type(e) for e in effects]
    assert (SaveSubscription in kinds) == ("save" in actions)
    assert (DeleteSubscription in kinds) == ("delete" in actions)
    assert (NextNotify in kinds) == ("next_notify" in actions)
    assert (Answer(200) in effects) == ("accept" in actions)
    assert (Answer(403) in effects) == ("refuse" in actions)
    assert (Answer(500) in effects) == ("reject_500" in actions)
    assert (ToPackage("started") in effects) == ("tell_started" in actions)
    assert any(type(e) is ToPackage and e.what == "ended" for e in effects) == ("tell_ended" in actions)
    notifies = [e for e in effects if type(e) is Notify]
    finals = {f"notify_{e.reason}" for e in notifies if e.state == "terminated"}
    assert finals == {a for a in actions if a.startswith("notify_")}
    assert [e.state for e in notifies if e.state != "terminated"] == ([row["target"]] if "notify" in actions else [])
    assert bool([e for e in effects if type(e) is StartTimer]) == any(a.startswith(("start:", "restart:")) for a in actions)
    if any(a.startswith("cancel:") for a in actions):
        assert CancelTimer("expiry") in effects
    if "terminate" in actions:
        assert obj.intervals == {}


@pytest.mark.parametrize("name", ["subscription", "dialog"])
def test_the_lean_machine_equals_trigger_and_stock_transitions(name: str) -> None:
    lean, stock = _machine(name), SubscriptionMachine(load_model(name), lean=False)
    for _, state, event, guard in [c for c in _cases() if c[0] == name]:
        results = []
        for machine, run in ((lean, lean.fire), (lean, lean.trigger), (stock, stock.fire)):
            obj = _subscription(state) if name == "subscription" else _dialog(state)
            try:
                effects: Any = run(obj, event, _message(machine, event, guard), NOW)
            except ProtocolError as error:
                effects = str(error)
            results.append((effects, obj.state, dict(obj.intervals)))
        assert results[0] == results[1] == results[2], (state, event, guard)


def test_the_family_is_registered_and_implemented() -> None:
    assert SubscriptionMachine.missing() == []
    assert FAMILIES["subscription"] is SubscriptionMachine.family
    assert subscription_machine().model["family"] == dialog_machine().model["family"] == "subscription"


def test_local_cseq_increases_by_one_per_request_rfc3261_12_2_1_1() -> None:
    machine, d = dialog_machine(), _dialog("init")
    machine.fire(d, "create", DialogRequest(1, "sip:alice@192.0.2.1", ("sip:p1;lr", "sip:p2;lr")))
    assert (d.remote_cseq, d.local_cseq, d.route_set) == (1, 0, ("sip:p1;lr", "sip:p2;lr"))
    for expected in (1, 2, 3):
        machine.fire(d, "send_request")
        assert d.local_cseq == expected


def test_lower_remote_cseq_gets_500_and_changes_nothing_rfc3261_12_2_2() -> None:
    machine, d = dialog_machine(), _dialog("confirmed")
    assert machine.fire(d, "request", DialogRequest(9, "sip:alice@192.0.2.99")) == [Answer(500)]
    assert (d.remote_cseq, d.remote_target) == (10, "sip:alice@192.0.2.1")
    assert machine.fire(d, "request", DialogRequest(10)) == [Answer(500)]  # not above: refused as well


def test_a_resubscribe_refreshes_the_remote_target_rfc3261_12_2_2() -> None:
    machine, d = dialog_machine(), _dialog("confirmed")
    assert machine.fire(d, "request", DialogRequest(11, "sip:alice@192.0.2.99")) == []
    assert (d.remote_cseq, d.remote_target) == (11, "sip:alice@192.0.2.99")
    machine.fire(d, "request", DialogRequest(12, None))  # no Contact: the target stays
    assert d.remote_target == "sip:alice@192.0.2.99"


EVENTS = subscription_machine().model["events"]


@given(st.lists(st.tuples(st.sampled_from(EVENTS), st.sampled_from(sorted(AUTHORIZATIONS))), max_size=30))
def test_random_event_sequences_keep_one_final_notify_and_timer_consistent(steps: list[tuple[str, str]]) -> None:
    """Whatever happens, at most one terminated NOTIFY is asked for, the expiry runs exactly while the
    subscription is pending or active, and nothing moves after terminated."""
    machine, s = subscription_machine(), subscription_machine().new()
    finals = 0
    for event, guard in steps:
        before = s.state
        try:
            effects = machine.fire(s, event, Grant(AUTHORIZATIONS[guard], NOW + 60), NOW)
        except ProtocolError:
            assert s.state == before
            continue
        finals += sum(1 for e in effects if type(e) is Notify and e.state == "terminated")
        if before == "terminated":
            assert effects == []
        assert ("expiry" in s.intervals) == (s.state in ("pending", "active"))
    assert finals <= 1
