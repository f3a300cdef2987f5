"""The UDP transport on a real loop and 127.0.0.1 sockets: a datagram the scheduler thread sends leaves at
once from the listening port (RFC 3581 §4: the response from where the request came in), a full socket
buffer hands it to the loop instead, and after the socket closes nothing is sent."""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from sipactors.transport import UdpTransport


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
