"""The presence server as ``sipactors serve`` wires it (``server.presence_service``), on the simulated network and
the virtual clock, over an SQLite file so that a restart rebuilds it on the same file with the clock carried on.

The clients (``SimUA`` devices and watchers) live on the same ``SimNetwork`` and ``ManualScheduler`` and survive a
restart; only the server side is rebuilt, as ``_run`` builds it: store, registrar, proxy, notifier, presence
package (with resource lists, watcher information and the rules poller), core, transaction layer; then
``registrar.restore``, ``presence.restore`` and ``notifier.restore(layer)`` scheduled at 0 ms, in that order.
"""

from __future__ import annotations

import random
from typing import Any

from sipactors.message import NameAddr, SipURI
from sipactors.roles.authorization import WatcherRules
from sipactors.roles.core import Core
from sipactors.roles.digest import Authenticator, DigestPolicy
from sipactors.roles.events import Authorization
from sipactors.roles.proxy import Listener, ProxyPolicy, ProxyRole
from sipactors.roles.registrar import Registrar, RegistrarPolicy
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.binding import wall_clock
from sipactors.runtime.proxy import Proxy
from sipactors.runtime.subscription import Notifier
from sipactors.runtime.transaction import TransactionLayer
from sipactors.server import PresenceService, presence_service
from sipactors.sim import Link, SimNetwork, SimTransport
from sipactors.store import open_store
from sipactors.store.commit import InlineCommitter
from sipactors.store.rules import RuleStore
from sipactors.transport import StaticResolver

SERVER = ("192.0.2.9", 5060)
DOMAIN = "example.com"
HOSTS = {DOMAIN: [SERVER[0]]}
EPOCH = 1_800_000_000.0
LOSSY = Link(loss=0.1, duplicate=0.1, delay_ms=(1, 150))


class PresenceServer:
    """One life of the server: everything ``_run`` builds, on ``scheduler`` and ``network``."""

    def __init__(self, url: str, scheduler: ManualScheduler, network: SimNetwork, resolver: StaticResolver,
                 entropy: random.Random, default: Authorization = Authorization.PENDING) -> None:
        self.scheduler = scheduler
        self.clock = wall_clock(scheduler, EPOCH)
        self.store = open_store(url)
        domains = frozenset({DOMAIN})

        def random_bytes(n: int) -> bytes:
            return entropy.randbytes(n)

        # as _run, but the registrar commits inline: a GroupCommitter's writer thread is not on the virtual clock
        self.registrar = Registrar(
            self.store, RegistrarPolicy(domains), Authenticator(random_bytes(32), DigestPolicy()), self.clock,
            random_bytes, committer=InlineCommitter(self.store.locations),
        )
        scheduler.call_later(0, self.registrar.restore)
        proxy_policy = ProxyPolicy(domains, (Listener("UDP", *SERVER),))
        proxy_role = ProxyRole(self.store, proxy_policy, self.registrar.authenticator, self.clock, random_bytes,
                               locations=self.registrar)
        self.proxy = Proxy(proxy_role, resolver)
        self.notifier = Notifier(
            self.store.subscriptions, NameAddr(SipURI("sip", SERVER[0], None, port=SERVER[1])), self.clock,
            via_host=SERVER[0], via_port=SERVER[1], resolver=resolver, admit=proxy_role.admit_local,
            domain=proxy_policy,
        )
        self.service: PresenceService = presence_service(
            self.store, self.registrar, self.notifier, domains, scheduler, WatcherRules(self.store.presence_rules, default),
            clock=self.clock, entropy=random_bytes,
        )
        self.core = Core("sipactors-sim", self.registrar, self.proxy, self.notifier, self.service.presence)
        self.transport = SimTransport(network, SERVER)
        self.layer = TransactionLayer(self.transport, self.core, scheduler)
        network.attach(SERVER, lambda data, source: self.layer.receive(data, source))
        scheduler.call_later(0, lambda: self.notifier.restore(self.layer))

    @property
    def rules(self) -> RuleStore:
        store: Any = self.store
        return store.presence_rules

    def crash(self, network: SimNetwork) -> None:
        """The process ends: nothing more is received or sent, every timer of it is gone, the file is closed."""
        network.attach(SERVER, lambda data, source: None)
        self.transport.send = lambda *args, **kwargs: None  # type: ignore[method-assign]
        self.service.poller.stop()
        self.notifier.close()
        self.proxy.close()
        self.store.close()


class PresenceWorld:
    """The network, the clock, the clients' resolver, and the server's current life."""

    def __init__(self, url: str, seed: int = 0, link: Link | None = None) -> None:
        self.url = url
        self.seed = seed
        self.scheduler = ManualScheduler(seed=seed)
        set_default_scheduler(self.scheduler)
        self.network = SimNetwork(self.scheduler, seed=seed, default=link or LOSSY)
        self.resolver = StaticResolver(HOSTS)
        self.entropy = random.Random(f"server|{seed}")
        self.lives = 1
        self.server = PresenceServer(url, self.scheduler, self.network, self.resolver, self.entropy)
        self.scheduler.run_until_idle()

    def clock(self) -> float:
        return self.epoch_seconds(self.scheduler.now())

    @staticmethod
    def epoch_seconds(ms: float) -> float:
        """The wall time (POSIX seconds) at virtual time ``ms``."""
        return EPOCH + ms / 1000.0

    def run(self, ms: float) -> None:
        self.scheduler.advance(ms)

    def restart(self, down_ms: float) -> None:
        """Stop the server, keep the clock running ``down_ms`` with nobody listening, start it again on the
        same file. Every timer left then is the dead server's (the caller settles the clients first), so all
        are cancelled: a timer of a process that ended never fires."""
        self.server.crash(self.network)
        for _, _, handle in list(self.scheduler._timers):
            handle.cancel()
        self.scheduler.advance(down_ms)
        self.lives += 1
        self.server = PresenceServer(self.url, self.scheduler, self.network, self.resolver, self.entropy)
        self.scheduler.run_until_idle()

    def close(self) -> None:
        self.server.crash(self.network)
        set_default_scheduler(None)
