"""ProxyContext actors in simulation (RFC 3261 §16.6-§16.10): sequential forking by q, a 6xx cancelling the
other branches, Timer C, the upstream CANCEL, a blocking resolver run off the scheduler thread, the trace,
and a failing context contained (500 upstream, the other calls unharmed)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import wait
from dataclasses import dataclass
from typing import Any

import pytest

from sipactors.message import Request, SipURI, parse
from sipactors.roles.core import Core
from sipactors.roles.digest import Authenticator
from sipactors.roles.proxy import Listener, ProxyPolicy, ProxyRole, cancel_for
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.proxy import Proxy
from sipactors.runtime.transaction import TransactionLayer
from sipactors.sim import Link, Reply, SentRequest, SimNetwork, SimTransport, SimUA
from sipactors.store import MemoryStore
from sipactors.store.model import Binding
from sipactors.transport import ResolutionError, StaticResolver, Target

EPOCH = 1_800_000_000.0
PROXY = ("192.0.2.9", 5060)
HOSTS = {"example.com": ["192.0.2.9"]}


@pytest.fixture(autouse=True)
def _scheduler_reset() -> Iterator[None]:
    yield
    set_default_scheduler(None)


@dataclass
class World:
    scheduler: ManualScheduler
    network: SimNetwork
    store: MemoryStore
    proxy: Proxy
    transport: SimTransport
    records: list[dict[str, Any]]
    alice: SimUA

    def device(self, user: str, n: int, script: dict[str, list[Any]], q: float = 1.0, resolver: Any = None) -> SimUA:
        ua = SimUA(self.network, f"sip:{user}@example.com", (f"192.0.2.{20 + n}", 5060), resolver or StaticResolver(HOSTS),
                   script={"BYE": [200], "CANCEL": [200], **script}, seed=n)
        self.store.locations.put(Binding(f"sip:{user}@example.com", ua.contact.uri.render(), EPOCH + 3600, f"r{n}", 1, q=q))
        return ua

    def sent_to(self, ua: SimUA, method: str) -> list[Request]:
        return [m for data, d in self.transport.sent if d == ua.address
                for m in [parse(data)] if isinstance(m, Request) and m.method == method]

    def run(self, ms: float) -> None:
        self.scheduler.advance(ms)


def _world(resolver: Any = None) -> World:
    scheduler = ManualScheduler(seed=1)
    set_default_scheduler(scheduler)
    network = SimNetwork(scheduler, seed=1, default=Link())
    store = MemoryStore()
    policy = ProxyPolicy(frozenset({"example.com"}), (Listener("UDP", *PROXY),))
    role = ProxyRole(store, policy, Authenticator(b"k" * 32), lambda: EPOCH + scheduler.now() / 1000, lambda n: b"s" * n)
    proxy = Proxy(role, resolver or StaticResolver(HOSTS))
    transport = SimTransport(network, PROXY)
    records: list[dict[str, Any]] = []
    layer = TransactionLayer(transport, Core("proxy", None, proxy), scheduler, trace=records.append)
    network.attach(PROXY, lambda data, source: layer.receive(data, source))
    alice = SimUA(network, "sip:alice@example.com", ("192.0.2.1", 5060), StaticResolver(HOSTS), proxy="sip:192.0.2.9:5060")
    return World(scheduler, network, store, proxy, transport, records, alice)


def test_a_lower_q_device_is_tried_only_after_the_higher_ones_failed_rfc3261_16_6() -> None:
    world = _world()
    first = world.device("bob", 1, {"INVITE": [(180, "Ringing"), Reply(486, after_ms=1000)]}, q=1.0)
    second = world.device("bob", 2, {"INVITE": [Reply(200, after_ms=100)]}, q=0.5)
    call = world.alice.send("INVITE", "sip:bob@example.com")
    world.run(500)
    assert first.received and not second.received  # the q=0.5 device waits for the q=1.0 one
    world.run(5000)
    assert second.received and call.outcome is not None and call.outcome.status == 200
    assert [r.status for r in call.responses if r.status != 100] == [180, 200]  # the 486 is not forwarded


def test_a_6xx_cancels_the_other_branches_and_goes_upstream_when_they_end_rfc3261_16_7_step5() -> None:
    world = _world()
    world.device("bob", 1, {"INVITE": [Reply(603, after_ms=300)]})
    ringing = world.device("bob", 2, {"INVITE": [(180, "Ringing")]})
    call = world.alice.send("INVITE", "sip:bob@example.com")
    world.run(1000)
    assert len(world.sent_to(ringing, "CANCEL")) == 1
    assert call.outcome is None  # the device that rings has not ended its INVITE (a SimUA does not 487 it)
    world.run(33_000)  # §16.8-style grace for the CANCELled branch: 64*T1, then it counts as 408
    assert call.outcome is not None and call.outcome.status == 603


def test_timer_c_cancels_a_ringing_branch_and_the_call_ends_408_rfc3261_16_8() -> None:
    world = _world()
    ringing = world.device("bob", 1, {"INVITE": [(180, "Ringing")]})
    call = world.alice.send("INVITE", "sip:bob@example.com")
    world.run(180_000)
    assert not world.sent_to(ringing, "CANCEL")
    world.run(2_000)  # Timer C: 181 s
    assert len(world.sent_to(ringing, "CANCEL")) == 1
    world.run(33_000)
    assert call.outcome is not None and call.outcome.status == 408


def test_the_upstream_cancel_gets_200_cancels_the_branches_and_the_invite_ends_487_rfc3261_16_10() -> None:
    world = _world()
    devices = [world.device("bob", n, {"INVITE": [(180, "Ringing")]}) for n in (1, 2)]
    call = world.alice.send("INVITE", "sip:bob@example.com")
    world.run(500)
    cancel = cancel_for(call.request)
    sent = SentRequest(cancel, None)
    world.alice._by_key[world.alice.layer.send_request(cancel, PROXY)] = sent
    world.run(500)
    assert sent.outcome is not None and sent.outcome.status == 200
    assert all(len(world.sent_to(device, "CANCEL")) == 1 for device in devices)
    world.run(33_000)
    assert call.outcome is not None and call.outcome.status == 487


def test_the_context_is_traced_with_its_table_rows() -> None:
    world = _world()
    world.device("bob", 1, {"INVITE": [Reply(200)]})
    world.alice.send("INVITE", "sip:bob@example.com")
    world.run(2000)
    steps = [(r["event"], r["before"], r["after"]) for r in world.records if r.get("machine") == "proxy"]
    assert steps == [("start", "init", "forwarding"), ("branch_provisional", "forwarding", "forwarding"),
                     ("branch_2xx", "forwarding", "terminated")]
    assert all(r["rfc"].startswith("RFC 3261") for r in world.records if r.get("machine") == "proxy")


class SlowResolver(StaticResolver):
    """A resolver that must not run on the scheduler thread (a DNS resolver): it records where it ran."""

    blocking = True

    def __init__(self, hosts: dict[str, list[str]]) -> None:
        super().__init__(hosts)
        self.threads: list[str] = []

    def resolve(self, uri: Any) -> list[Target]:
        import threading

        self.threads.append(threading.current_thread().name)
        return super().resolve(uri)


def test_a_blocking_resolver_runs_off_the_scheduler_thread_and_its_answer_comes_back_as_mail() -> None:
    resolver = SlowResolver(HOSTS)
    world = _world(resolver)
    world.device("bob", 1, {"INVITE": [Reply(200)]})
    call = world.alice.send("INVITE", "sip:bob@example.com")
    for _ in range(10):  # each lookup runs on the pool; wait for it, then let the scheduler take its mail
        world.run(200)
        wait(list(world.proxy.lookups))
    assert resolver.threads and all(name.startswith("sipactors-resolve") for name in resolver.threads)
    assert call.outcome is not None and call.outcome.status == 200


class BrokenResolver(StaticResolver):
    """Fails with a bug (not a ResolutionError) for one host: the context that meets it fails."""

    def resolve(self, uri: Any) -> list[Target]:
        if isinstance(uri, SipURI) and uri.host == "192.0.2.21":
            raise RuntimeError("a bug in the resolver")
        if isinstance(uri, SipURI) and uri.host == "192.0.2.99":
            raise ResolutionError(uri, "no such host")
        return super().resolve(uri)


def test_a_failing_context_answers_500_and_the_others_go_on_design_3() -> None:
    world = _world(BrokenResolver(HOSTS))
    world.device("bob", 1, {"INVITE": [Reply(200)]})
    world.device("carol", 2, {"INVITE": [Reply(200)]})
    broken = world.alice.send("INVITE", "sip:bob@example.com")
    fine = world.alice.send("INVITE", "sip:carol@example.com")
    world.run(3000)
    assert broken.outcome is not None and broken.outcome.status == 500
    assert fine.outcome is not None and fine.outcome.status == 200
    assert world.proxy.contexts == {}  # both ended, the failed one forgotten too


def test_an_unresolvable_next_hop_is_a_503_branch_sent_upstream_as_500_rfc3261_16_9() -> None:
    world = _world(BrokenResolver(HOSTS))
    world.store.locations.put(Binding("sip:dave@example.com", "sip:dave@192.0.2.99:5060", EPOCH + 3600, "r", 1))
    call = world.alice.send("INVITE", "sip:dave@example.com")
    world.run(2000)
    assert call.outcome is not None and call.outcome.status == 500
