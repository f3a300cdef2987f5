"""Instant messaging in simulation (RFC 3428): a MESSAGE forked to every registered device with one
final response upstream (§6, RFC 3261 §16.7); store-and-forward for a user with no device (202, §7), the
stored MESSAGE delivered with its original Date when a device registers, kept after a timeout, dropped
after a refusal; 413 for a body over the limit; 404 for nobody; the 407 of a local sender stands."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sipactors.message import Request
from sipactors.roles.core import Core
from sipactors.roles.digest import Authenticator, ha1, request_digest
from sipactors.roles.messaging import MessagingPolicy
from sipactors.roles.proxy import Listener, ProxyPolicy, ProxyRole
from sipactors.roles.registrar import Registrar, RegistrarPolicy
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.messaging import Messaging
from sipactors.runtime.proxy import Proxy
from sipactors.runtime.transaction import TransactionLayer
from sipactors.sim import Link, Reply, SimNetwork, SimTransport, SimUA
from sipactors.store import MemoryStore
from sipactors.transport import StaticResolver
from tests.runtime.test_proxy import EPOCH, HOSTS, PROXY, _scheduler_reset  # noqa: F401 - the autouse fixture

BOB = "sip:bob@example.com"


@dataclass
class World:
    scheduler: ManualScheduler
    network: SimNetwork
    store: MemoryStore
    messaging: Messaging
    records: list[dict[str, Any]]
    alice: SimUA

    def device(self, n: int, script: dict[str, list[Any]] | None = None, user: str = "bob") -> SimUA:
        return SimUA(self.network, f"sip:{user}@example.com", (f"192.0.2.{20 + n}", 5060), StaticResolver(HOSTS),
                     script=script or {"MESSAGE": [200]}, proxy="sip:192.0.2.9:5060", seed=n)

    def register(self, ua: SimUA) -> None:
        sent = ua.send("REGISTER", "sip:example.com", to=ua.aor, headers=[("Expires", 3600)])
        self.run(1000)
        assert sent.outcome is not None and sent.outcome.status == 200

    def run(self, ms: float) -> None:
        self.scheduler.advance(ms)


def _world(policy: MessagingPolicy | None = None) -> World:
    scheduler = ManualScheduler(seed=1)
    set_default_scheduler(scheduler)
    network = SimNetwork(scheduler, seed=1, default=Link())
    store = MemoryStore()

    def clock() -> float:
        return EPOCH + scheduler.now() / 1000

    registrar = Registrar(store, RegistrarPolicy(frozenset({"example.com"})), Authenticator(b"k" * 32), clock,
                          lambda n: b"s" * n)
    proxy_policy = ProxyPolicy(frozenset({"example.com"}), (Listener("UDP", *PROXY),))
    role = ProxyRole(store, proxy_policy, registrar.authenticator, clock, lambda n: b"s" * n, locations=registrar)
    proxy = Proxy(role, StaticResolver(HOSTS))
    messaging = Messaging(store, proxy, policy or MessagingPolicy(max_size=200), clock)
    registrar.on_registered.append(messaging.registered)
    transport = SimTransport(network, PROXY)
    records: list[dict[str, Any]] = []
    layer = TransactionLayer(transport, Core("proxy", registrar, proxy, messaging=messaging), scheduler, trace=records.append)
    messaging.layer = layer
    messaging.restore()
    network.attach(PROXY, lambda data, source: layer.receive(data, source))
    alice = SimUA(network, "sip:alice@example.com", ("192.0.2.1", 5060), StaticResolver(HOSTS), proxy="sip:192.0.2.9:5060")
    return World(scheduler, network, store, messaging, records, alice)


def _messages(ua: SimUA) -> list[Request]:
    return [r for r in ua.received if r.method == "MESSAGE"]


def test_a_message_is_forked_to_every_registered_device_and_one_200_goes_upstream_rfc3428_6() -> None:
    world = _world()
    phone, laptop = world.device(1), world.device(2, {"MESSAGE": [Reply(200, after_ms=300)]})
    world.register(phone)
    world.register(laptop)
    sent = world.alice.send("MESSAGE", BOB, body=b"hi both", content_type="text/plain")
    world.run(2000)
    assert [m.body for m in _messages(phone)] == [b"hi both"] and [m.body for m in _messages(laptop)] == [b"hi both"]
    assert [r.status for r in sent.responses if r.status >= 200] == [200]  # one final response (§16.7)
    assert world.store.messages.all(0.0) == []


def test_a_message_for_an_offline_user_is_stored_202_and_delivered_with_its_date_on_register_rfc3428_7() -> None:
    world = _world()
    sent = world.alice.send("MESSAGE", BOB, body=b"while you were out", content_type="text/plain")
    world.run(1000)
    assert sent.outcome is not None and sent.outcome.status == 202
    (stored,) = world.store.messages.waiting(BOB, EPOCH)
    assert stored.date == "Fri, 15 Jan 2027 08:00:00 GMT"  # added on arrival (RFC 3261 §20.17)
    world.run(3_600_000)  # an hour later bob's phone comes up
    phone = world.device(1)
    world.register(phone)
    (delivered,) = _messages(phone)
    assert delivered.body == b"while you were out" and delivered.header_text("Date") == stored.date
    assert delivered.from_ is not None and delivered.from_.uri.render() == "sip:alice@example.com"
    assert delivered.call_id != sent.request.call_id and not delivered.has("Contact")
    world.run(1000)
    assert world.store.messages.all(0.0) == []  # the 200 deleted it
    assert world.messaging.deliveries == {}
    world.register(phone)  # a later registration gets nothing more
    assert len(_messages(phone)) == 1
    steps = [(r["event"], r["before"], r["after"]) for r in world.records if r.get("machine") == "delivery"]
    assert steps == [("send", "queued", "sending"), ("accepted", "sending", "delivered")]


def test_stored_messages_arrive_oldest_first_one_transaction_at_a_time_rfc3428_8() -> None:
    world = _world()
    for text in (b"one", b"two", b"three"):
        world.alice.send("MESSAGE", BOB, body=text, content_type="text/plain")
        world.run(1000)
    phone = world.device(1, {"MESSAGE": [Reply(200, after_ms=500)]})
    world.register(phone)
    assert [m.body for m in _messages(phone)] == [b"one", b"two"]  # the second after the first's 200
    world.run(5000)
    assert [m.body for m in _messages(phone)] == [b"one", b"two", b"three"]
    assert world.store.messages.all(0.0) == []


def test_a_device_that_is_not_available_leaves_the_messages_for_the_next_registration_rfc3261_21_4_18() -> None:
    world = _world()
    for text in (b"one", b"two"):
        world.alice.send("MESSAGE", BOB, body=text, content_type="text/plain")
        world.run(1000)
    mute = world.device(2, {"MESSAGE": [(480, "Temporarily Unavailable")]})
    world.register(mute)
    world.run(2000)
    assert [m.body for m in _messages(mute)] == [b"one"]  # 480: kept, and the next one waits too
    assert [m.body for m in world.store.messages.waiting(BOB, EPOCH)] == [b"one", b"two"]
    happy = world.device(3)
    world.register(happy)
    world.run(2000)
    assert [m.body for m in _messages(happy)] == [b"one", b"two"]
    assert world.store.messages.all(0.0) == []


def test_a_delivery_that_times_out_is_kept_rfc3261_17_1_2_2() -> None:
    world = _world()
    world.alice.send("MESSAGE", BOB, body=b"one", content_type="text/plain")
    world.run(1000)
    phone = world.device(1)
    world.register(phone)
    assert world.store.messages.all(0.0) == []
    world.alice.send("MESSAGE", "sip:carol@example.com", body=b"for carol", content_type="text/plain")
    world.run(1000)
    carol = world.device(4, user="carol")
    register = carol.send("REGISTER", "sip:example.com", to=carol.aor, headers=[("Expires", 3600)])
    world.network.attach(carol.address, lambda data, source: None)  # carol's device goes deaf after registering
    world.run(40_000)  # Timer F: 64*T1 = 32 s
    assert register.outcome is not None and register.outcome.kind == "timeout"  # (its 200 was lost too)
    assert [m.body for m in world.store.messages.waiting("sip:carol@example.com", EPOCH)] == [b"for carol"]
    steps = [(r["event"], r["after"]) for r in world.records if r.get("machine") == "delivery" and r["aor"].startswith("sip:carol")]
    assert steps == [("send", "sending"), ("deferred", "queued")]


def test_a_refused_delivery_is_dropped_rfc3428_7() -> None:
    world = _world()
    world.alice.send("MESSAGE", BOB, body=b"unwanted", content_type="text/plain")
    world.run(1000)
    phone = world.device(1, {"MESSAGE": [(415, "Unsupported Media Type")]})
    world.register(phone)
    world.run(1000)
    assert len(_messages(phone)) == 1 and world.store.messages.all(0.0) == []
    steps = [(r["event"], r["after"]) for r in world.records if r.get("machine") == "delivery"]
    assert steps == [("send", "sending"), ("refused", "failed")]


def test_an_expired_stored_message_is_not_delivered_rfc3428_7() -> None:
    world = _world(MessagingPolicy(max_size=200, stored_for=60.0))
    world.alice.send("MESSAGE", BOB, body=b"stale", content_type="text/plain")
    world.run(1000)
    world.run(120_000)
    phone = world.device(1)
    world.register(phone)
    assert _messages(phone) == [] and world.store.messages.waiting(BOB, EPOCH + 121) == []
    assert world.messaging.restore() == 1  # the next start purges it
    assert world.store.messages.all(0.0) == []


def test_a_message_that_expires_while_earlier_ones_are_delivered_is_deleted_rfc3428_7() -> None:
    world = _world()
    world.alice.send("MESSAGE", BOB, body=b"first", content_type="text/plain")
    world.alice.send("MESSAGE", BOB, body=b"brief", content_type="text/plain", headers=[("Expires", 5)])
    world.run(1000)
    phone = world.device(1, {"MESSAGE": [Reply(200, after_ms=10_000)]})
    world.register(phone)
    world.run(20_000)
    assert [m.body for m in _messages(phone)] == [b"first"] and world.store.messages.all(0.0) == []
    steps = [(r["event"], r["after"]) for r in world.records if r.get("machine") == "delivery"]
    assert steps == [("send", "sending"), ("accepted", "delivered"), ("expired", "failed")]


def test_a_message_over_the_size_limit_gets_413_rfc3261_21_4_11() -> None:
    world = _world()
    phone = world.device(1)
    world.register(phone)
    sent = world.alice.send("MESSAGE", BOB, body=b"x" * 201, content_type="text/plain")
    world.run(1000)
    assert sent.outcome is not None and sent.outcome.status == 413 and _messages(phone) == []
    offline = world.alice.send("MESSAGE", "sip:carol@example.com", body=b"x" * 201, content_type="text/plain")
    world.run(1000)
    assert offline.outcome is not None and offline.outcome.status == 413 and world.store.messages.all(0.0) == []


def test_a_local_sender_is_challenged_and_an_unknown_user_gets_404_before_anything_is_stored() -> None:
    world = _world()
    world.store.users.add("bob", "example.com", "example.com", {"MD5": "0" * 32})
    world.store.users.add("alice", "example.com", "example.com", {"MD5": "0" * 32})
    challenged = world.alice.send("MESSAGE", BOB, body=b"hi", content_type="text/plain")
    world.run(1000)
    assert challenged.outcome is not None and challenged.outcome.status == 407
    stranger = SimUA(world.network, "sip:zoe@elsewhere.example", ("192.0.2.50", 5060), StaticResolver(HOSTS),
                     proxy="sip:192.0.2.9:5060")
    nobody = stranger.send("MESSAGE", "sip:nobody@example.com", body=b"hi", content_type="text/plain")
    stored = stranger.send("MESSAGE", BOB, body=b"from afar", content_type="text/plain")
    world.run(1000)
    assert nobody.outcome is not None and nobody.outcome.status == 404
    assert stored.outcome is not None and stored.outcome.status == 202  # a caller of another domain is not challenged
    (kept,) = world.store.messages.all(0.0)
    assert kept.body == b"from afar" and kept.sender is None


def test_an_authenticated_local_sender_is_kept_with_the_message_rfc3261_22_3() -> None:
    world = _world()
    for user in ("alice", "bob"):
        world.store.users.add(user, "example.com", "example.com",
                              {name: ha1(user, "example.com", "secret", name) for name in ("SHA-256", "MD5")})
    challenged = world.alice.send("MESSAGE", BOB, body=b"hi", content_type="text/plain")
    world.run(1000)
    assert challenged.outcome is not None and challenged.outcome.status == 407
    header = challenged.responses[-1].get_fields("Proxy-Authenticate")[0].value
    values = dict(part.strip().split("=", 1) for part in header[len("Digest "):].split(","))
    realm, nonce, opaque = (values[key].strip('"') for key in ("realm", "nonce", "opaque"))
    response = request_digest(ha1("alice", realm, "secret"), "SHA-256", nonce, "00000001", "c0ffee", "MESSAGE", BOB)
    credentials = (f'Digest username="alice", realm="{realm}", nonce="{nonce}", uri="{BOB}", response="{response}", '
                   f'algorithm=SHA-256, qop=auth, nc=00000001, cnonce="c0ffee", opaque="{opaque}"')
    sent = world.alice.send("MESSAGE", BOB, body=b"hi", content_type="text/plain",
                            headers=[("Proxy-Authorization", credentials)])
    world.run(1000)
    assert sent.outcome is not None and sent.outcome.status == 202
    (kept,) = world.store.messages.all(0.0)
    assert kept.sender == "alice"


def test_a_delivery_that_fails_ends_and_the_next_registration_delivers_what_is_still_stored() -> None:
    world = _world()
    world.alice.send("MESSAGE", BOB, body=b"kept through a fault", content_type="text/plain")
    world.run(1000)
    messages = world.store.messages
    remove = messages.remove

    def failing_remove(identifier: Any) -> None:  # the store fails as the 200 would delete the message
        raise OSError("disk gone")

    messages.remove = failing_remove  # type: ignore[method-assign]
    ended: list[Any] = []
    forget = world.messaging.ended
    world.messaging.ended = lambda actor: (ended.append(actor), forget(actor))  # type: ignore[method-assign]
    phone = world.device(1)
    world.register(phone)
    world.run(1000)
    assert [m.body for m in _messages(phone)] == [b"kept through a fault"]
    assert world.messaging.deliveries == {}  # the failed actor ended and was forgotten
    assert len(ended) == 1 and ended[0].actor_stopped.is_set()  # and stopped: no mail reaches it any more
    assert world.scheduler.failures == 1  # one failure, contained by the actor (the server goes on)
    messages.remove = remove  # type: ignore[method-assign]
    world.register(phone)  # the next registration starts a new delivery
    world.run(1000)
    assert [m.body for m in _messages(phone)] == [b"kept through a fault"] * 2
    assert messages.all(0.0) == []
