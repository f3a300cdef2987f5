"""The publication machine against its table (spec/machines/publication.toml, RFC 3903 §6).

* completeness (the h2 discipline): every (state, event) pair, with the timer due and early, moves as its
  row says, or is a declared ignore (no effect, no move) or error (ProtocolError, no move);
* random event sequences keep the timer, the store and the compositor consistent;
* the fast path equals ``trigger`` and a stock ``transitions.Machine``; the model is what the compiler
  writes; the family's vocabulary is implemented exactly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.fsm import FAMILIES, CancelTimer, ProtocolError, StartTimer, Terminated
from sipactors.fsm.base import load_model
from sipactors.fsm.compile import compile_models
from sipactors.fsm.publication import (
    PublicationMachine,
    PublicationState,
    RemovePublication,
    ToCompositor,
    publication_machine,
)
from sipactors.store.publications import Publication

REPO = Path(__file__).resolve().parents[2]
ALICE = "sip:alice@example.com"
NOW = 1_800_000_000.0


def _publication(tag: str, expires_in: float = 3600, body: bytes = b"<pidf/>") -> Publication:
    return Publication(ALICE, tag, body, NOW + expires_in, NOW)


def _placed(state: str) -> PublicationState:
    """A publication put in ``state``: an active one holds tag e1 (due at NOW + 60) and its timer."""
    p = publication_machine().new(ALICE)
    p.state = state
    if state == "active":
        p.publication = _publication("e1", 60)
        p.intervals["expiry"] = 60_000
    return p


MESSAGES: dict[str, Any] = {
    "publish": _publication("e2"), "refresh": _publication("e3"), "modify": _publication("e4", body=b"<new/>"),
    "restore": _publication("e5", 1800), "remove": None, "timer_expiry": None,
}
#: The wall clock at which each guard of timer_expiry holds for the active publication (due at NOW + 60).
CLOCKS = {"due": NOW + 60, "early": NOW + 59.5}


def _pairs() -> list[tuple[str, str, str]]:
    model = publication_machine().model
    return [(s, e, clock) for s in model["states"] for e in model["events"] for clock in CLOCKS]


@pytest.mark.parametrize(("state", "event", "clock"), _pairs())
def test_every_state_event_pair_moves_as_its_table_says(state: str, event: str, clock: str) -> None:
    machine = publication_machine()
    decision = machine.decision(state, event)
    p = _placed(state)
    before = p.publication
    now = CLOCKS[clock]
    if decision["kind"] == "ignore":
        assert machine.fire(p, event, MESSAGES[event], now) == [] and p.state == state and p.publication is before
        return
    if decision["kind"] == "error":
        with pytest.raises(ProtocolError, match="RFC 3903"):
            machine.fire(p, event, MESSAGES[event], now)
        assert p.state == state and p.publication is before
        return
    (row,) = [r for r in decision["rows"] if r["guard"] in ("", clock)]
    effects = machine.fire(p, event, MESSAGES[event], now)
    actions = row["actions"]
    assert p.state == row["target"]
    final = row["target"] == machine.model["final"]
    assert (Terminated() in effects) == ("terminate" in actions) == final
    removed = [e for e in effects if type(e) is RemovePublication]
    assert removed == ([RemovePublication(ALICE, "e1", NOW + 60)] if "store_remove" in actions else [])
    told = [e for e in effects if type(e) is ToCompositor]
    previous = before.etag if before is not None else None
    assert told == ([ToCompositor(ALICE, previous, p.publication)] if "tell_compositor" in actions else [])
    if "adopt" in actions:  # stored by the role before: the machine writes nothing
        assert p.publication is MESSAGES[event]
        assert StartTimer("expiry", round((MESSAGES[event].expires - now) * 1000)) in effects
    if "restart:expiry" in actions and event == "timer_expiry":  # early: again for the time left
        assert effects == [StartTimer("expiry", 500)] and p.publication is before
    if final:
        assert p.intervals == {} and p.publication is None


def test_every_successful_step_moves_the_publication_to_its_new_entity_tag_rfc3903_6_step_6() -> None:
    machine = publication_machine()
    p = machine.new(ALICE)
    machine.fire(p, "publish", _publication("a"), NOW)
    effects = machine.fire(p, "refresh", _publication("b", 120), NOW + 10)
    assert effects == [CancelTimer("expiry"), StartTimer("expiry", 110_000),
                       ToCompositor(ALICE, "a", _publication("b", 120))]
    assert machine.fire(p, "remove", None, NOW + 20) == [CancelTimer("expiry"), ToCompositor(ALICE, "b", None), Terminated()]


_EVENTS = st.sampled_from(
    [(name, MESSAGES[name]) for name in ("publish", "refresh", "modify", "restore", "remove")]
    + [("timer_expiry", None)] * 2
)


@given(st.lists(st.tuples(_EVENTS, st.sampled_from([NOW, NOW + 59.5, NOW + 4000])), max_size=20))
def test_random_event_sequences_keep_timer_store_and_compositor_consistent(events: list[tuple[tuple[str, Any], float]]) -> None:
    machine = publication_machine()
    p = machine.new(ALICE)
    running: set[str] = set()
    stored: Publication | None = None
    told: Publication | None = None
    for (event, message), now in events:
        before = p.state
        try:
            effects = machine.fire(p, event, message, now)
        except ProtocolError:
            assert p.state == before
            continue
        if event == "timer_expiry":
            running.discard("expiry")
        if event in ("publish", "refresh", "modify", "restore") and effects:
            stored = message  # stored by the role (or read back) before the machine heard of it
        if event == "remove" and effects:
            stored = None
        for effect in effects:
            if isinstance(effect, StartTimer):
                running.add(effect.timer)
            elif isinstance(effect, CancelTimer):
                assert effect.timer in running
                running.discard(effect.timer)
            elif isinstance(effect, RemovePublication):
                assert stored is not None and stored.expires <= now
                stored = None
            elif isinstance(effect, ToCompositor):
                told = effect.publication
        assert set(p.intervals) == running == ({"expiry"} if p.state == "active" else set())
        assert stored == p.publication == told
        if before == machine.model["final"]:
            assert effects == []


STOCK = PublicationMachine(load_model("publication"), lean=False)


@pytest.mark.parametrize(("state", "event", "clock"), _pairs())
def test_fast_path_equals_trigger_and_stock_transitions(state: str, event: str, clock: str) -> None:
    machine = publication_machine()
    outcomes = []
    for step in (machine.fire, machine.trigger, STOCK.trigger):
        p = _placed(state)
        try:
            outcomes.append(("ok", step(p, event, MESSAGES[event], CLOCKS[clock]), p.state, p.publication, p.intervals))
        except ProtocolError as error:
            outcomes.append(("error", str(error), p.state, p.publication, p.intervals))
    assert outcomes[0] == outcomes[1] == outcomes[2]


def test_the_family_is_implemented_and_the_model_is_generated() -> None:
    assert PublicationMachine.missing() == []
    assert FAMILIES["publication"] is PublicationMachine.family
    files = compile_models(REPO / "spec" / "machines")
    assert (REPO / "models" / "publication.json").read_text(encoding="utf-8") == files["publication.json"]
    assert (REPO / "models" / "publication.mmd").read_text(encoding="utf-8") == files["publication.mmd"]
