"""The stateful proxy in simulation (RFC 3261 §16): a caller INVITEs an AOR whose 1-3 registered devices answer
by random scripts (1xx, 2xx, 3xx-6xx, or silence), over a network that loses, duplicates and reorders, with
the virtual clock run past Timer C; sometimes the caller CANCELs, and sometimes it also tries to reach a
user of another domain. What the proxy sent and received is checked against §16:

* every request it forwards (INVITE, the ACK of a 2xx, §16.6, §16.11) carries exactly one Via more than the
  one it received, on top, Max-Forwards one less, and our Record-Route on top of an INVITE when configured;
  every CANCEL it sends has the single Via of the INVITE it cancels (§9.1);
* every response it sends upstream carries exactly the caller's Via: ours is popped (§16.7 step 9);
* per server transaction, the final responses sent upstream are either exactly one non-2xx response
  (retransmissions of it aside), or one or more 2xx and nothing else: §16.7 step 5 forwards every 2xx
  (one per answering branch, and each of its retransmissions), and no other final response follows a 2xx;
* after a 2xx went upstream, every branch that was still pending and had had a provisional response is
  CANCELled (§16.7 step 10), and no branch is CANCELled before its first provisional response (§9.1);
* nothing reaches a destination outside the local domains: the caller is not authenticated (403/407).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.message import Request, Response, parse
from sipactors.roles.core import Core
from sipactors.roles.digest import Authenticator, ha1
from sipactors.roles.proxy import Listener, ProxyPolicy, ProxyRole, cancel_for
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.proxy import Proxy
from sipactors.runtime.transaction import TransactionLayer
from sipactors.sim import Link, Reply, SentRequest, SimNetwork, SimTransport, SimUA
from sipactors.store import MemoryStore
from sipactors.store.model import Binding
from sipactors.transport import StaticResolver

EPOCH = 1_800_000_000.0
PROXY = ("192.0.2.9", 5060)
ALICE = ("192.0.2.1", 5060)
CAROL = ("198.51.100.7", 5060)
DEVICES = [("192.0.2.21", 5060), ("192.0.2.22", 5062), ("192.0.2.23", 5064)]
HOSTS = {"example.com": ["192.0.2.9"], "elsewhere.example": ["198.51.100.7"]}
AOR = "sip:bob@example.com"
LOSSY = Link(loss=0.1, duplicate=0.1, delay_ms=(1, 150))
FINALS = [200, 302, 404, 480, 486, 500, 503, 600, 603]


@pytest.fixture(autouse=True)
def _scheduler_reset() -> Iterator[None]:
    yield
    set_default_scheduler(None)


class RecordingTransport(SimTransport):
    """The proxy's transport, remembering when it sent what."""

    log: list[tuple[float, tuple[str, int], bytes]]

    def send(self, data: bytes, destination: tuple[str, int]) -> None:
        self.log.append((self.network.scheduler.now(), destination, data))
        super().send(data, destination)


@dataclass
class Run:
    received: list[tuple[float, tuple[str, int], Request | Response]] = field(default_factory=list)
    sent: list[tuple[float, tuple[str, int], Request | Response]] = field(default_factory=list)


def _script(draw: Any) -> dict[str, list[Reply]]:
    """One device: silence, or a 180 and/or a final response, at random moments."""
    steps: list[Reply] = []
    if draw(st.booleans()):
        steps.append(Reply(180, after_ms=draw(st.integers(0, 500))))
    if draw(st.integers(0, 3)):  # silence one time in four
        steps.append(Reply(draw(st.sampled_from(FINALS)), after_ms=draw(st.integers(0, 4000))))
    return {"INVITE": steps, "BYE": [Reply(200)], "CANCEL": [Reply(200)]}


@given(st.data())
def test_forwarding_and_responses_follow_rfc3261_16_over_a_lossy_network(data: st.DataObject) -> None:
    draw = data.draw
    seed = draw(st.integers(0, 2**16))
    record_route = draw(st.booleans())
    users = draw(st.booleans())
    scheduler = ManualScheduler(seed=seed)
    set_default_scheduler(scheduler)
    network = SimNetwork(scheduler, seed=seed, default=LOSSY)
    resolver = StaticResolver(HOSTS)
    store = MemoryStore()
    if users:  # alice exists but the simulated UA cannot authenticate: 407 for it
        store.users.add("alice", "example.com", "example.com", {"SHA-256": ha1("alice", "example.com", "pw")})
    policy = ProxyPolicy(frozenset({"example.com"}), (Listener("UDP", *PROXY),), record_route=record_route,
                         auth_methods=frozenset())  # local calls go through; relaying must still be refused
    role = ProxyRole(store, policy, Authenticator(b"k" * 32), lambda: EPOCH + scheduler.now() / 1000, lambda n: b"s" * n)
    transport = RecordingTransport(network, PROXY)
    transport.log = []
    layer = TransactionLayer(transport, Core("proxy", None, Proxy(role, resolver)), scheduler)
    run = Run()

    def arrive(payload: bytes, source: tuple[str, int]) -> None:
        run.received.append((scheduler.now(), source, parse(payload)))
        layer.receive(payload, source)

    network.attach(PROXY, arrive)
    count = draw(st.integers(1, 3))
    devices = []
    for index in range(count):
        device = SimUA(network, AOR, DEVICES[index], resolver, script=_script(draw), seed=seed + index + 1)
        q = draw(st.sampled_from([1.0, 1.0, 0.5]))
        store.locations.put(Binding(AOR, device.contact.uri.render(), EPOCH + 3600, f"reg{index}", 1, q=q))
        devices.append(device)
    carol = SimUA(network, "sip:carol@elsewhere.example", CAROL, resolver, script={"INVITE": [Reply(200)]})
    alice = SimUA(network, "sip:alice@example.com", ALICE, resolver, proxy="sip:192.0.2.9:5060", seed=seed)

    call = alice.send("INVITE", AOR)
    relay = alice.send("INVITE", "sip:carol@elsewhere.example") if draw(st.booleans()) else None
    cancel_at = draw(st.one_of(st.none(), st.integers(1, 5000)))
    if cancel_at is not None:
        scheduler.advance(cancel_at)
        cancel = cancel_for(call.request)
        alice._by_key[alice.layer.send_request(cancel, PROXY)] = SentRequest(cancel, None)  # its 200 is alice's
    for _ in range(72):  # per q class of silent devices, Timer C (181 s) and its CANCEL's 32 s of grace
        scheduler.advance(10_000)
    run.sent = [(at, destination, parse(octets)) for at, destination, octets in transport.log]

    _check_forwarded(run, record_route)
    _check_upstream(run, call.request)
    _check_cancels(run, call.request)
    assert not [m for _, d, m in run.sent if d == CAROL] and not carol.received  # no open relay
    if relay is not None and relay.outcome is not None and relay.outcome.response is not None:
        assert relay.outcome.status in (403, 407)


