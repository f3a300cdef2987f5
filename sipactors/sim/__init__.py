"""Simulation: a virtual network with seeded loss, duplication, delay and reordering per link, on the
virtual clock of a ``ManualScheduler`` (DESIGN §1). The same transaction layer and actors run on it as on
real sockets; tests, the explorer and the model checker use it.

``SimUA`` (``ua.py``) is a user agent on this network: a small UA core over its own transaction layer,
answering by a script, reaching its next hops through a ``Resolver`` (RFC 3263) such as
``sipactors.transport.StaticResolver``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from sipactors.runtime.scheduler import ManualScheduler

__all__ = [
    "DEFAULT_SCRIPT", "ClientSubscription", "Dialog", "Link", "Outcome", "Reply", "Script", "SentRequest", "SimNetwork", "SimTransport", "SimUA",
]

Address = tuple[str, int]


@dataclass
class Link:
    """How one direction of a path treats datagrams. Reordering comes from the spread of delays."""

    loss: float = 0.0
    duplicate: float = 0.0
    delay_ms: tuple[float, float] = (1.0, 1.0)


@dataclass
class SimNetwork:
    scheduler: ManualScheduler
    seed: int = 0
    default: Link = field(default_factory=Link)
    links: dict[tuple[Address, Address], Link] = field(default_factory=dict)
    endpoints: dict[Address, Callable[[bytes, Address], None]] = field(default_factory=dict)
    log: list[tuple[float, Address, Address, bytes, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def attach(self, address: Address, receive: Callable[[bytes, Address], None]) -> None:
        self.endpoints[address] = receive

    def link(self, source: Address, destination: Address, link: Link) -> None:
        self.links[(source, destination)] = link

    def send(self, data: bytes, source: Address, destination: Address) -> None:
        link = self.links.get((source, destination), self.default)
        now = self.scheduler.now()
        if self.random.random() < link.loss:
            self.log.append((now, source, destination, data, "lost"))
            return
        copies = 2 if self.random.random() < link.duplicate else 1
        for _ in range(copies):
            delay = self.random.uniform(*link.delay_ms)
            self.log.append((now, source, destination, data, "sent"))
            self.scheduler.call_later(delay, lambda: self._deliver(data, source, destination))

    def _deliver(self, data: bytes, source: Address, destination: Address) -> None:
        receive = self.endpoints.get(destination)
        if receive is not None:
            receive(data, source)


@dataclass
class SimTransport:
    """The transport a transaction layer sees in simulation (unreliable, like UDP, unless told)."""

    network: SimNetwork
    address: Address
    reliable: bool = False
    sent: list[tuple[bytes, Address]] = field(default_factory=list)

    def send(self, data: bytes, destination: Address, failed: Callable[[], None] | None = None) -> None:
        """Send ``data``; a reliable transport with nobody at ``destination`` cannot open a connection
        there: ``failed`` is called (RFC 3261 §18.4), and nothing is sent."""
        if failed is not None and self.reliable and destination not in self.network.endpoints:
            failed()
            return
        self.sent.append((data, destination))
        self.network.send(data, self.address, destination)


from sipactors.sim.ua import (  # noqa: E402 - ua uses the above
    DEFAULT_SCRIPT,
    ClientSubscription,
    Dialog,
    Outcome,
    Reply,
    Script,
    SentRequest,
    SimUA,
)
