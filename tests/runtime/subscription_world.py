"""A notifier on the simulated network, with a test-only event package, for the subscription tests."""

from __future__ import annotations

from dataclasses import dataclass, field

from sipactors.message import NameAddr, SipURI
from sipactors.roles.core import Core
from sipactors.roles.events import Authorization, Body, SubscriptionInfo
from sipactors.roles.proxy import Listener, ProxyPolicy
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.binding import wall_clock
from sipactors.runtime.subscription import Notifier
from sipactors.runtime.transaction import TransactionLayer
from sipactors.sim import Link, SimNetwork, SimTransport, SimUA
from sipactors.store import MemoryStore, SqliteStore
from sipactors.transport import StaticResolver

SERVER = ("192.0.2.9", 5060)
ALICE = ("192.0.2.1", 5060)
CAROL = ("192.0.2.3", 5060)
HOSTS = {"example.com": ["192.0.2.9"], "other.example": ["192.0.2.50"]}
EPOCH = 1_800_000_000.0
BOB = "sip:bob@example.com"
LOSSY = Link(loss=0.2, duplicate=0.2, delay_ms=(1, 200))


@dataclass
class TextPackage:
    """A test-only event package ("x-test"): a resource's state is a line of text, rendered text/plain;
    the watcher's authorization is looked up in ``rules`` (ALLOW by default)."""

    event: str = "x-test"
    states: dict[str, str] = field(default_factory=lambda: {"sip:bob@example.com": "open"})
    rules: dict[str, Authorization] = field(default_factory=dict)
    started_calls: list[tuple[str, Authorization]] = field(default_factory=list)
    ended_calls: list[tuple[str, str]] = field(default_factory=list)
    default_expires: int = 3600
    fulls: list[tuple[bool, frozenset[str]]] = field(default_factory=list)  # (full, changed) of every body asked
    required: frozenset[str] = frozenset()  # option tags a SUBSCRIBE must support (RFC 4662 §4: eventlist)

    def content_types(self) -> tuple[str, ...]:
        return ("text/plain",)

    def resource_exists(self, resource: str) -> bool:
        return resource in self.states

    def authorize(self, subscription: SubscriptionInfo) -> Authorization:
        return self.rules.get(subscription.watcher, Authorization.ALLOW)

    def body(self, subscription: SubscriptionInfo, authorization: Authorization, *, full: bool = True,
             changed: frozenset[str] = frozenset()) -> Body | None:
        self.fulls.append((full, changed))
        if authorization is Authorization.PENDING:
            return None
        text = "closed" if authorization is Authorization.POLITE_BLOCK else self.states[subscription.resource]
        return Body("text/plain", text.encode())

    def required_extensions(self, subscription: SubscriptionInfo) -> frozenset[str]:
        return self.required

    def started(self, subscription: SubscriptionInfo, authorization: Authorization) -> None:
        self.started_calls.append((subscription.id, authorization))

    def ended(self, subscription: SubscriptionInfo, reason: str) -> None:
        self.ended_calls.append((subscription.id, reason))


class World:
    def __init__(self, seed: int = 0, link: Link | None = None, store: MemoryStore | SqliteStore | None = None,
                 package: TextPackage | None = None, start_ms: float = 0.0) -> None:
        self.scheduler = ManualScheduler(seed=seed, start_ms=start_ms)
        set_default_scheduler(self.scheduler)
        self.network = SimNetwork(self.scheduler, seed=seed, default=link or Link())
        self.resolver = StaticResolver(HOSTS)
        self.store = store if store is not None else MemoryStore()
        self.package = package or TextPackage()
        self.notifier = Notifier(
            self.store.subscriptions, NameAddr(SipURI("sip", SERVER[0], None, port=SERVER[1])),
            wall_clock(self.scheduler, EPOCH), via_host=SERVER[0], via_port=SERVER[1], resolver=self.resolver,
            domain=ProxyPolicy(frozenset({"example.com"}), (Listener("UDP", *SERVER),)),
        )
        self.notifier.register(self.package)
        self.core = Core("test", notifier=self.notifier)
        self.transport = SimTransport(self.network, SERVER)
        self.layer = TransactionLayer(self.transport, self.core, self.scheduler)
        self.network.attach(SERVER, lambda data, source: self.layer.receive(data, source))
        self.alice = SimUA(self.network, "sip:alice@example.com", ALICE, self.resolver, seed=seed)
        self.carol = SimUA(self.network, "sip:carol@example.com", CAROL, self.resolver, seed=seed + 1)

    def run(self, ms: float = 40_000) -> None:
        self.scheduler.advance(ms)

    def close(self) -> None:
        set_default_scheduler(None)
