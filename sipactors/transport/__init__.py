"""Transports (RFC 3261 §18) on asyncio: UDP and TCP, with the limits a server needs against abusive peers.

The asyncio loop owns the sockets; the transaction layer runs on the scheduler's worker thread. Bytes that
arrive on TCP are handed to the layer through the scheduler (``submit``), so the layer and its actors
only ever run on that thread; ``serve`` has a UDP socket read on that thread itself (``UdpTransport.read_on``).
A UDP datagram to send goes out from that thread at once, on a duplicate of the loop's socket (one
``sendto``, which the kernel serialises); TCP bytes, and a datagram the socket buffer has no room for, are
handed back to the loop with ``call_soon_threadsafe``.

Where a request goes next (RFC 3263) is asked of a ``Resolver`` (``resolve.py``); simulations and tests
use ``StaticResolver``, which never sends a DNS query; ``dns.py`` holds the DNS resolver (NAPTR, SRV,
A/AAAA) that ``HostsFirstResolver`` asks for names outside the static hosts table.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import socket
from collections.abc import Callable
from typing import Any

from sipactors.message import Via
from sipactors.message.message import split_head
from sipactors.transport.resolve import (
    HostsFirstResolver,
    NextHop,
    ResolutionError,
    Resolver,
    StaticResolver,
    Target,
    next_hop,
    proxy_uri,
)

__all__ = [
    "HostsFirstResolver", "Limits", "NextHop", "ResolutionError", "Resolver", "StaticResolver", "Target", "TcpTransport", "UdpTransport",
    "next_hop", "proxy_uri", "response_destination",
]

log = logging.getLogger("sipactors.transport")

Address = tuple[str, int]
Deliver = Callable[[bytes, Address, Any], None]


class Limits:
    """Message-size and idle limits (RFC 3261 §18.1.1 notes 1300 octets for UDP paths; we accept more)."""

    max_datagram = 16_384  # a larger UDP message is answered 513 (RFC 3261 §21.5.9)
    max_head = 32_768  # TCP: octets before the empty line
    max_body = 1_048_576  # TCP: Content-Length above this closes the connection
    idle_seconds = 120.0  # TCP: a connection silent this long is closed
    connect_seconds = 10.0  # TCP: opening a connection that takes longer fails (a transport error)
    # UDP: the receive buffer asked for (Linux doubles it, capped by net.core.rmem_max): room for a burst of
    # a few hundred requests while the one scheduler thread is busy, where the default (208 KiB in the
    # kernel's count) drops datagrams a client must then retransmit. Kamailio asks for the same 256 KiB.
    udp_receive_buffer = 262_144


def response_destination(via: Via, source: Address) -> Address:
    """Where a response goes over UDP (RFC 3261 §18.2.2, RFC 3581 §4): the source port when the Via asks
    for rport, else the sent-by port (5060 by default), at the address the request came from."""
    if "maddr" in via.params:
        return (via.params.get("maddr") or source[0], via.port or 5060)
    if "rport" in via.params:
        return source
    port = via.port or 5060
    # The usual case, a response to where the request came from: share the source tuple, which a
    # transaction keeps as its peer for all its life.
    return source if len(source) == 2 and source[1] == port else (source[0], port)


class UdpTransport(asyncio.DatagramProtocol):
    reliable = False
    name = "UDP"

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Deliver, too_large: Deliver) -> None:
        self.loop = loop
        self.deliver = deliver
        self.too_large = too_large
        self.socket: asyncio.DatagramTransport | None = None
        self._direct: socket.socket | None = None  # the same socket, for sending from the scheduler thread
        self._waiting: select.poll | None = None  # whether a datagram waits on it (where poll exists)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.socket = transport  # type: ignore[assignment]
        # asyncio exposes its socket only as a TransportSocket, which cannot send: a duplicate descriptor
        # of the same socket (same port, same non-blocking mode) can
        self._direct = socket.socket(fileno=os.dup(transport.get_extra_info("socket").fileno()))
        try:
            self._direct.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, Limits.udp_receive_buffer)
        except OSError as error:  # (a platform without it): the default buffer still works
            log.info("UDP receive buffer left at the default: %s", error)
        if hasattr(select, "poll"):
            self._waiting = select.poll()
            self._waiting.register(self._direct, select.POLLIN)

    def connection_lost(self, exc: Exception | None) -> None:
        direct, self._direct, self._waiting = self._direct, None, None
        if direct is not None:
            direct.close()

    def read_on(self, watch: Callable[[socket.socket, Callable[[], None]], None]) -> None:
        """Receive on another thread from now on: the loop stops reading the socket, and ``watch`` (the
        scheduler's) calls ``read_ready`` on its thread when datagrams wait, so they reach ``deliver`` there."""
        assert self.socket is not None and self._direct is not None, "read_on before the endpoint is made"
        self.socket.pause_reading()  # type: ignore[attr-defined]  # (every selector transport has it)
        watch(self._direct, self.read_ready)

    def read_ready(self) -> None:
        """Read the datagrams waiting (a bounded batch, so that actors get their turn) and deliver each."""
        direct = self._direct
        if direct is None:
            return
        recvfrom, deliver, waiting = direct.recvfrom, self.deliver, self._waiting
        for count in range(64):
            try:
                data, addr = recvfrom(65_536)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as error:  # (an ICMP error reported on the socket): nothing was received
                log.debug("UDP receive: %s", error)
                return
            if len(data) > Limits.max_datagram or data[:1] in (b"", b"\r", b"\n"):
                self.datagram_received(data, addr)  # the rare cases, checked there
            else:  # an IPv4 address is (host, port) already; IPv6 adds flow info and scope
                deliver(data, addr if len(addr) == 2 else (addr[0], addr[1]), self)
            # Mostly one datagram waits: ask whether another does (~1.5 µs) rather than find out from a
            # recvfrom that raises BlockingIOError (~5 µs, the exception); a burst is read on to the end.
            if count == 0 and waiting is not None and not waiting.poll(0):
                return

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        source = (str(addr[0]), int(addr[1]))
        if len(data) > Limits.max_datagram:
            self.too_large(data, source, self)
            return
        if not data.strip(b"\r\n"):
            return  # a keep-alive (RFC 5626 §3.5.1 CRLF): nothing to answer
        self.deliver(data, source, self)

    def send(self, data: bytes, destination: Address) -> None:
        """Send from the calling (scheduler) thread: handing every datagram to the loop costs a self-pipe
        write, a loop wake-up and a switch of threads per response (measured: ~5-10 % of the server's CPU
        time per OPTIONS under SIPp, and a fifth of its profile samples)."""
        direct = self._direct
        if direct is None:
            return
        try:
            direct.sendto(data, destination)
        except (BlockingIOError, InterruptedError):  # a full buffer: the loop queues it and waits for room
            if self.socket is not None:
                self.loop.call_soon_threadsafe(self.socket.sendto, data, destination)
        except OSError as error:  # as asyncio would: UDP has no connection to fail, the datagram is lost
            log.warning("UDP send to %s failed: %s", destination, error)


class TcpTransport:
    """TCP connections, accepted or opened; messages are framed by Content-Length (RFC 3261 §18.3).

    Connections are kept by the peer's address, whichever side opened them, and a message for an address
    with an open connection goes on it: responses go back over the connection the request came on
    (§18.2.2), and a request for a device goes over the connection the device registered on when its
    address is the one sent to (§18.1.1, RFC 5626 §5.3 flow reuse). With no connection open, one is
    opened (on the loop: the caller never waits), and what is sent meanwhile waits for it; when it cannot
    be opened, each sender's ``failed`` is called: a client transaction's transport error (§17.1.4).
    """

    reliable = True
    name = "TCP"

    def __init__(self, loop: asyncio.AbstractEventLoop, deliver: Deliver, refuse: Callable[[bytes, str], bytes | None]) -> None:
        self.loop = loop
        self.deliver = deliver
        self.refuse = refuse  # (bytes so far, reason) -> a 400 to send before closing, if one can be built
        self.connections: dict[Address, asyncio.StreamWriter] = {}
        self._connecting: dict[Address, list[tuple[bytes, Callable[[], None] | None]]] = {}  # loop thread only
        self._tasks: set[asyncio.Task[None]] = set()  # connections we opened, read until they close

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Serve a connection a peer opened to us."""
        peer = writer.get_extra_info("peername")
        await self._serve(reader, writer, (str(peer[0]), int(peer[1])))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, source: Address) -> None:
        self.connections[source] = writer
        try:
            while True:
                problem = await self._one_message(reader, source, writer)
                if problem is not None:
                    break
        finally:
            if self.connections.get(source) is writer:
                del self.connections[source]
            writer.close()

    async def _one_message(self, reader: asyncio.StreamReader, source: Address, writer: asyncio.StreamWriter) -> str | None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), Limits.idle_seconds)
        except (asyncio.IncompleteReadError, ConnectionError):
            return "closed"
        except TimeoutError:
            return "idle"
        except asyncio.LimitOverrunError:
            self._refuse(b"", "Message header too large", writer)
            return "too large"
        stripped = head.lstrip(b"\r\n")
        if not stripped:
            return None  # CRLF keep-alives between messages
        try:
            headers = split_head(stripped, stream=True).headers
        except Exception:  # a head we cannot even split: the layer words the 400
            headers = []
        lengths = [value for name, value, _ in headers if name.lower() in ("content-length", "l")]
        if len(lengths) != 1 or not lengths[0].isdigit():
            self._refuse(stripped, "Missing or bad Content-Length on a stream transport", writer)
            return "framing"
        length = int(lengths[0])
        if length > Limits.max_body:
            self._refuse(stripped, "Message body too large", writer)
            return "too large"
        try:
            body = await asyncio.wait_for(reader.readexactly(length), Limits.idle_seconds)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
            return "closed"
        self.deliver(stripped + body, source, self)
        return None

    def _refuse(self, head: bytes, reason: str, writer: asyncio.StreamWriter) -> None:
        answer = self.refuse(head, reason)
        if answer is not None:
            writer.write(answer)

    def send(self, data: bytes, destination: Address, failed: Callable[[], None] | None = None) -> None:
        """Send from any thread; the loop writes it on the connection to ``destination``, opened first if
        there is none. ``failed`` is called (on the loop's thread) if no connection could be opened."""
        self.loop.call_soon_threadsafe(self._send, data, destination, failed)

    def _send(self, data: bytes, destination: Address, failed: Callable[[], None] | None) -> None:
        writer = self.connections.get(destination)
        if writer is not None and not writer.is_closing():
            writer.write(data)
            return
        waiting = self._connecting.get(destination)
        if waiting is not None:  # a connection is being opened: the bytes go once it is
            waiting.append((data, failed))
            return
        self._connecting[destination] = [(data, failed)]
        task = self.loop.create_task(self._connect(destination))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _connect(self, destination: Address) -> None:
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(destination[0], destination[1], limit=Limits.max_head), Limits.connect_seconds,
            )
        except (OSError, TimeoutError) as error:
            waiting = self._connecting.pop(destination, [])
            log.info("TCP connection to %s:%s failed: %s (%d messages not sent)", *destination, error, len(waiting))
            for _, failed in waiting:
                if failed is not None:
                    failed()
            return
        for data, _ in self._connecting.pop(destination, []):
            writer.write(data)
        await self._serve(reader, writer, destination)
