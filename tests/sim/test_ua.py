"""Simulated user agents over a lossy, duplicating, reordering virtual network (RFC 3261 §8, §13, §15,
RFC 3263 through a static table): every request ends in exactly one outcome, a 2xx to INVITE is
acknowledged end to end, and nothing asks DNS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sipactors.message import Request, parse
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.sim import Link, Reply, SimNetwork, SimTransport, SimUA
from sipactors.transport import ResolutionError, StaticResolver

ALICE = ("192.0.2.1", 5060)
BOB = ("192.0.2.2", 5062)
PROXY = ("192.0.2.9", 5060)
HOSTS = {"atlanta.example.com": ["192.0.2.1"], "biloxi.example.com": ["192.0.2.2:5062"], "proxy.example.com": ["192.0.2.9"]}
LOSSY = Link(loss=0.25, duplicate=0.25, delay_ms=(1, 300))  # delays spread over 300 ms: datagrams reorder
CALLEE = {"INVITE": [(180, "Ringing"), Reply(200, after_ms=800, body=b"v=0\r\n", headers=(("Content-Type", "application/sdp"),))],
          "OPTIONS": [200], "BYE": [200], "MESSAGE": [202]}


@dataclass
class World:
    scheduler: ManualScheduler
    network: SimNetwork
    alice: SimUA
    bob: SimUA


def _world(seed: int = 0, link: Link | None = None, script: dict[str, list[object]] | None = None) -> World:
    scheduler = ManualScheduler(seed=seed)
    set_default_scheduler(scheduler)
    network = SimNetwork(scheduler, seed=seed, default=link or LOSSY)
    resolver = StaticResolver(HOSTS)
    alice = SimUA(network, "sip:alice@atlanta.example.com", ALICE, resolver, seed=seed)
    bob = SimUA(network, "sip:bob@biloxi.example.com", BOB, resolver, script=script or CALLEE, seed=seed)  # type: ignore[arg-type]
    return World(scheduler, network, alice, bob)


@pytest.fixture
def make() -> Iterator[Callable[..., World]]:
    yield _world
    set_default_scheduler(None)


@pytest.fixture
def world(make: Callable[..., World]) -> World:
    return make()


def _sent(ua: SimUA, start: bytes) -> list[Request]:
    return [parse(data) for data, _ in ua.transport.sent if data.startswith(start)]  # type: ignore[misc]


def test_a_request_is_built_as_rfc3261_section_8_1_1_says(world: World) -> None:
    sent = world.alice.send("MESSAGE", "sip:bob@biloxi.example.com", body=b"hi", content_type="text/plain")
    request = parse(bytes(sent.request))
    request.validate_all()
    assert isinstance(request, Request) and request == sent.request
    via = request.via[0]
    assert via.rfc3261_branch and (via.host, via.port) == ALICE and "rport" in via.params
    assert request.from_ is not None and request.from_.tag and str(request.from_.uri) == "sip:alice@atlanta.example.com"
    assert request.to is not None and request.to.tag is None and str(request.to.uri) == "sip:bob@biloxi.example.com"
    assert request.cseq is not None and (request.cseq.seq, request.cseq.method) == (1, "MESSAGE")
    assert request.max_forwards == 70 and request.call_id and request.body == b"hi"
    assert request.header_text("Content-Type") == "text/plain" and request.content_length == 2
    assert sent.target is not None and sent.target.address == BOB  # biloxi's table entry names port 5062
    invite = world.alice.send("INVITE", "sip:bob@biloxi.example.com").request
    assert [str(c.uri) for c in invite.contact] == ["sip:alice@192.0.2.1:5060"]  # type: ignore[union-attr]
    assert invite.via[0].branch != via.branch and invite.call_id != request.call_id


def test_options_gets_200_over_a_lossy_network(world: World) -> None:
    sent = world.alice.send("OPTIONS", "sip:bob@biloxi.example.com")
    world.scheduler.advance(40_000)
    assert sent.outcome is not None and sent.outcome.status == 200 and len(sent.finals) == 1
    assert [r.method for r in world.bob.received] == ["OPTIONS"]  # retransmissions stay in the transaction


def test_invite_ringing_then_200_is_acknowledged_by_the_caller_end_to_end_rfc3261_13_2_2_4(world: World) -> None:
    alice, bob = world.alice, world.bob
    call = alice.send("INVITE", "sip:bob@biloxi.example.com", body=b"v=0\r\n", content_type="application/sdp")
    world.scheduler.advance(40_000)
    assert call.outcome is not None and call.outcome.status == 200 and len(call.finals) == 1
    assert call.outcome.at >= 800  # the scripted delay, on the virtual clock
    statuses = [r.status for r in call.responses]
    assert 180 in statuses and statuses[-1] == 200
    assert bob.acks, "the callee never saw the ACK"
    ack = bob.acks[0]
    invite = call.request
    # §13.2.2.4: the ACK goes to the remote target (the 2xx's Contact), in its own transaction, with the
    # INVITE's CSeq number and method ACK, and the To tag of the 2xx.
    assert str(ack.uri) == "sip:bob@192.0.2.2:5062" and ack.via[0].branch != invite.via[0].branch
    assert ack.cseq is not None and (ack.cseq.seq, ack.cseq.method) == (1, "ACK")
    assert ack.to is not None and ack.to.tag == call.outcome.response.to.tag  # type: ignore[union-attr]
    # Every 2xx that reached the caller was acknowledged (retransmissions included), with the same ACK.
    two_hundreds = [r for r in call.responses if r.status == 200]
    acks = _sent(alice, b"ACK ")
    assert len(acks) == len(two_hundreds) and len({bytes(a) for a in acks}) == 1
    dialog = call.dialog
    assert dialog is not None and dialog.confirmed and bob.dialogs[(dialog.call_id, dialog.remote_tag, dialog.local_tag)].confirmed
    assert bob.server_errors == []


def test_bye_ends_the_call_rfc3261_section_15(world: World) -> None:
    world.alice.send("INVITE", "sip:bob@biloxi.example.com")
    world.scheduler.advance(10_000)
    bye = world.alice.bye()
    world.scheduler.advance(40_000)
    assert bye.outcome is not None and bye.outcome.status == 200
    assert bye.request.cseq is not None and (bye.request.cseq.seq, bye.request.cseq.method) == (2, "BYE")
    assert [d.terminated for d in world.bob.dialogs.values()] == [True]
    assert bye.dialog is not None
    late = world.alice.bye(bye.dialog)  # inside a dialog the callee has ended
    world.scheduler.advance(40_000)
    assert late.outcome is not None and late.outcome.status == 481  # §12.2.2


def test_a_method_without_a_script_gets_405_with_allow_rfc3261_8_2_1(world: World) -> None:
    sent = world.bob.send("INFO", "sip:alice@atlanta.example.com")
    world.scheduler.advance(40_000)
    assert sent.outcome is not None and sent.outcome.status == 405
    assert sent.outcome.response.header_text("Allow") == "ACK, BYE, OPTIONS"  # type: ignore[union-attr]


def test_a_lost_final_response_to_a_non_invite_is_recovered_by_retransmission_rfc3261_17_1_2_2(world: World) -> None:
    world.network.link(BOB, ALICE, Link(loss=1.0))
    sent = world.alice.send("OPTIONS", "sip:bob@biloxi.example.com")
    world.scheduler.advance(400)  # the OPTIONS arrives, Bob's 200 is lost
    assert [d for d in world.network.log if d[1] == BOB and d[4] == "lost"] and sent.outcome is None
    world.network.link(BOB, ALICE, Link())
    world.scheduler.advance(40_000)  # Timer E resends the OPTIONS; Bob's transaction resends its 200
    assert sent.outcome is not None and sent.outcome.status == 200 and len(world.bob.received) == 1


def test_a_lost_2xx_to_invite_is_retransmitted_by_the_callee_core_until_the_ack_rfc3261_13_3_1_4(
    make: Callable[..., World],
) -> None:
    world = make(link=Link(), script={"INVITE": [200]})
    world.network.link(BOB, ALICE, Link(loss=1.0))
    call = world.alice.send("INVITE", "sip:bob@biloxi.example.com")
    world.scheduler.advance(2_000)  # the 2xx and its retransmissions after T1 and 2*T1 are lost
    lost = [d for d in world.network.log if d[1] == BOB and d[3].startswith(b"SIP/2.0 200") and d[4] == "lost"]
    assert len(lost) == 3 and call.outcome is None
    world.network.link(BOB, ALICE, Link())
    world.scheduler.advance(40_000)
    assert call.outcome is not None and call.outcome.status == 200 and world.bob.acks
    sent_2xx = [d for d in world.bob.transport.sent if d[0].startswith(b"SIP/2.0 200")]
    assert len(sent_2xx) == 4 and world.bob.server_errors == []  # none after the ACK


def test_a_2xx_never_acknowledged_is_given_up_after_64_t1(make: Callable[..., World]) -> None:
    world = make(link=Link(), script={"INVITE": [Reply(200, after_ms=100)]})
    world.alice.send("INVITE", "sip:bob@biloxi.example.com")
    world.scheduler.advance(10)  # the INVITE has arrived; the 2xx comes at 100 ms
    world.network.link(ALICE, BOB, Link(loss=1.0))  # every ACK is lost
    world.scheduler.advance(100_000)
    assert [kind for kind, _ in world.bob.server_errors] == ["no_ack"]
    sent_2xx = [d for d in world.bob.transport.sent if d[0].startswith(b"SIP/2.0 200")]
    assert len(sent_2xx) == 11  # at 0 then after 0.5, 1, 2, 4, 4, ... s, up to 64*T1 = 32 s


def test_a_rejected_invite_is_acknowledged_by_the_transaction_not_the_core_rfc3261_17_1_1_3(
    make: Callable[..., World],
) -> None:
    world = make(script={"INVITE": [(486, "Busy Here")]})
    call = world.alice.send("INVITE", "sip:bob@biloxi.example.com")
    world.scheduler.advance(40_000)
    assert call.outcome is not None and call.outcome.status == 486 and len(call.finals) == 1
    acks = _sent(world.alice, b"ACK ")
    assert acks and all(a.via[0].branch == call.request.via[0].branch for a in acks)  # the INVITE's branch
    assert world.bob.acks == [] and call.dialog is None and world.alice.dialogs == {}
    assert world.bob.layer.server == {}  # the ACK ended the server transaction (Timer I ran out)


def test_an_unresolvable_name_fails_at_once_without_a_dns_query(world: World, no_dns: list[str]) -> None:
    before = len(world.network.log)
    sent = world.alice.send("OPTIONS", "sip:carol@chicago.example.com")
    assert sent.outcome is not None and sent.outcome.kind == "unresolvable" and sent.outcome.at == 0
    assert isinstance(sent.outcome.error, ResolutionError) and "chicago.example.com" in str(sent.outcome.error)
    world.scheduler.advance(40_000)
    assert len(world.network.log) == before and world.alice.transport.sent == [] and len(sent.finals) == 1
    assert no_dns == []


def test_an_outbound_proxy_is_a_preloaded_loose_route_rfc3261_8_1_2(make: Callable[..., World]) -> None:
    world = make(link=Link())
    proxy_saw: list[bytes] = []
    world.network.attach(PROXY, lambda data, source: proxy_saw.append(data))
    ua = SimUA(world.network, "sip:carol@atlanta.example.com", ("192.0.2.3", 5060), StaticResolver(HOSTS),
               proxy="sip:proxy.example.com")
    sent = ua.send("OPTIONS", "sip:bob@biloxi.example.com")
    world.scheduler.advance(100)
    assert sent.target is not None and sent.target.address == PROXY
    assert [str(r) for r in sent.request.route] == ["<sip:proxy.example.com;lr>"]
    assert str(sent.request.uri) == "sip:bob@biloxi.example.com" and proxy_saw


def test_a_simulation_replays_exactly_from_its_seeds() -> None:
    def run() -> list[tuple[float, object, object, bytes, str]]:
        world = _world(seed=7)
        world.alice.send("INVITE", "sip:bob@biloxi.example.com")
        world.alice.send("MESSAGE", "sip:bob@biloxi.example.com", body=b"hello")
        world.scheduler.advance(60_000)
        return world.network.log

    try:
        assert run() == run()
    finally:
        set_default_scheduler(None)


@dataclass(frozen=True)
class Plan:
    method: str
    at_ms: int


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    loss=st.floats(0, 0.3),
    duplicate=st.floats(0, 0.5),
    spread=st.floats(1, 1500),
    plans=st.lists(st.builds(Plan, st.sampled_from(["OPTIONS", "INVITE", "MESSAGE", "REGISTER"]), st.integers(0, 5_000)),
                   min_size=1, max_size=6),
    script=st.sampled_from([CALLEE, {"INVITE": [486], "MESSAGE": [(180, "Ringing"), (404, "Not Found", 2_000)]}]),
)
def test_every_request_ends_in_exactly_one_outcome(
    seed: int, loss: float, duplicate: float, spread: float, plans: list[Plan], script: dict[str, list[object]],
) -> None:
    world = _world(seed, Link(loss, duplicate, (1, spread)), script)
    try:
        for plan in plans:
            world.scheduler.call_later(plan.at_ms, lambda method=plan.method: world.alice.send(method, "sip:bob@biloxi.example.com"))
        world.scheduler.advance(200_000)
        assert len(world.alice.sent) == len(plans)
        for sent in world.alice.sent:
            assert len(sent.finals) == 1, (sent.request.method, sent.finals)
            outcome = sent.finals[0]
            assert outcome.kind in ("response", "timeout"), outcome
            if outcome.kind == "response" and sent.request.method not in script:
                assert outcome.status == 405
        assert world.alice.layer.client == {} and world.bob.layer.server == {}  # every transaction ended
    finally:
        set_default_scheduler(None)


def test_a_transport_error_is_the_requests_outcome_rfc3261_8_1_3_1(make: Callable[..., World]) -> None:
    world = make(link=Link(loss=1.0))
    sent = world.alice.send("OPTIONS", "sip:bob@biloxi.example.com")
    world.scheduler.advance(100)
    # What a real transport reports when it cannot deliver (an ICMP error, a refused connection, §18.4).
    world.alice.layer.client[sent.key].actor_ref.tell("transport_error")
    world.scheduler.advance(40_000)
    assert [o.kind for o in sent.finals] == ["transport_error"] and sent.outcome is not None and sent.outcome.status is None


def test_a_reliable_sim_transport_fails_where_nobody_listens_and_delivers_where_someone_does() -> None:
    """The simulated stream transport (RFC 3261 §18): no endpoint at the destination is a refused
    connection, reported through ``failed`` with nothing sent; an attached endpoint gets the bytes."""
    scheduler = ManualScheduler()
    network = SimNetwork(scheduler)
    received: list[bytes] = []
    network.attach(("192.0.2.2", 5060), lambda data, source: received.append(data))
    stream = SimTransport(network, ("192.0.2.1", 5060), reliable=True)
    failures: list[str] = []
    stream.send(b"A", ("192.0.2.3", 5060), lambda: failures.append("refused"))
    stream.send(b"B", ("192.0.2.2", 5060), lambda: failures.append("wrong"))
    scheduler.advance(1_000)  # past any link delay
    assert failures == ["refused"] and received == [b"B"] and stream.sent == [(b"B", ("192.0.2.2", 5060))]
