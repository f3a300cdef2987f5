"""The notifier in simulation (RFC 6665 §4.2, RFC 3261 §12): a SimUA subscriber and the server's core and
notifier on a virtual network, lossless or lossy (seeded: loss, duplication, reordering), a test-only
event package.

* subscribe → 200 with Expires and Contact, then at once a NOTIFY with the state (§4.2.1.2);
* a state change → NOTIFY (§4.2.2); a refresh → 200 and NOTIFY (§4.2.1.4); unsubscribe → exactly one
  terminated NOTIFY, reason=timeout (§4.2.1.4); expiry → terminated;reason=timeout;
* NOTIFY CSeqs strictly increase per dialog (RFC 3261 §12.2.1.1); a 481 to a NOTIFY removes the
  subscription (§4.2.2); pending → active and → rejected when the rules change (§4.2.1.3);
* a NOTIFY that reaches the subscriber before the 2xx makes the dialog (§4.1.2.4);
* restart: a store-backed notifier takes its subscriptions up again and its next NOTIFY has a higher CSeq;
* a Hypothesis stateful test of these invariants over a lossy network.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from sipactors.message import NameAddr, Request, SipURI, Via, parse
from sipactors.message.build import response_for
from sipactors.message.params import Params
from sipactors.roles.events import Authorization, Body
from sipactors.roles.subscribe import notify_request
from sipactors.runtime.subscription import CSEQ_RESERVE
from sipactors.sim import ClientSubscription, Link, SimUA
from sipactors.store import open_store
from tests.runtime.subscription_world import ALICE, BOB, LOSSY, SERVER, TextPackage, World

EVENT = "x-test"


@pytest.fixture
def world() -> Iterator[World]:
    w = World()
    yield w
    w.close()


@pytest.fixture
def lossy() -> Iterator[World]:
    w = World(seed=7, link=LOSSY)
    yield w
    w.close()


def _notifies_sent(w: World) -> list[Request]:
    return [parse(data) for data, _ in w.transport.sent if data.startswith(b"NOTIFY")]  # type: ignore[misc]


def _change(w: World, state: str) -> None:
    w.package.states[BOB] = state
    w.scheduler.call_later(0, lambda: w.notifier.changed(EVENT, BOB))


def _terminated(s: ClientSubscription) -> list[str]:
    return [state for state in s.states if state.startswith("terminated")]


def _cseqs_increase(s: ClientSubscription) -> bool:
    seqs = [n.cseq.seq for n in s.notifies if n.cseq is not None]
    return all(a < b for a, b in zip(seqs, seqs[1:], strict=False))


def test_subscribe_gets_200_then_an_immediate_notify_rfc6665_4_2_1_2(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    response = s.sent.outcome.response  # type: ignore[union-attr]
    assert response is not None and response.status == 200 and response.expires == 600
    assert response.contact and response.contact[0].uri.render() == "sip:192.0.2.9:5060"  # type: ignore[index,union-attr]
    (notify,) = s.notifies
    assert notify.header_text("Subscription-State") == "active;expires=600"
    assert notify.header_text("Event") == EVENT and notify.header_text("Content-Type") == "text/plain"
    assert notify.body == b"open" and notify.max_forwards == 70
    assert s.dialog is not None and world.package.started_calls[0][1] is Authorization.ALLOW


def test_state_change_refresh_unsubscribe_rfc6665_4_2_2_and_4_2_1_4(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    _change(world, "busy")
    world.run(500)
    assert [n.body for n in s.notifies] == [b"open", b"busy"]
    refresh = world.alice.refresh(s, 1200)
    world.run(500)
    assert refresh.outcome.status == 200 and refresh.outcome.response.expires == 1200  # type: ignore[union-attr]
    assert s.states[-1].startswith("active;expires=1200")
    world.alice.unsubscribe(s)
    world.run(60_000)
    assert _terminated(s) == ["terminated;reason=timeout"] and s.states[-1] == "terminated;reason=timeout"
    assert _cseqs_increase(s)
    assert world.notifier.subscriptions == {} and world.store.subscriptions.all() == []
    assert world.package.ended_calls[-1][1] == "unsubscribed"
    _change(world, "away")  # nobody subscribed any more: no NOTIFY
    world.run(1000)
    assert len(s.notifies) == 4


def test_expiry_sends_terminated_reason_timeout_rfc6665_4_2_1_4(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 60)
    world.run(59_000)
    assert _terminated(s) == []
    world.run(2_000)
    assert _terminated(s) == ["terminated;reason=timeout"]
    assert world.notifier.subscriptions == {} and world.package.ended_calls[-1][1] == "timeout"


def test_a_481_to_a_notify_removes_the_subscription_rfc6665_4_2_2(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    world.alice.notify_status = 481
    _change(world, "busy")
    world.run(500)
    assert world.notifier.subscriptions == {} and world.store.subscriptions.all() == []
    _change(world, "away")
    world.run(500)
    assert len(s.notifies) == 2 and _terminated(s) == []  # no terminated NOTIFY after a 481


def test_a_500_to_a_notify_keeps_the_subscription_rfc6665_4_2_2(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    world.alice.notify_status = 500
    _change(world, "busy")
    world.run(500)
    world.alice.notify_status = 200
    _change(world, "away")
    world.run(500)
    assert [n.body for n in s.notifies] == [b"open", b"busy", b"away"] and len(world.notifier.subscriptions) == 1


def test_a_notify_timeout_removes_the_subscription_rfc6665_4_2_2(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    world.network.link(SERVER, ALICE, Link(loss=1.0))
    _change(world, "busy")
    world.run(40_000)  # Timer F: 64*T1
    assert world.notifier.subscriptions == {} and world.package.ended_calls[-1][1] == "timeout"
    assert len(s.notifies) == 1


def test_one_notify_in_flight_the_newest_state_next_rfc6665_4_2_2(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    world.network.link(ALICE, SERVER, Link(delay_ms=(400, 400)))  # the 200s to NOTIFYs come slowly
    for state in ("a", "b", "c", "d"):
        _change(world, state)
        world.run(10)
    world.run(3000)
    # "a" went at once; "b" and "c" were replaced by "d" while "a" was in flight
    assert [n.body for n in s.notifies] == [b"open", b"a", b"d"] and _cseqs_increase(s)


def test_the_final_notify_waits_for_the_one_in_flight_and_takes_the_next_cseq_rfc6665_4_2_2(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    world.network.link(SERVER, ALICE, Link(delay_ms=(400, 400)))  # NOTIFYs (and responses) arrive slowly
    _change(world, "busy")
    world.run(10)
    world.alice.unsubscribe(s)  # arrives while the NOTIFY of "busy" waits for its 200
    world.run(3000)
    assert [n.cseq.seq for n in s.notifies] == [1, 2, 3]  # type: ignore[union-attr]
    assert s.states[-1] == "terminated;reason=timeout" and _terminated(s) == [s.states[-1]]
    assert world.notifier.subscriptions == {}


def test_full_state_first_and_after_each_subscribe_partial_only_with_a_hint_rfc4662_5_2(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    world.package.states[BOB] = "busy"
    world.scheduler.call_later(0, lambda: world.notifier.changed(EVENT, BOB, frozenset({"sip:carol@example.com"})))
    world.run(500)
    _change(world, "away")  # no hint: the package cannot say what changed, so full state
    world.run(500)
    world.alice.refresh(s, 600)
    world.run(500)
    world.package.states[BOB] = "open"
    world.scheduler.call_later(0, lambda: world.notifier.changed(EVENT, BOB, frozenset({"sip:dave@example.com"})))
    world.run(500)
    assert world.package.fulls == [
        (True, frozenset()), (False, frozenset({"sip:carol@example.com"})), (True, frozenset()), (True, frozenset()),
        (False, frozenset({"sip:dave@example.com"})),
    ]
    assert [n.body for n in s.notifies] == [b"open", b"busy", b"away", b"away", b"open"]


def test_a_package_requiring_an_extension_the_subscribe_lacks_gets_421_rfc4662_4(world: World) -> None:
    world.package.required = frozenset({"eventlist"})
    refused = world.alice.subscribe(BOB, EVENT, 600)
    accepted = world.alice.subscribe(BOB, EVENT, 600, headers=[("Supported", "eventlist")])
    world.run(500)
    response = refused.sent.outcome.response  # type: ignore[union-attr]
    assert response is not None and response.status == 421 and response.header_text("Require") == "eventlist"
    assert refused.notifies == [] and accepted.sent.outcome.status == 200 and len(accepted.notifies) == 1  # type: ignore[union-attr]


def test_pending_then_allowed_then_blocked_rfc6665_4_2_1_3(world: World) -> None:
    world.package.rules["sip:alice@example.com"] = Authorization.PENDING
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    assert s.states == ["pending;expires=600"] and s.notifies[0].body == b""
    _change(world, "busy")  # a pending watcher is told nothing
    world.run(500)
    assert len(s.notifies) == 1
    world.package.rules["sip:alice@example.com"] = Authorization.ALLOW
    world.scheduler.call_later(0, lambda: world.notifier.reauthorize(EVENT, BOB))
    world.run(500)
    assert s.states[-1].startswith("active") and s.notifies[-1].body == b"busy"
    world.package.rules["sip:alice@example.com"] = Authorization.BLOCK
    world.scheduler.call_later(0, lambda: world.notifier.reauthorize(EVENT, BOB, "sip:alice@example.com"))
    world.run(500)
    assert s.states[-1] == "terminated;reason=rejected" and s.notifies[-1].body == b""
    assert world.notifier.subscriptions == {}


def test_blocked_watcher_gets_403_and_no_notify_rfc6665_4_2_1_3(world: World) -> None:
    world.package.rules["sip:alice@example.com"] = Authorization.BLOCK
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    assert s.sent.outcome.status == 403 and s.notifies == [] and world.notifier.subscriptions == {}  # type: ignore[union-attr]


def test_deactivated_and_noresource_rfc6665_4_1_3(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 600)
    t = world.carol.subscribe(BOB, EVENT, 600)
    world.run(500)
    world.scheduler.call_later(0, lambda: world.notifier.deactivate(EVENT, BOB))
    world.run(500)
    assert s.states[-1] == t.states[-1] == "terminated;reason=deactivated"
    u = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    world.scheduler.call_later(0, lambda: world.notifier.deactivate(EVENT, BOB, gone=True))
    world.run(500)
    assert u.states[-1] == "terminated;reason=noresource"


def test_fetch_with_expires_0_gets_one_terminated_notify_with_state_rfc6665_4_4_3(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 0)
    world.run(500)
    assert s.sent.outcome.status == 200 and s.states == ["terminated;reason=timeout"]  # type: ignore[union-attr]
    assert s.notifies[0].body == b"open" and world.notifier.subscriptions == {}


def test_refusals_rfc6665_4_2_1_1(world: World) -> None:
    cases = [
        (world.alice.subscribe(BOB, "presence", 600), 489),
        (world.alice.subscribe(BOB, EVENT, 10), 423),
        (world.alice.subscribe(BOB, EVENT, 600, accept=["application/pidf+xml"]), 406),
        (world.alice.subscribe("sip:nobody@example.com", EVENT, 600), 404),
    ]
    world.run(500)
    assert [s.sent.outcome.status for s, _ in cases] == [status for _, status in cases]  # type: ignore[union-attr]
    assert cases[0][0].sent.outcome.response.header_text("Allow-Events") == EVENT  # type: ignore[union-attr]
    assert cases[1][0].sent.outcome.response.header_text("Min-Expires") == "60"  # type: ignore[union-attr]


def test_an_in_dialog_subscribe_for_no_subscription_gets_481_rfc3261_12_2_2(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    world.alice.unsubscribe(s)
    world.run(500)
    s.terminated = False
    again = world.alice.refresh(s, 600)
    world.run(500)
    assert again.outcome.status == 481  # type: ignore[union-attr]


def test_an_in_dialog_subscribe_with_a_lower_cseq_gets_500_rfc3261_12_2_2(world: World) -> None:
    s = world.alice.subscribe(BOB, EVENT, 600)
    world.run(500)
    assert s.dialog is not None
    world.alice.refresh(s, 600)
    world.alice.refresh(s, 600)
    world.run(500)  # the notifier's remote CSeq is 3 now
    s.dialog.local_seq = 1  # the next refresh goes out with CSeq 2
    stale = world.alice.refresh(s, 600)
    world.run(500)
    assert stale.outcome.status == 500  # type: ignore[union-attr]
    assert len(world.notifier.subscriptions) == 1  # and the subscription stays


def test_notify_before_the_2xx_makes_the_dialog_rfc6665_4_1_2_4() -> None:
    """A notifier (hand-made here) that sends its NOTIFY first and its 200 100 ms later."""
    w = World()
    try:
        network, seen = w.network, []

        def notifier(data: bytes, source: tuple[str, int]) -> None:
            message = parse(data)
            if not isinstance(message, Request) or message.method != "SUBSCRIBE":
                return
            seen.append(message)
            assert message.from_ is not None
            notify = notify_request(
                call_id=message.call_id or "", local_uri=BOB, local_tag="n1", remote_uri="sip:alice@example.com",
                remote_tag=message.from_.tag or "", remote_target="sip:alice@192.0.2.1:5060", route_set=(), cseq=1,
                event=EVENT, event_id=None, state="active", expires_left=600, reason=None,
                contact=NameAddr(SipURI("sip", "192.0.2.50", None, port=5060)), body=Body("text/plain", b"open"),
                via=Via("UDP", "192.0.2.50", 5060, Params((("branch", "z9hG4bKearly"),))),
            )
            network.send(bytes(notify), ("192.0.2.50", 5060), source)
            ok = response_for(message, 200, to_tag="n1", headers=[("Expires", 600), ("Contact", "<sip:192.0.2.50:5060>")])
            w.scheduler.call_later(100, lambda: network.send(bytes(ok), ("192.0.2.50", 5060), source))

        network.attach(("192.0.2.50", 5060), notifier)
        s = w.alice.subscribe("sip:bob@other.example", EVENT, 600)
        w.run(50)
        assert s.states == ["active;expires=600"] and s.dialog is not None and s.sent.outcome is None
        assert s.dialog.remote_target.render() == "sip:192.0.2.50:5060"  # type: ignore[union-attr]
        w.run(500)
        assert s.sent.outcome.status == 200 and len(w.alice.dialogs) == 1  # type: ignore[union-attr]
        answered = [parse(d) for d, _ in w.alice.transport.sent if d.startswith(b"SIP/2.0 200")]
        assert answered and answered[0].cseq.method == "NOTIFY"  # type: ignore[union-attr]
    finally:
        w.close()


def test_lossy_network_subscribe_change_refresh_unsubscribe(lossy: World) -> None:
    w = lossy
    s = w.alice.subscribe(BOB, EVENT, 600)
    w.run(40_000)
    assert s.sent.outcome.status == 200 and s.states[0] == "active;expires=600"  # type: ignore[union-attr]
    _change(w, "busy")
    w.run(40_000)
    assert s.notifies[-1].body == b"busy"
    w.alice.refresh(s, 900)
    w.run(40_000)
    w.alice.unsubscribe(s)
    w.run(40_000)
    assert _terminated(s) == ["terminated;reason=timeout"] and _cseqs_increase(s)
    sent = [n.cseq.seq for n in _notifies_sent(w) if n.cseq is not None]
    assert sorted(set(sent)) == [n.cseq.seq for n in s.notifies]  # retransmissions aside, each arrived once


@pytest.mark.parametrize("url", ["memory:", "sqlite-file"])
def test_restart_restores_subscriptions_with_a_higher_cseq(url: str, tmp_path: Path) -> None:
    store_url = f"sqlite:///{tmp_path / 'store.db'}" if url == "sqlite-file" else url
    store = open_store(store_url)
    first = World(store=store)
    s = first.alice.subscribe(BOB, EVENT, 600)
    first.run(500)
    _change(first, "busy")
    first.run(500)
    before = max(n.cseq.seq for n in s.notifies)  # type: ignore[union-attr]
    (record,) = store.subscriptions.all()
    assert before <= record.local_cseq <= before + CSEQ_RESERVE and record.state == "active"  # a ceiling (see _save)
    now_ms = first.scheduler.now()
    first.notifier.close()
    first.close()
    if url == "sqlite-file":
        store.close()
        store = open_store(store_url)
    # the same subscriber, a new server process 100 s later (the virtual clock goes on)
    second = World(store=store, start_ms=now_ms + 100_000)
    _rehome(first.alice, second)
    assert second.notifier.restore(second.layer) == 1
    second.run(10)
    _change(second, "away")
    second.run(500)
    after = [n for n in s.notifies if n.body == b"away"]
    assert after and after[0].cseq.seq > before  # type: ignore[union-attr]
    assert after[0].header_text("Subscription-State") in ("active;expires=498", "active;expires=499")  # time left
    second.run(501_000)  # the time left runs out: terminated;reason=timeout
    assert _terminated(s) == ["terminated;reason=timeout"]
    second.close()
    store.close()


def _rehome(ua: SimUA, w: World) -> None:
    """Move a subscriber onto another world's network and scheduler, keeping its dialogs and subscriptions."""
    from sipactors.runtime.transaction import TransactionLayer
    from sipactors.sim import SimTransport

    ua.transport = SimTransport(w.network, ua.address)
    ua.layer = TransactionLayer(ua.transport, ua, w.scheduler)
    ua.scheduler = w.scheduler
    w.network.attach(ua.address, lambda data, source: ua.layer.receive(data, source))