def _key(message: Request | Response) -> tuple[str | None, int | None, str | None]:
    cseq = message.cseq
    return message.call_id, cseq.seq if cseq else None, cseq.method if cseq else None


def _check_forwarded(run: Run, record_route: bool) -> None:
    incoming = {(m.via[0].branch, m.method): m for _, source, m in run.received if isinstance(m, Request) and source == ALICE}
    invites = {}
    for _, destination, message in run.sent:
        if not isinstance(message, Request) or destination == ALICE:
            continue
        if message.method == "CANCEL" or (message.method == "ACK" and len(message.via) == 1):
            continue  # hop by hop (§9.1; the client transaction's ACK of a non-2xx, §17.1.1.3): below
        assert len(message.via) >= 2, "§16.6 step 8: our Via pushed onto the sender's"
        source = incoming[message.via[1].branch, message.method]  # what the caller sent, by its Via's branch
        assert _key(source) == _key(message)
        assert len(message.via) == len(source.via) + 1, "§16.6 step 8: exactly one Via pushed"
        assert message.via[0].host == PROXY[0] and message.via[0].port == PROXY[1]
        assert message.max_forwards == (source.max_forwards or 71) - 1, "§16.6 step 3"
        if message.method == "INVITE":
            invites[destination] = message
            routes = message.record_route
            assert bool(routes) == record_route and (not routes or routes[0].uri.host == PROXY[0])
    for _, destination, message in run.sent:
        if isinstance(message, Request) and (message.method == "CANCEL" or (message.method == "ACK" and len(message.via) == 1)):
            assert [v.render() for v in message.via] == [invites[destination].via[0].render()], "§9.1, §17.1.1.3"


def _check_upstream(run: Run, invite: Request) -> None:
    mine = invite.via[0].branch
    finals: set[tuple[int, str | None]] = set()
    for _, destination, message in run.sent:
        if destination != ALICE or not isinstance(message, Response):
            continue
        assert [v.branch for v in message.via] == [message.via[0].branch] and len(message.via) == 1, "§16.7 step 9"
        if message.via[0].branch != mine or message.status < 200 or _key(message)[2] != "INVITE":
            continue  # another request's, a provisional, or the 200 of the CANCEL (same branch, §9.1)
        finals.add((message.status, message.to.tag if message.to else None))
    if not any(isinstance(m, Request) and m.method == "INVITE" for _, s, m in run.received if s == ALICE):
        return  # the INVITE never reached the proxy: nothing to answer
    two = {f for f in finals if 200 <= f[0] < 300}
    others = finals - two
    assert (two and not others) or (not two and len(others) == 1), f"§16.7: final responses upstream {finals}"


def _check_cancels(run: Run, invite: Request) -> None:
    """§16.7 step 10 after a 2xx; §9.1 no CANCEL before a provisional response."""
    call = invite.call_id
    upstream_2xx = [at for at, d, m in run.sent if d == ALICE and isinstance(m, Response) and 200 <= m.status < 300
                    and m.cseq is not None and m.cseq.method == "INVITE" and m.call_id == call]
    for device in DEVICES:
        sent_invites = [at for at, d, m in run.sent if d == device and isinstance(m, Request) and m.method == "INVITE"]
        if not sent_invites:
            continue
        responses = [(at, m) for at, s, m in run.received if s == device and isinstance(m, Response)
                     and m.cseq is not None and m.cseq.method == "INVITE"]
        provisional = [at for at, m in responses if m.status < 200]
        finals = [at for at, m in responses if m.status >= 200]
        cancels = [at for at, d, m in run.sent if d == device and isinstance(m, Request) and m.method == "CANCEL"]
        for at in cancels:
            assert any(p <= at for p in provisional), "§9.1: a CANCEL only after a provisional response"
        if not upstream_2xx:
            continue
        first = upstream_2xx[0]
        pending_with_1xx = (not any(f <= first for f in finals)
                            and any(p < first and p <= sent_invites[0] + 32_000 for p in provisional))
        if pending_with_1xx:
            assert cancels, f"§16.7 step 10: {device} was pending at the 2xx and got no CANCEL"
