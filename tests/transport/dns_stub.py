"""A DNS server for tests: it answers from a table, over UDP and TCP on 127.0.0.1 and an ephemeral port.

It is traffic to the loopback, not a DNS query leaving the machine. Every query it receives is logged, so
a test can say which lookups RFC 3263 made and which it must not have made.
"""

from __future__ import annotations

import socket
import struct
import threading
from dataclasses import dataclass, field, replace

from sipactors.transport.dns import CNAME, NXDOMAIN, SERVFAIL, Message, Record, decode, encode


@dataclass
class Zone:
    """What the stub answers. ``records[(name, type)]`` are answers; ``additional[(name, type)]`` go in the
    additional section; names in ``nxdomain`` get NXDOMAIN; queries in ``silent`` get nothing; in
    ``servfail`` SERVFAIL; in ``truncate`` an empty answer with TC set over UDP (the full one over TCP);
    in ``wrong_id`` a forged answer with another ID first, then the right one."""

    records: dict[tuple[str, int], list[Record]] = field(default_factory=dict)
    additional: dict[tuple[str, int], list[Record]] = field(default_factory=dict)
    nxdomain: set[str] = field(default_factory=set)
    silent: set[tuple[str, int]] = field(default_factory=set)
    servfail: set[tuple[str, int]] = field(default_factory=set)
    truncate: set[tuple[str, int]] = field(default_factory=set)
    wrong_id: set[tuple[str, int]] = field(default_factory=set)
    silent_all: bool = False

    def add(self, *records: Record) -> None:
        for record in records:
            self.records.setdefault((record.name.lower(), record.rtype), []).append(record)


class DnsStub:
    def __init__(self, zone: Zone) -> None:
        self.zone = zone
        self.log: list[tuple[str, str, int]] = []  # (UDP or TCP, name, type)
        self.udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.udp.bind(("127.0.0.1", 0))
        self.address: tuple[str, int] = self.udp.getsockname()
        self.tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.tcp.bind(self.address)  # the same port number, as a nameserver has
        self.tcp.listen(8)
        self.udp.settimeout(0.05)
        self.tcp.settimeout(0.05)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._serve_udp, daemon=True), threading.Thread(target=self._serve_tcp, daemon=True)]
        for thread in self._threads:
            thread.start()

    @property
    def nameserver(self) -> str:
        return f"{self.address[0]}:{self.address[1]}"

    def queries(self, protocol: str | None = None) -> list[tuple[str, int]]:
        return [(name, rtype) for proto, name, rtype in self.log if protocol in (None, proto)]

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()
        self.udp.close()
        self.tcp.close()

    def answer(self, query: Message, protocol: str) -> list[bytes]:
        question = query.questions[0]
        key = (question.name.lower(), question.rtype)
        self.log.append((protocol, question.name.lower(), question.rtype))
        zone = self.zone
        if zone.silent_all or key in zone.silent:
            return []
        base = Message(query.id, response=True, recursion_desired=query.recursion_desired, recursion_available=True,
                       questions=query.questions)
        if key in zone.servfail:
            return [encode(replace(base, rcode=SERVFAIL))]
        if question.name.lower() in zone.nxdomain:
            return [encode(replace(base, rcode=NXDOMAIN))]
        if protocol == "UDP" and key in zone.truncate:
            return [encode(replace(base, truncated=True))]
        # a name with a CNAME answers every type with it (RFC 1034 §3.6.2); the stub gives one step only
        found = zone.records.get(key) or zone.records.get((key[0], CNAME), [])
        full = replace(base, answers=tuple(found), additionals=tuple(zone.additional.get(key, [])))
        answers = [encode(full)]
        if key in zone.wrong_id:
            answers.insert(0, encode(replace(full, id=(query.id + 1) % 65536, answers=())))
        return answers

    def _serve_udp(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.udp.recvfrom(65_535)
            except TimeoutError:
                continue
            except OSError:
                return
            for reply in self.answer(decode(data), "UDP"):
                self.udp.sendto(reply, peer)

    def _serve_tcp(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self.tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(2)
                (size,) = struct.unpack("!H", _read(connection, 2))
                for reply in self.answer(decode(_read(connection, size)), "TCP"):
                    connection.sendall(struct.pack("!H", len(reply)) + reply)


def _read(connection: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = connection.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data