class NotifierInvariants(RuleBasedStateMachine):
    """Random subscribes, changes, refreshes, unsubscribes and time over a lossy network: NOTIFY CSeqs
    strictly increase per dialog, no subscription gets more than one terminated NOTIFY, and none that
    the notifier still serves has been told it is terminated."""

    def __init__(self) -> None:
        super().__init__()
        self.w = World(seed=3, link=Link(loss=0.1, duplicate=0.1, delay_ms=(1, 150)))
        self.uas = [self.w.alice, self.w.carol]
        self.subs: list[ClientSubscription] = []

    @rule(who=st.integers(0, 1), expires=st.sampled_from([60, 600]))
    def subscribe(self, who: int, expires: int) -> None:
        self.subs.append(self.uas[who].subscribe(BOB, EVENT, expires))

    @rule(state=st.sampled_from(["a", "b", "c"]))
    def change(self, state: str) -> None:
        _change(self.w, state)

    @rule(index=st.integers(0, 20), expires=st.sampled_from([0, 120, 600]))
    def resubscribe(self, index: int, expires: int) -> None:
        live = [s for s in self.subs if s.dialog is not None and not s.terminated]
        if live:
            s = live[index % len(live)]
            ua = self.w.alice if s.sent.request.from_.uri.user == "alice" else self.w.carol  # type: ignore[union-attr]
            ua.refresh(s, expires)

    @rule(ms=st.sampled_from([100, 5_000, 40_000]))
    def wait(self, ms: int) -> None:
        self.w.run(ms)

    @invariant()
    def notify_cseqs_increase_and_one_final_notify(self) -> None:
        for s in self.subs:
            assert _cseqs_increase(s)
            assert len(_terminated(s)) <= 1
            if _terminated(s):
                assert s.notifies[-1].header_text("Subscription-State", ).startswith("terminated")
        for actor in list(self.w.notifier.subscriptions.values()):
            assert all(a < b for a, b in zip(actor.sent_cseqs, actor.sent_cseqs[1:], strict=False))

    def teardown(self) -> None:
        self.w.close()


