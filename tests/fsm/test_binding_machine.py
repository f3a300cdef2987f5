"""The registration binding machine against its table (spec/machines/binding.toml, RFC 3261 §10.2-§10.3).

* completeness (the h2 discipline): every (state, event) pair, with an in-order and an out-of-order
  update, moves as its row says, or is a declared ignore (no effect, no move) or error (ProtocolError,
  no move); random event sequences keep the timer and the store consistent;
* the fast path equals ``trigger`` and a stock ``transitions.Machine``;
* the family language: every family's machine implements its vocabulary, and the compiler refuses a
  binding table naming an unknown action, a transaction action, guard or timer, naming the row.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.fsm import (
    FAMILIES,
    BindingMachine,
    BindingState,
    CancelTimer,
    KindMachine,
    ProtocolError,
    Refused,
    Removal,
    RemoveBinding,
    StartTimer,
    Terminated,
    ToRegistrar,
    binding_machine,
)
from sipactors.fsm.base import load_model
from sipactors.fsm.compile import compile_models
from sipactors.fsm.tables import TableError, load_machine, load_timers
from sipactors.store import Binding

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "spec" / "machines"
AOR, CONTACT = "sip:alice@example.com", "sip:alice@192.0.2.4:5060"
NOW = 1_800_000_000.0  # wall clock, POSIX seconds


def _binding(cseq: int, expires_in: float = 3600, call_id: str = "c1") -> Binding:
    return Binding(AOR, CONTACT, NOW + expires_in, call_id, cseq)


def _placed(state: str) -> BindingState:
    """A binding put in ``state`` as if it had got there: active ones hold a binding of CSeq 5 and its timer."""
    machine = binding_machine()
    b = machine.new(AOR, CONTACT)
    b.state = state
    if state == "active":
        b.binding = _binding(5)
        b.intervals["expiry"] = 3_600_000
    return b


#: Per event, what it carries: in order (another Call-ID or a higher CSeq) and out of order (same Call-ID, lower CSeq).
MESSAGES: dict[str, dict[str, Any]] = {
    "register": {"in_order": _binding(6, 7200), "out_of_order": _binding(4, 7200)},
    "unregister": {"in_order": Removal("c1", 6), "out_of_order": Removal("c1", 5)},
    "restore": {"in_order": _binding(5, 1800), "out_of_order": _binding(5, 1800)},
    "timer_expiry": {"in_order": None, "out_of_order": None},
}


def _pairs() -> list[tuple[str, str, str]]:
    model = binding_machine().model
    return [(s, e, order) for s in model["states"] for e in model["events"] for order in ("in_order", "out_of_order")]


@pytest.mark.parametrize(("state", "event", "order"), _pairs())
def test_every_state_event_pair_moves_as_its_table_says(state: str, event: str, order: str) -> None:
    machine = binding_machine()
    decision = machine.decision(state, event)
    b = _placed(state)
    before = b.binding
    message = MESSAGES[event][order]
    if decision["kind"] == "ignore":
        assert machine.fire(b, event, message, NOW) == [] and b.state == state and b.binding is before
        return
    if decision["kind"] == "error":
        with pytest.raises(ProtocolError, match="RFC 3261"):
            machine.fire(b, event, message, NOW)
        assert b.state == state and b.binding is before
        return
    rows = [r for r in decision["rows"] if r["guard"] in ("", order)]
    (row,) = rows
    effects = machine.fire(b, event, message, NOW)
    assert b.state == row["target"]
    actions = row["actions"]
    final = row["target"] == machine.model["final"]
    assert (Terminated() in effects) == ("terminate" in actions) == final
    removed = [e for e in effects if type(e) is RemoveBinding]
    assert bool(removed) == ("store_remove" in actions)
    if removed:  # only the binding whose interval ran out: a refresh committed meanwhile has a later expiry
        assert before is not None and removed == [RemoveBinding(AOR, CONTACT, before.expires)]
    assert (ToRegistrar(AOR, CONTACT, b.binding) in effects) == ("tell_registrar" in actions)
    assert any(type(e) is Refused for e in effects) == ("refuse" in actions)
    if "refuse" in actions:  # "the update MUST be aborted": nothing else happens
        assert len(effects) == 1 and b.binding is before
    if "adopt" in actions:  # the registrar committed it (or the store kept it): nothing is written
        assert b.binding is message
        assert StartTimer("expiry", round((message.expires - NOW) * 1000)) in effects
    if "store_remove" in actions or "forget" in actions:
        assert b.binding is None
    if final:
        assert b.intervals == {}


def test_the_guards_follow_call_id_then_cseq_rfc3261_10_3_step_7() -> None:
    machine = binding_machine()
    for update, in_order in [(_binding(6), True), (_binding(5), False), (_binding(1, call_id="other"), True)]:
        b = _placed("active")
        effects = machine.fire(b, "register", update, NOW)
        assert (b.binding is update) == in_order
        assert any(type(e) is Refused for e in effects) == (not in_order)


def test_a_refresh_restarts_the_expiry_for_the_new_interval_rfc3261_10_2_4() -> None:
    machine = binding_machine()
    b = machine.new(AOR, CONTACT)
    assert machine.fire(b, "register", _binding(1, 60), NOW)[0] == StartTimer("expiry", 60_000)
    effects = machine.fire(b, "register", _binding(2, 3600), NOW + 30)
    assert effects[:2] == [CancelTimer("expiry"), StartTimer("expiry", 3_570_000)] and b.binding == _binding(2, 3600)


def test_a_restored_binding_runs_for_what_is_left_and_one_already_over_at_once() -> None:
    machine = binding_machine()
    b = machine.new(AOR, CONTACT)
    assert machine.fire(b, "restore", _binding(3, 100), NOW + 40) == [
        StartTimer("expiry", 60_000), ToRegistrar(AOR, CONTACT, _binding(3, 100)),
    ]  # nothing written: it came from the store
    late = machine.new(AOR, CONTACT)
    assert machine.fire(late, "restore", _binding(3, 100), NOW + 200)[0] == StartTimer("expiry", 0)


def test_a_binding_of_another_aor_is_refused() -> None:
    machine = binding_machine()
    with pytest.raises(ValueError, match="sip:bob"):
        machine.fire(machine.new(AOR, CONTACT), "register", Binding("sip:bob@example.com", CONTACT, NOW + 60, "c", 1), NOW)


_EVENTS = st.sampled_from(
    [("register", _binding(n, 60 * n)) for n in (1, 2, 3)] + [("register", _binding(9, 60, "other"))]
    + [("unregister", Removal("c1", n)) for n in (1, 4)] + [("restore", _binding(2, 30)), ("timer_expiry", None)]
)


@given(st.lists(_EVENTS, max_size=20))
def test_random_event_sequences_keep_timer_store_and_registrar_consistent(events: list[tuple[str, Any]]) -> None:
    """From the start, any sequence of events: the timer the machine says runs is the one started and not
    cancelled or fired; a store that the registrar commits each accepted REGISTER to, and that carries
    out the machine's effects, holds exactly the machine's binding; the registrar's last word is that
    binding; nothing happens after Terminated."""
    machine = binding_machine()
    b = machine.new(AOR, CONTACT)
    running: set[str] = set()
    stored: Binding | None = None
    told: Binding | None = None
    for event, message in events:
        before = b.state
        try:
            effects = machine.fire(b, event, message, NOW)
        except ProtocolError:
            assert b.state == before
            continue
        if event == "timer_expiry":
            running.discard("expiry")
        if event == "restore" and effects:
            stored = message  # it came from the store
        if event in ("register", "unregister") and effects and not any(type(e) is Refused for e in effects):
            stored = message if event == "register" else None  # committed by the registrar, adopted here
        for effect in effects:
            if isinstance(effect, StartTimer):
                running.add(effect.timer)
            elif isinstance(effect, CancelTimer):
                assert effect.timer in running
                running.discard(effect.timer)
            elif isinstance(effect, RemoveBinding):
                assert stored is not None and stored.expires <= effect.expires
                stored = None
            elif isinstance(effect, ToRegistrar):
                told = effect.binding
        assert set(b.intervals) == running
        assert running == ({"expiry"} if b.state == "active" else set())
        assert stored == b.binding
        assert told == b.binding
        if before == machine.model["final"]:
            assert effects == []
        if Terminated() in effects:
            assert b.state == "removed" and running == set()


# ------------------------------------------------------------------------------------ the fast path
STOCK = BindingMachine(load_model("binding"), lean=False)


@pytest.mark.parametrize(("state", "event", "order"), _pairs())
def test_fast_path_equals_trigger_and_stock_transitions(state: str, event: str, order: str) -> None:
    machine = binding_machine()
    outcomes = []
    for step in (machine.fire, machine.trigger, STOCK.trigger):
        b = _placed(state)
        try:
            outcomes.append(("ok", step(b, event, MESSAGES[event][order], NOW), b.state, b.binding, b.intervals))
        except ProtocolError as error:
            outcomes.append(("error", str(error), b.state, b.binding, b.intervals))
    assert outcomes[0] == outcomes[1] == outcomes[2]


# ---------------------------------------------------------------------------------------- families
@pytest.mark.parametrize("machine_cls", [KindMachine, BindingMachine], ids=lambda c: c.family.name)
def test_every_family_machine_implements_exactly_its_vocabulary(machine_cls: type) -> None:
    assert machine_cls.missing() == []
    assert FAMILIES[machine_cls.family.name] is machine_cls.family


def test_a_model_of_another_family_is_refused() -> None:
    with pytest.raises(ValueError, match="a transaction model, not a binding one"):
        BindingMachine(load_model("non_invite_server"))


def test_the_binding_model_is_generated_with_the_others() -> None:
    files = compile_models(SPEC)
    assert {"binding.json", "binding.mmd"} <= set(files)
    assert (REPO / "models" / "binding.json").read_text(encoding="utf-8") == files["binding.json"]
    assert '"family": "binding"' in files["binding.json"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace('actions = ["refuse"]', 'actions = ["explode"]', 1),
         "action 'explode' has no implementation in the binding family"),
        (lambda t: t.replace('actions = ["refuse"]', 'actions = ["send_response"]', 1),
         "action 'send_response' has no implementation in the binding family"),
        (lambda t: t.replace('"start:expiry"', '"start:J"', 1), "names timer 'J', not one of the binding family"),
        (lambda t: t.replace('"restart:expiry"', '"double:expiry"', 1), "no timer action 'double' in the binding family"),
        (lambda t: t.replace('guard = "in_order"', 'guard = "reliable"', 1), "unknown guard 'reliable' in the binding family"),
        (lambda t: t.replace('family = "binding"', 'family = "dialog"', 1), "unknown family 'dialog'"),
        (lambda t: t.replace('family = "binding"\n', "", 1), "has no implementation in the transaction family"),
        (lambda t: t.replace('events = ["timer_expiry"], why', 'events = [], why', 1), "(init, timer_expiry) is undecided"),
    ],
    ids=["unknown action", "transaction action", "transaction timer", "transaction timer action", "transaction guard",
         "unknown family", "no family: transaction", "undecided pair"],
)
def test_binding_table_faults_are_compile_errors_naming_the_row(tmp_path: Path, change: Any, message: str) -> None:
    table = (SPEC / "binding.toml").read_text(encoding="utf-8")
    broken = change(table)
    assert broken != table
    (tmp_path / "binding.toml").write_text(broken, encoding="utf-8")
    with pytest.raises(TableError) as info:
        load_machine(tmp_path / "binding.toml", load_timers(SPEC / "timers.toml"))
    assert message in str(info.value) and "binding.toml" in str(info.value)
    if "row" in message or "action" in message or "guard" in message:
        assert " row " in str(info.value)
