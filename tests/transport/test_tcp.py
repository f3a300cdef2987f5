"""The TCP transport on a real loop and 127.0.0.1 sockets (RFC 3261 §18): a message for an address with an
open connection goes on it, whoever opened it (RFC 5626 §5.3 flow reuse); with none, one connection is
opened and every message sent meanwhile goes on it in order; a refused connection calls each sender's
``failed`` (the client transaction's transport error, §17.1.4); replies on a connection we opened are
delivered like any other."""

from __future__ import annotations

import asyncio
import socket

from sipactors.transport import TcpTransport

MESSAGE = b"OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n"


def _transport(loop: asyncio.AbstractEventLoop, delivered: list[tuple[bytes, tuple[str, int]]],
               arrived: asyncio.Event | None = None) -> TcpTransport:
    def deliver(data: bytes, source: tuple[str, int], _: object) -> None:
        delivered.append((data, source))
        if arrived is not None:
            arrived.set()

    return TcpTransport(loop, deliver, lambda head, reason: None)


def test_a_connection_is_opened_once_used_in_order_and_read_from() -> None:
    async def scenario() -> None:
        delivered: list[tuple[bytes, tuple[str, int]]] = []
        arrived = asyncio.Event()
        tcp = _transport(asyncio.get_running_loop(), delivered, arrived)
        accepted: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
        server = await asyncio.start_server(lambda r, w: accepted.put_nowait((r, w)), "127.0.0.1", 0)
        address = server.sockets[0].getsockname()[:2]
        failures: list[int] = []
        tcp.send(MESSAGE, address, lambda: failures.append(1))
        tcp.send(MESSAGE.replace(b"x@", b"y@"), address, lambda: failures.append(2))  # while it is being opened
        reader, writer = await asyncio.wait_for(accepted.get(), 5)
        received = await asyncio.wait_for(reader.readexactly(2 * len(MESSAGE)), 5)
        assert received == MESSAGE + MESSAGE.replace(b"x@", b"y@") and accepted.empty()  # one connection, in order
        assert address in tcp.connections
        tcp.send(MESSAGE, address)  # reused
        assert await asyncio.wait_for(reader.readexactly(len(MESSAGE)), 5) == MESSAGE and accepted.empty()
        writer.write(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n")  # the answer comes back on it
        await writer.drain()
        await asyncio.wait_for(arrived.wait(), 5)
        assert delivered == [(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", address)] and failures == []
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(scenario())


def test_a_refused_connection_fails_every_message_waiting_for_it_rfc3261_17_1_4() -> None:
    async def scenario() -> None:
        refusing = socket.socket()  # bound, never listening: connecting is refused
        refusing.bind(("127.0.0.1", 0))
        address = refusing.getsockname()
        tcp = _transport(asyncio.get_running_loop(), [])
        failed = asyncio.Event()
        failures: list[int] = []

        def fail(n: int) -> None:
            failures.append(n)
            if len(failures) == 2:
                failed.set()

        tcp.send(MESSAGE, address, lambda: fail(1))
        tcp.send(MESSAGE, address, lambda: fail(2))
        await asyncio.wait_for(failed.wait(), 5)
        assert failures == [1, 2] and address not in tcp.connections
        refusing.close()

    asyncio.run(scenario())
