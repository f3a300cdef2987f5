"""The UDP transport on a real loop and 127.0.0.1 sockets: a datagram the scheduler thread sends leaves at
once from the listening port (RFC 3581 §4: the response from where the request came in), a full socket
buffer hands it to the loop instead, and after the socket closes nothing is sent; read on the scheduler
thread, every datagram reaches the layer there."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pykka
import pytest

from sipactors.runtime import ThreadScheduler
from sipactors.transport import Limits, UdpTransport


@pytest.fixture
def udp() -> Iterator[tuple[asyncio.AbstractEventLoop, UdpTransport, Any, socket.socket]]:
    loop = asyncio.new_event_loop()
    protocol = UdpTransport(loop, lambda *args: None, lambda *args: None)
    endpoint, _ = loop.run_until_complete(
        loop.create_datagram_endpoint(lambda: protocol, local_addr=("127.0.0.1", 0)))
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(5)
    yield loop, protocol, endpoint, peer
    peer.close()
    endpoint.close()
    loop.run_until_complete(asyncio.sleep(0))  # one turn: connection_lost
    loop.close()


def test_a_datagram_sent_from_another_thread_leaves_at_once_from_the_listening_port(udp) -> None:  # type: ignore[no-untyped-def]
    loop, protocol, endpoint, peer = udp
    # the loop is not running: the datagram cannot be waiting for it
    sender = threading.Thread(target=protocol.send, args=(b"SIP/2.0 200 OK\r\n\r\n", peer.getsockname()))
    sender.start()
    sender.join()
    data, source = peer.recvfrom(65535)
    assert data == b"SIP/2.0 200 OK\r\n\r\n" and source == endpoint.get_extra_info("sockname")


class _FullBuffer:
    def sendto(self, data: bytes, destination: Any) -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    def close(self) -> None:
        pass


def test_a_full_socket_buffer_hands_the_datagram_to_the_loop(udp) -> None:  # type: ignore[no-untyped-def]
    loop, protocol, endpoint, peer = udp
    direct, protocol._direct = protocol._direct, _FullBuffer()  # type: ignore[assignment]
    protocol.send(b"queued", peer.getsockname())
    loop.run_until_complete(asyncio.sleep(0))  # one turn of the loop: it sends what was handed to it
    assert peer.recvfrom(65535) == (b"queued", endpoint.get_extra_info("sockname"))
    protocol._direct = direct


def test_nothing_is_sent_once_the_socket_is_closed(udp) -> None:  # type: ignore[no-untyped-def]
    loop, protocol, endpoint, peer = udp
    direct = protocol._direct
    assert direct is not None
    endpoint.close()
    loop.run_until_complete(asyncio.sleep(0))
    assert protocol._direct is None and direct.fileno() == -1  # the duplicate descriptor is closed too
    protocol.send(b"late", peer.getsockname())
    peer.settimeout(0)
    with pytest.raises(BlockingIOError):
        peer.recvfrom(65535)


def test_read_on_the_scheduler_delivers_every_datagram_on_its_thread_and_none_on_the_loop(udp) -> None:  # type: ignore[no-untyped-def]
    """``serve`` has the scheduler thread read the UDP socket (``read_on(scheduler.watch)``): datagrams,
    also more than one batch of them and ones that arrive while the worker sleeps, reach ``deliver`` in
    order on that thread, a keep-alive is dropped, and the loop no longer reads the socket."""
    loop, protocol, endpoint, peer = udp
    scheduler = ThreadScheduler()
    got: list[tuple[bytes, Any, bool]] = []
    done = pykka.ThreadingFuture()
    later = pykka.ThreadingFuture()

    def deliver(data: bytes, source: Any, transport: Any) -> None:
        got.append((data, source, scheduler.in_scheduler()))
        if len(got) == 200:
            done.set(True)
        elif len(got) == 201:
            later.set(True)

    protocol.deliver = deliver
    try:
        protocol.read_on(scheduler.watch)
        address = endpoint.get_extra_info("sockname")
        for i in range(200):
            peer.sendto(b"OPTIONS %d" % i, address)
            if i == 100:
                peer.sendto(b"\r\n\r\n", address)  # RFC 5626 keep-alive
        assert done.get(timeout=5)
        assert [data for data, _, _ in got] == [b"OPTIONS %d" % i for i in range(200)]
        assert all(source == peer.getsockname() and on_worker for _, source, on_worker in got)
        peer.sendto(b"OPTIONS last", address)
        loop.run_until_complete(asyncio.sleep(0.01))  # turns of the loop: it must not take the datagram
        assert later.get(timeout=5) and got[-1][0] == b"OPTIONS last" and got[-1][2]
    finally:
        scheduler.stop()


def test_the_listening_socket_asks_for_a_receive_buffer_that_holds_a_burst(udp) -> None:  # type: ignore[no-untyped-def]
    loop, protocol, endpoint, peer = udp
    with open("/proc/sys/net/core/rmem_max") as limit:  # Linux doubles what is asked, up to twice rmem_max
        expected = 2 * min(Limits.udp_receive_buffer, int(limit.read()))
    assert endpoint.get_extra_info("socket").getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) == expected
