"""The transaction machines against their tables (spec/machines/, RFC 3261 §17 as amended by RFC 6026).

* completeness (the h2 discipline): every (state, event) pair moves as its row says, or is a declared
  ignore (no effect, no move) or error (ProtocolError, no move);
* the timer schedules the RFC gives, and the RFC 6026 behaviour of the Accepted states;
* the model compiler: no drift, and a clear error naming the row for every kind of table fault.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.fsm import KINDS, CancelTimer, ProtocolError, Send, StartTimer, Terminated, ToTU, kind_machine
from sipactors.fsm.compile import compile_models
from sipactors.fsm.tables import TableError, load_machine, load_timers

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "spec" / "machines"
MODELS = REPO / "models"


def _pairs() -> list[tuple[str, str, str]]:
    return [
        (kind, state, event)
        for kind in KINDS
        for state in kind_machine(kind).model["states"]
        for event in kind_machine(kind).model["events"]
    ]


def _placed(kind: str, state: str, reliable: bool):  # type: ignore[no-untyped-def]
    """A transaction put in ``state`` with the timers of that state running, as if it had got there."""
    machine = kind_machine(kind)
    tx = machine.new(reliable, request="REQUEST")
    tx.state = state
    tx.last_response = "LAST RESPONSE"
    for timer in machine.model["timers"]:
        value = machine.timers.value(timer, reliable)
        if value is not None:
            tx.intervals[timer] = value
    return tx


@pytest.mark.parametrize("reliable", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(("kind", "state", "event"), _pairs())
def test_every_state_event_pair_moves_as_its_table_says(kind: str, state: str, event: str, reliable: bool) -> None:
    machine = kind_machine(kind)
    decision = machine.decision(state, event)
    tx = _placed(kind, state, reliable)
    if decision["kind"] == "ignore":
        assert machine.fire(tx, event, "MESSAGE") == [] and tx.state == state
        return
    if decision["kind"] == "error":
        with pytest.raises(ProtocolError):
            machine.fire(tx, event, "MESSAGE")
        assert tx.state == state
        return
    (row,) = [r for r in decision["rows"] if r["guard"] in ("", "reliable" if reliable else "unreliable")]
    effects = machine.fire(tx, event, "MESSAGE")
    assert tx.state == row["target"]
    actions = row["actions"]
    assert (Terminated() in effects) == ("terminate" in actions) == (row["target"] == machine.model["final"])
    assert (ToTU("message", "MESSAGE") in effects) == ("to_tu" in actions)
    assert (ToTU("timeout") in effects) == ("timeout_to_tu" in actions)
    assert (ToTU("transport_error") in effects) == ("transport_error_to_tu" in actions)
    assert (Send("request", "REQUEST") in effects) == ("send_request" in actions)
    assert (Send("ack", "MESSAGE") in effects) == ("send_ack" in actions)
    for action in actions:
        name, _, timer = action.partition(":")
        started = [e for e in effects if isinstance(e, StartTimer) and e.timer == timer]
        if name == "start":
            assert bool(started) == (machine.timers.value(timer, reliable) is not None)
        elif name in ("double", "double_capped", "set_t2"):
            assert len(started) == (1 if timer in tx.intervals else 0)
        elif name == "cancel":
            assert CancelTimer(timer) in effects or machine.timers.value(timer, reliable) is None
    if row["target"] == machine.model["final"]:
        assert tx.intervals == {}


@given(st.sampled_from(KINDS), st.booleans(), st.data())
def test_random_event_sequences_keep_the_machine_consistent(kind: str, reliable: bool, data: st.DataObject) -> None:
    """From the start, any sequence of events the table allows: the timers the machine says are running
    are exactly those started and not cancelled, fired or ended; nothing happens after Terminated."""
    machine = kind_machine(kind)
    tx = machine.new(reliable)
    running: set[str] = set()
    first = next(e for e, d in machine.decisions[machine.model["initial"]].items() if d["kind"] == "rows")
    events = [first] + data.draw(st.lists(st.sampled_from(machine.model["events"]), max_size=25))
    for event in events:
        before = tx.state
        try:
            effects = machine.fire(tx, event, "MESSAGE")
        except ProtocolError:
            assert tx.state == before
            continue
        if event.startswith("timer_"):
            running.discard(event[6:].upper())
        for effect in effects:
            if isinstance(effect, StartTimer):
                running.add(effect.timer)
            elif isinstance(effect, CancelTimer):
                assert effect.timer in running, f"{kind}: cancels {effect.timer}, which is not running"
                running.discard(effect.timer)
        assert set(tx.intervals) == running
        if before == machine.model["final"]:
            assert effects == []
        if Terminated() in effects:
            assert tx.state == machine.model["final"] and running == set()


def _fire_all(kind: str, reliable: bool, *events: tuple[str, object]) -> list[list[object]]:
    machine = kind_machine(kind)
    tx = machine.new(reliable)
    return [machine.fire(tx, event, message) for event, message in events]


def _delays(effects: list[list[object]], timer: str) -> list[int]:
    return [e.delay for step in effects for e in step if isinstance(e, StartTimer) and e.timer == timer]


def test_invite_client_timer_a_doubles_without_cap_rfc3261_17_1_1_2() -> None:
    steps = _fire_all("invite_client", False, ("tu_request", "INVITE"), *[("timer_a", None)] * 6)
    assert _delays(steps, "A") == [500, 1000, 2000, 4000, 8000, 16000, 32000]
    assert _delays(steps, "B") == [32000]


def test_non_invite_client_timer_e_doubles_up_to_t2_then_t2_in_proceeding_rfc3261_17_1_2_2() -> None:
    steps = _fire_all(
        "non_invite_client", False, ("tu_request", "OPTIONS"), *[("timer_e", None)] * 5, ("recv_1xx", "100"),
        ("timer_e", None), ("timer_e", None),
    )
    assert _delays(steps, "E") == [500, 1000, 2000, 4000, 4000, 4000, 4000, 4000]


def test_invite_server_timer_g_doubles_up_to_t2_rfc3261_17_2_1() -> None:
    steps = _fire_all(
        "invite_server", False, ("recv_invite", "INVITE"), ("tu_300_699", "486"), *[("timer_g", None)] * 5
    )
    assert _delays(steps, "G") == [500, 1000, 2000, 4000, 4000, 4000]
    assert all(Send("response", "486") in step for step in steps[2:])


@pytest.mark.parametrize("kind, first", [("invite_client", "tu_request"), ("non_invite_client", "tu_request")])
def test_no_request_retransmission_timer_on_reliable_transports(kind: str, first: str) -> None:
    (effects,) = _fire_all(kind, True, (first, "REQUEST"))
    assert {e.timer for e in effects if isinstance(e, StartTimer)} == ({"B"} if kind == "invite_client" else {"F"})


def test_invite_client_acks_a_non_2xx_final_response_and_its_retransmissions_rfc3261_17_1_1_3() -> None:
    steps = _fire_all(
        "invite_client", False, ("tu_request", "INVITE"), ("recv_300_699", "486"), ("recv_300_699", "486"),
    )
    assert Send("ack", "486") in steps[1] and ToTU("message", "486") in steps[1]
    assert steps[2] == [Send("ack", "486")]  # a retransmission: ACK again, the TU is not told twice


def test_invite_client_passes_every_2xx_to_the_tu_in_accepted_rfc6026_7_2() -> None:
    steps = _fire_all(
        "invite_client", False, ("tu_request", "INVITE"), ("recv_2xx", "200 a"), ("recv_2xx", "200 b"),
        ("timer_m", None),
    )
    assert steps[2] == [ToTU("message", "200 b")]
    assert steps[3] == [Terminated()]


def test_invite_server_absorbs_retransmission_in_accepted_state_rfc6026() -> None:
    """The RFC 6026 race: an INVITE retransmission arriving after the 2xx is absorbed, not a new request,
    and the server transaction does not retransmit the 2xx itself; ACKs go to the TU."""
    steps = _fire_all(
        "invite_server", False, ("recv_invite", "INVITE"), ("tu_2xx", "200"), ("recv_invite", "INVITE"),
        ("recv_ack", "ACK"), ("tu_2xx", "200"), ("timer_l", None),
    )
    assert Send("response", "200") in steps[1] and StartTimer("L", 32000) in steps[1]
    assert steps[2] == []
    assert steps[3] == [ToTU("message", "ACK")]
    assert steps[4] == [Send("response", "200")]
    assert steps[5] == [Terminated()]


def test_invite_server_stays_after_a_transport_error_rfc6026_7_1() -> None:
    machine = kind_machine("invite_server")
    tx = machine.new(False)
    machine.fire(tx, "recv_invite", "INVITE")
    machine.fire(tx, "tu_300_699", "486")
    assert machine.fire(tx, "transport_error") == [ToTU("transport_error")] and tx.state == "completed"


def test_non_invite_server_resends_its_last_response_and_waits_timer_j() -> None:
    steps = _fire_all(
        "non_invite_server", False, ("recv_request", "OPTIONS"), ("recv_request", "OPTIONS"),
        ("tu_200_699", "200"), ("recv_request", "OPTIONS"), ("tu_200_699", "500"), ("timer_j", None),
    )
    assert steps[1] == []  # Trying: a retransmission is discarded
    assert steps[2] == [Send("response", "200"), StartTimer("J", 32000)]
    assert steps[3] == [Send("response", "200")]
    assert steps[4] == []  # Completed: any other final response from the TU is discarded
    assert steps[5] == [Terminated()]


# ------------------------------------------------------------------------------------------ compiler
def test_models_are_what_the_compiler_writes() -> None:
    for name, text in compile_models(SPEC).items():
        assert (MODELS / name).read_text(encoding="utf-8") == text, f"models/{name} is stale: python -m sipactors.fsm"


def test_check_option_passes_on_the_checkout() -> None:
    result = subprocess.run([sys.executable, "-m", "sipactors.fsm", "--check"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda t: t.replace('{ state = "completed", event = "timer_d", target = "terminated", actions = ["terminate"], rfc = "RFC 3261 §17.1.1.2" },\n', ""),
         "(completed, timer_d) is undecided"),
        (lambda t: t.replace('actions = ["terminate"]', 'actions = ["explode"]', 1), "has no implementation"),
        (lambda t: t.replace('"start:M"]', '"start:Z"]', 1), "names timer 'Z'"),
        (lambda t: t.replace('target = "accepted"', 'target = "limbo"', 1), "unknown target state 'limbo'"),
        (lambda t: t.replace('event = "timer_b"', 'event = "timer_q"', 1), "unknown event 'timer_q'"),
        (lambda t: t.replace('events = ["timer_d", "timer_m"]', 'events = ["timer_d", "timer_m", "timer_a"]', 1),
         "(calling, timer_a) is already decided"),
    ],
    ids=["undecided pair", "unknown action", "unknown timer", "unknown state", "unknown event", "decided twice"],
)
def test_table_faults_are_compile_errors_naming_the_row(tmp_path: Path, change, message: str) -> None:  # type: ignore[no-untyped-def]
    table = (SPEC / "invite_client.toml").read_text(encoding="utf-8")
    broken = change(table)
    assert broken != table
    (tmp_path / "invite_client.toml").write_text(broken, encoding="utf-8")
    with pytest.raises(TableError) as info:
        load_machine(tmp_path / "invite_client.toml", load_timers(SPEC / "timers.toml"))
    assert message in str(info.value) and "invite_client.toml" in str(info.value)