NotifierInvariants.TestCase.settings = settings(
    max_examples=15, stateful_step_count=15, deadline=None, suppress_health_check=[HealthCheck.too_slow],
)
test_notifier_invariants_over_a_lossy_network = NotifierInvariants.TestCase


def test_restore_purges_what_expired_and_keeps_records_of_packages_not_hosted() -> None:
    from dataclasses import replace

    first = World()
    first.alice.subscribe(BOB, EVENT, 600)
    first.run(500)
    (record,) = first.store.subscriptions.all()
    first.close()
    store = first.store
    store.subscriptions.save(replace(record, id="expired", expires=record.expires - 10_000))
    store.subscriptions.save(replace(record, id="other", event="x-other"))
    second = World(store=store, start_ms=1000)
    try:
        assert second.notifier.restore(second.layer) == 1  # ours; "other" waits for its package
        assert [r.id for r in store.subscriptions.all()] == sorted([record.id, "other"])
        # the restored subscription NOTIFYs its current state (RFC 6665 §4.2.2: it may have changed while the
        # server was down); this world's alice is a new UA that would answer 481, so nothing reaches her
        second.network.attach(ALICE, lambda data, source: None)
        second.run(10)
        (actor,) = second.notifier.subscriptions.values()
        assert actor.state == "active" and actor.timers  # its expiry runs again, for the time left
    finally:
        second.close()


def test_a_restored_active_subscription_is_notified_of_the_state_now_rfc6665_4_2_2() -> None:
    """The resource's state may have changed while the server was down (a publication or a registration
    that expired meanwhile is purged at the start, with nobody subscribed yet to be told): each restored
    active subscription gets a NOTIFY with the current state, its CSeq above the last one (found by
    tests/conformance/test_presence.py: the watcher kept the state from before the restart)."""
    first = World()
    subscription = first.alice.subscribe(BOB, EVENT, 600)
    first.run(500)
    assert [n.body for n in subscription.notifies] == [b"open"]
    first.close()
    second = World(store=first.store, start_ms=1000, package=TextPackage(states={BOB: "closed"}))
    try:
        second.alice.subscriptions[subscription.call_id, subscription.local_tag] = subscription  # the same UA
        assert second.notifier.restore(second.layer) == 1
        second.run(500)
        assert [n.body for n in subscription.notifies] == [b"open", b"closed"]
        assert subscription.states[-1].startswith("active")
        first_cseq, second_cseq = (n.cseq.seq for n in subscription.notifies if n.cseq is not None)
        assert second_cseq > first_cseq
    finally:
        second.close()
