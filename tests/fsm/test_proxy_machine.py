"""The proxy response context machine against its table (spec/machines/proxy.toml, RFC 3261 §16.6-§16.10).

* completeness (the h2 discipline): every (state, event) pair, with each guard of its rows made true,
  moves as its row says and produces the effects its actions name, or is a declared ignore (no effect,
  no move) or error (ProtocolError, no move);
* the four guards partition the final responses: exactly one holds, whatever the context;
* the fast path equals ``trigger`` and a stock ``transitions.Machine``;
* the family: the machine implements exactly the proxy vocabulary; the model is generated with the others.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from transitions import EventData

from sipactors.fsm import FAMILIES, ProtocolError, Terminated
from sipactors.fsm.base import load_model
from sipactors.fsm.compile import compile_models
from sipactors.fsm.effects import CancelBranch, Forward, ResetTimerC, Upstream
from sipactors.fsm.proxy import BranchEvent, ContextState, ProxyMachine, proxy_machine
from sipactors.message import Response, parse
from sipactors.message.build import response_for
from sipactors.message.uri import SipURI
from sipactors.roles.proxy import Listener, Plan, ProxyPolicy, ResponseContext, Target, loop_hash

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "spec" / "machines"
POLICY = ProxyPolicy(frozenset({"example.com"}), (Listener("UDP", "192.0.2.9", 5060),))
INVITE = (
    b"INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKabc\r\n"
    b"Max-Forwards: 70\r\nTo: <sip:bob@example.com>\r\nFrom: <sip:alice@example.com>;tag=a\r\n"
    b"Call-ID: c1\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
)
GUARDS = ("six_hundred_pending", "other_pending", "next_target", "last_branch")


def _target(n: int) -> Target:
    return Target(SipURI("sip", f"192.0.2.{20 + n}", "bob", port=5060))


def _context(groups: int = 2, method: bytes = b"INVITE") -> ResponseContext:
    request = parse(INVITE.replace(b"INVITE", method))
    plan = Plan(request, ((_target(1), _target(2)), (_target(3),))[:groups], loop_hash(request), False)
    return ResponseContext(plan, POLICY)


def _response(context: ResponseContext, index: int, status: int) -> Response:
    branch = context.branches[index - 1]
    assert branch.request is not None
    return response_for(branch.request, status, to_tag=f"t{index}")


def _placed(state: str, guard: str = "") -> ContextState:
    """A context put in ``state`` with branches 1 and 2 of the first group out (1 has had a 180), set up so
    that ``guard`` holds for a final response on branch 1."""
    machine = proxy_machine()
    context = _context(groups=1 if guard == "last_branch" else 2)
    c = machine.new(context, "tag")
    if state != "init":
        context.open_next_group()
        context.branches[0].provisional = True
        if guard in ("next_target", "last_branch"):
            context.branches[1].final = _response(context, 2, 486)
            context.finals.append(context.branches[1].final)
        if state in ("accepted", "cancelling"):
            context.closed = True
    c.state = state
    return c


def _message(c: ContextState, event: str, guard: str) -> Any:
    context = c.context
    if event in ("start", "cancel") or not context.branches:
        return None
    branch = context.branches[0]
    status = {"branch_provisional": 180, "branch_2xx": 200, "branch_timeout": 0}.get(event)
    if event == "branch_final":
        status = 603 if guard == "six_hundred_pending" else 486
    return BranchEvent(branch, _response(context, 1, status) if status else None)


def _pairs() -> list[tuple[str, str, str]]:
    machine = proxy_machine()
    pairs = []
    for state in machine.model["states"]:
        for event in machine.model["events"]:
            decision = machine.decision(state, event)
            guards = [row["guard"] for row in decision["rows"]] if decision["kind"] == "rows" else [""]
            pairs += [(state, event, guard) for guard in guards]
    return pairs


@pytest.mark.parametrize(("state", "event", "guard"), _pairs())
def test_every_state_event_pair_moves_as_its_table_says(state: str, event: str, guard: str) -> None:
    machine = proxy_machine()
    decision = machine.decision(state, event)
    c = _placed(state, guard)
    message = _message(c, event, guard)
    if decision["kind"] == "ignore":
        assert machine.fire(c, event, message) == [] and c.state == state
        return
    if decision["kind"] == "error":
        with pytest.raises(ProtocolError):
            machine.fire(c, event, message)
        assert c.state == state
        return
    (row,) = [r for r in decision["rows"] if r["guard"] == guard]
    if guard:  # the placement makes this guard, and only it, hold
        data = EventData(None, None, machine.machine, c, (), {"message": message})
        assert [name for name in GUARDS if machine.guards[name](data)] == [guard]
    effects = machine.fire(c, event, message)
    actions = row["actions"]
    assert c.state == row["target"]
    assert (Terminated() in effects) == ("terminate" in actions) == (row["target"] == "terminated")
    forwards = [e for e in effects if isinstance(e, Forward)]
    assert bool(forwards) == ("forward_next" in actions)
    upstream = [e.response for e in effects if isinstance(e, Upstream)]
    finals = [r for r in upstream if r.status >= 200]
    assert bool(finals) == bool({"forward_response", "send_best"} & set(actions))
    assert all(len(r.via) == 1 for r in upstream)  # §16.7 step 9: our Via removed, the caller's left
    assert ([r.status for r in upstream if r.status < 200] == [180]) == ("forward_provisional" in actions)
    assert bool([e for e in effects if isinstance(e, ResetTimerC)]) == ("reset_timer_c" in actions)
    cancels = [e.branch.index for e in effects if isinstance(e, CancelBranch)]
    if {"cancel_forks", "cancel_pending"} & set(actions) or "cancel_branch" in actions:
        assert cancels == [1] if event in ("cancel", "branch_timeout") else cancels == []
    else:
        assert cancels == []
    if "record" in actions:
        assert message.branch.final is message.response
    if "mark_cancelled" in actions:
        assert c.context.cancelled


def test_a_branch_cancelled_before_its_first_provisional_is_cancelled_when_it_comes_rfc3261_9_1() -> None:
    machine = proxy_machine()
    c = _placed("forwarding")
    context = c.context
    effects = machine.fire(c, "cancel")
    assert [e.branch.index for e in effects if isinstance(e, CancelBranch)] == [1]  # only 1 had a 180
    assert context.branches[1].cancel_wanted and not context.branches[1].cancel_sent
    later = machine.fire(c, "branch_provisional", BranchEvent(context.branches[1], _response(context, 2, 180)))
    assert [e.branch.index for e in later if isinstance(e, CancelBranch)] == [2]
    assert not [e for e in later if isinstance(e, Upstream)]  # nothing upstream once cancelling


def test_after_the_cancel_the_final_response_is_487_rfc3261_16_10() -> None:
    machine = proxy_machine()
    c = _placed("forwarding")
    machine.fire(c, "cancel")
    context = c.context
    machine.fire(c, "branch_final", BranchEvent(context.branches[0], _response(context, 1, 487)))
    effects = machine.fire(c, "branch_final", BranchEvent(context.branches[1], _response(context, 2, 408)))
    [final] = [e.response for e in effects if isinstance(e, Upstream)]
    assert final.status == 487 and final.to is not None and final.to.tag == "tag" and c.state == "terminated"


@given(st.integers(1, 3), st.sampled_from([300, 302, 404, 480, 486, 500, 503, 600, 603]), st.booleans(),
       st.booleans(), st.booleans())
def test_the_guards_partition_final_responses(groups: int, status: int, other_done: bool, closed: bool, recurse: bool) -> None:
    machine = proxy_machine()
    context = _context(groups=min(groups, 2))
    context.open_next_group()
    if other_done:
        context.branches[1].final = _response(context, 2, 486)
    context.closed = closed
    c = machine.new(context, "tag")
    data = EventData(None, None, machine.machine, c, (), {"message": BranchEvent(context.branches[0], _response(context, 1, status))})
    assert sum(machine.guards[name](data) for name in GUARDS) == 1


# ------------------------------------------------------------------------------------ the fast path
STOCK = ProxyMachine(load_model("proxy"), lean=False)


@pytest.mark.parametrize(("state", "event", "guard"), _pairs())
def test_fast_path_equals_trigger_and_stock_transitions(state: str, event: str, guard: str) -> None:
    outcomes = []
    for step in (proxy_machine().fire, proxy_machine().trigger, STOCK.trigger):
        c = _placed(state, guard)
        try:
            effects = step(c, event, _message(c, event, guard))
            outcomes.append(("ok", c.state, [type(e).__name__ for e in effects]))
        except ProtocolError as error:
            outcomes.append(("error", c.state, str(error)))
    assert outcomes[0] == outcomes[1] == outcomes[2]


# ---------------------------------------------------------------------------------------- the family
def test_the_proxy_machine_implements_exactly_its_vocabulary() -> None:
    assert ProxyMachine.missing() == []
    assert FAMILIES["proxy"] is ProxyMachine.family


def test_the_proxy_model_is_generated_with_the_others() -> None:
    files = compile_models(SPEC)
    assert (REPO / "models" / "proxy.json").read_text(encoding="utf-8") == files["proxy.json"]
    assert '"family": "proxy"' in files["proxy.json"]
