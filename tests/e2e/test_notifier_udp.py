"""The notifier over real UDP on 127.0.0.1, in process (the server's package list cannot be given to a
``sipactors serve`` subprocess, and the server hosts no package yet): the server's pieces as ``serve``
wires them — a ``UdpTransport`` read on a ``ThreadScheduler``, the transaction layer, the core and the
notifier with a test-only package — and a plain socket as the subscriber. SUBSCRIBE → 200 and NOTIFY
(RFC 6665 §4.2.1.2), a state change → NOTIFY (§4.2.2), unsubscribe → terminated;reason=timeout
(§4.2.1.4), CSeqs increasing (RFC 3261 §12.2.1.1)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from sipactors.message import NameAddr, Request, Response, SipURI, parse
from sipactors.message.build import response_for
from sipactors.roles.core import Core
from sipactors.roles.proxy import Listener, ProxyPolicy
from sipactors.runtime import ThreadScheduler, set_default_scheduler
from sipactors.runtime.subscription import Notifier
from sipactors.runtime.transaction import TransactionLayer
from sipactors.store import MemoryStore
from sipactors.transport import StaticResolver, UdpTransport
from tests.runtime.subscription_world import TextPackage


@pytest.fixture
def server() -> Iterator[tuple[Any, TextPackage, ThreadScheduler, Notifier, socket.socket]]:
    loop = asyncio.new_event_loop()
    scheduler = ThreadScheduler()
    set_default_scheduler(scheduler)
    holder: dict[str, TransactionLayer] = {}
    protocol = UdpTransport(loop, lambda data, source, transport: holder["layer"].receive(data, source, transport),
                            lambda *args: None)
    endpoint, _ = loop.run_until_complete(loop.create_datagram_endpoint(lambda: protocol, local_addr=("127.0.0.1", 0)))
    host, port = endpoint.get_extra_info("sockname")
    package = TextPackage(states={"sip:bob@127.0.0.1": "open"})
    notifier = Notifier(
        MemoryStore().subscriptions, NameAddr(SipURI("sip", host, None, port=port)), time.time, via_host=host,
        via_port=port, resolver=StaticResolver({}), domain=ProxyPolicy(frozenset(), (Listener("UDP", host, port),)),
    )
    notifier.register(package)
    holder["layer"] = TransactionLayer(protocol, Core("test", notifier=notifier), scheduler)
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(15)
    # the parser's patterns are built on first use (seconds on a loaded machine): build them now, as serve does
    parse(_subscribe((host, port), peer, 1, 600)).validate_all()
    protocol.read_on(scheduler.watch)
    yield (host, port), package, scheduler, notifier, peer
    peer.close()
    scheduler.stop()
    set_default_scheduler(None)
    endpoint.close()
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()


def _subscribe(address: tuple[str, int], peer: socket.socket, cseq: int, expires: int, to_tag: str = "") -> bytes:
    me = "{}:{}".format(*peer.getsockname())
    uri = f"sip:bob@{address[0]}" if not to_tag else f"sip:{address[0]}:{address[1]}"
    tag = f";tag={to_tag}" if to_tag else ""
    return (
        f"SUBSCRIBE {uri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKs{cseq};rport\r\nMax-Forwards: 70\r\n"
        f"To: <sip:bob@{address[0]}>{tag}\r\nFrom: <sip:alice@{address[0]}>;tag=a1\r\nCall-ID: e2e-1\r\n"
        f"CSeq: {cseq} SUBSCRIBE\r\nContact: <sip:alice@{me}>\r\nEvent: x-test\r\nExpires: {expires}\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def _next(peer: socket.socket, notifies: list[Request], responses: list[Response]) -> Request | Response:
    """The next message that is not a retransmitted NOTIFY; every NOTIFY is answered 200."""
    while True:
        data, source = peer.recvfrom(65535)
        message = parse(data)
        if isinstance(message, Request):
            peer.sendto(bytes(response_for(message, 200)), source)
            if any(n.cseq == message.cseq for n in notifies):
                continue
            notifies.append(message)
        else:
            responses.append(message)
        return message


def test_subscribe_notify_change_unsubscribe_over_real_udp(server) -> None:  # type: ignore[no-untyped-def]
    address, package, scheduler, notifier, peer = server
    notifies: list[Request] = []
    responses: list[Response] = []
    peer.sendto(_subscribe(address, peer, 1, 600), address)
    while len(notifies) < 1 or len(responses) < 1:  # the 200 and the first NOTIFY, in either order
        _next(peer, notifies, responses)
    assert responses[0].status == 200 and responses[0].expires == 600
    assert notifies[0].header_text("Subscription-State") == "active;expires=600" and notifies[0].body == b"open"
    to_tag = responses[0].to.tag  # type: ignore[union-attr]
    assert to_tag is not None and notifies[0].from_.tag == to_tag  # type: ignore[union-attr]

    def change() -> None:
        package.states["sip:bob@127.0.0.1"] = "busy"
        notifier.changed("x-test", "sip:bob@127.0.0.1")

    scheduler.submit(change)  # packages call the notifier on the scheduler's thread
    _next(peer, notifies, responses)
    assert notifies[-1].body == b"busy"

    peer.sendto(_subscribe(address, peer, 2, 0, to_tag), address)
    while len(responses) < 2 or not (notifies[-1].header_text("Subscription-State") or "").startswith("terminated"):
        _next(peer, notifies, responses)
    assert responses[1].status == 200
    assert notifies[-1].header_text("Subscription-State") == "terminated;reason=timeout"
    seqs = [n.cseq.seq for n in notifies]  # type: ignore[union-attr]
    assert seqs == sorted(set(seqs)) and len(seqs) == 3

