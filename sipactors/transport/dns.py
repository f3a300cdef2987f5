"""Locating SIP servers in the DNS (RFC 3263 §4): NAPTR, then SRV, then A/AAAA, with a small stdlib client.

Three parts, each usable alone:

* **the message codec** (RFC 1035 §4): ``Message`` with its ``Question``s and ``Record``s, ``encode`` and
  ``decode``. The record types SIP needs are decoded into fields — A, AAAA (RFC 3596), CNAME, SOA (for the
  negative-caching TTL, RFC 2308 §5), SRV (RFC 2782), NAPTR (RFC 3403 §4.1) — any other stays bytes.
  ``decode`` follows compression pointers (RFC 1035 §4.1.4) only backwards, so a crafted answer cannot
  loop it; ``encode`` compresses owner names and never the names inside SRV and NAPTR data (RFC 2782
  "Target": "name compression is not to be used for this field"; RFC 3597 §4).
* **the client** (``DnsClient``): one query at a time over UDP from a fresh socket (the OS picks the source
  port, the query ID is unpredictable: RFC 5452 §9), repeated over TCP when the answer is truncated (RFC
  1035 §4.2.2, RFC 7766 §5), to each nameserver in turn for a bounded number of rounds, each with a
  bounded wait. An answer must echo the question and the ID (RFC 5452 §4.3); anything else is ignored.
* **the resolver** (``DnsResolver``, a ``Resolver``): RFC 3263 §4.1 (transport: the URI's, else NAPTR,
  else SRV per transport, else UDP for SIP and TCP for SIPS), §4.2 (port and address: SRV, else A/AAAA at
  the URI's or the default port) and §4.3 with RFC 2782's usage rules (the order to try: priority, then a
  weighted draw from an injected ``random.Random``). Answers are cached for their TTL, and a name that
  does not exist for its SOA's negative TTL (RFC 2308 §5), so a proxy does not query per request.

The resolver's answer is the list of targets in the order to try them (§4.3: on a 503, a transport error
or a timeout the client tries the next one with a new branch). That list is built as follows: the NAPTR
records of the lowest ``order`` that lead anywhere (RFC 3403 §4.1: "once a NAPTR is found whose rule
matches ..., the client MUST NOT consider any NAPTRs with a higher value for order"), by ``preference``;
for each, its SRV records in RFC 2782 order; for each SRV target, its A then AAAA addresses. NAPTR flags
"s" (an SRV lookup follows) and "a" (an A/AAAA lookup follows, at the transport's default port) are
understood; other flags, and non-terminal records, are discarded as RFC 3403 §4.1 allows for rules a
client does not understand. Records for a transport the client does not support are discarded (§4.1);
with no usable NAPTR the client asks SRV for each transport it supports, in its order of preference.
"""

from __future__ import annotations

import ipaddress
import random
import secrets
import socket
import struct
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sipactors.message import URI, SipURI
from sipactors.transport.resolve import ResolutionError, Target, next_hop, split_address

__all__ = [
    "A", "AAAA", "CNAME", "DnsClient", "DnsError", "DnsFormatError", "DnsResolver", "Message", "NAPTR", "Naptr",
    "Question", "Record", "SOA", "SRV", "Soa", "Srv", "decode", "encode", "read_resolv_conf",
]

# RR types (RFC 1035 §3.2.2, RFC 3596 §2.1, RFC 2782, RFC 3403 §4) and the one class used (IN).
A, CNAME, SOA, AAAA, SRV, NAPTR = 1, 5, 6, 28, 33, 35
IN = 1
# RCODEs (RFC 1035 §4.1.1).
NOERROR, FORMERR, SERVFAIL, NXDOMAIN = 0, 1, 2, 3

#: A name is at most 255 octets on the wire, a label at most 63 (RFC 1035 §2.3.4).
_MAX_NAME, _MAX_LABEL = 255, 63


class DnsFormatError(ValueError):
    """A message that is not RFC 1035 wire format (truncated, a pointer forwards, an oversized name)."""


class DnsError(OSError):
    """No usable answer from any nameserver: every one timed out, failed or was unreachable."""


@dataclass(frozen=True, slots=True)
class Srv:
    """SRV RDATA (RFC 2782): where a service runs."""

    priority: int
    weight: int
    port: int
    target: str


@dataclass(frozen=True, slots=True)
class Naptr:
    """NAPTR RDATA (RFC 3403 §4.1). ``flags``, ``service`` and ``regexp`` are character-strings."""

    order: int
    preference: int
    flags: str
    service: str
    regexp: str
    replacement: str


@dataclass(frozen=True, slots=True)
class Soa:
    """SOA RDATA (RFC 1035 §3.3.13); ``minimum`` bounds the negative-caching TTL (RFC 2308 §4)."""

    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


#: A record's data: an address (A, AAAA) or a name (CNAME) as text, one of the dataclasses, or raw bytes.
RData = str | Srv | Naptr | Soa | bytes


@dataclass(frozen=True, slots=True)
class Question:
    name: str  # dotted, without the root's trailing dot; "" is the root
    rtype: int
    rclass: int = IN


@dataclass(frozen=True, slots=True)
class Record:
    name: str
    rtype: int
    ttl: int
    data: RData
    rclass: int = IN


@dataclass(frozen=True, slots=True)
class Message:
    """A DNS message (RFC 1035 §4.1): header fields, then the four sections."""

    id: int
    response: bool = False  # QR
    opcode: int = 0
    authoritative: bool = False  # AA
    truncated: bool = False  # TC
    recursion_desired: bool = True  # RD
    recursion_available: bool = False  # RA
    rcode: int = NOERROR
    questions: tuple[Question, ...] = ()
    answers: tuple[Record, ...] = ()
    authorities: tuple[Record, ...] = ()
    additionals: tuple[Record, ...] = ()


# ---------------------------------------------------------------------------------------------- encoding


def encode(message: Message) -> bytes:
    """The message in wire format (RFC 1035 §4.1), owner names compressed."""
    flags = (
        (message.response << 15) | ((message.opcode & 0xF) << 11) | (message.authoritative << 10)
        | (message.truncated << 9) | (message.recursion_desired << 8) | (message.recursion_available << 7)
        | (message.rcode & 0xF)
    )
    out = bytearray(struct.pack(
        "!HHHHHH", message.id, flags, len(message.questions), len(message.answers), len(message.authorities),
        len(message.additionals),
    ))
    offsets: dict[tuple[str, ...], int] = {}
    for question in message.questions:
        _put_name(out, question.name, offsets)
        out += struct.pack("!HH", question.rtype, question.rclass)
    for record in (*message.answers, *message.authorities, *message.additionals):
        _put_name(out, record.name, offsets)
        rdata = _rdata(record, len(out) + 10, offsets)
        out += struct.pack("!HHIH", record.rtype, record.rclass, record.ttl, len(rdata)) + rdata
    return bytes(out)


def _labels(name: str) -> tuple[str, ...]:
    labels = tuple(name.split(".")) if name else ()
    if any(not label or len(label.encode("latin-1")) > _MAX_LABEL for label in labels):
        raise ValueError(f"not a domain name: {name!r}")
    if sum(len(label) + 1 for label in labels) + 1 > _MAX_NAME:
        raise ValueError(f"domain name longer than {_MAX_NAME} octets: {name!r}")
    return labels


def _put_name(out: bytearray, name: str, offsets: dict[tuple[str, ...], int] | None) -> None:
    """Append ``name``; with ``offsets``, a suffix written before becomes a pointer (RFC 1035 §4.1.4)."""
    labels = _labels(name)
    for index in range(len(labels)):
        suffix = tuple(label.lower() for label in labels[index:])
        if offsets is not None:
            known = offsets.get(suffix)
            if known is not None:
                out += struct.pack("!H", 0xC000 | known)
                return
            if len(out) < 0x4000:
                offsets[suffix] = len(out)
        raw = labels[index].encode("latin-1")
        out += bytes((len(raw),)) + raw
    out += b"\0"


def _character_string(text: str) -> bytes:
    raw = text.encode("latin-1")
    if len(raw) > 255:
        raise ValueError(f"character-string longer than 255 octets: {text!r}")
    return bytes((len(raw),)) + raw


def _rdata(record: Record, start: int, offsets: dict[tuple[str, ...], int]) -> bytes:
    data = record.data
    if record.rtype == A and isinstance(data, str):
        return ipaddress.IPv4Address(data).packed
    if record.rtype == AAAA and isinstance(data, str):
        return ipaddress.IPv6Address(data).packed
    out = bytearray()
    if record.rtype == CNAME and isinstance(data, str):
        # a pointer in RDATA must count from the message's start: write into a scratch copy at ``start``
        scratch = bytearray(start)
        _put_name(scratch, data, offsets)
        return bytes(scratch[start:])
    if isinstance(data, Srv):
        out += struct.pack("!HHH", data.priority, data.weight, data.port)
        _put_name(out, data.target, None)
    elif isinstance(data, Naptr):
        out += struct.pack("!HH", data.order, data.preference)
        out += _character_string(data.flags) + _character_string(data.service) + _character_string(data.regexp)
        _put_name(out, data.replacement, None)
    elif isinstance(data, Soa):
        _put_name(out, data.mname, None)
        _put_name(out, data.rname, None)
        out += struct.pack("!IIIII", data.serial, data.refresh, data.retry, data.expire, data.minimum)
    elif isinstance(data, bytes):
        out += data
    else:
        raise ValueError(f"no wire form for {data!r} as type {record.rtype}")
    return bytes(out)


# ---------------------------------------------------------------------------------------------- decoding


def decode(data: bytes) -> Message:
    """A message from wire format; ``DnsFormatError`` if it is not one."""
    try:
        ident, flags, qdcount, ancount, nscount, arcount = struct.unpack_from("!HHHHHH", data, 0)
        offset = 12
        questions = []
        for _ in range(qdcount):
            name, offset = _get_name(data, offset)
            rtype, rclass = struct.unpack_from("!HH", data, offset)
            offset += 4
            questions.append(Question(name, rtype, rclass))
        sections: list[tuple[Record, ...]] = []
        for count in (ancount, nscount, arcount):
            records = []
            for _ in range(count):
                record, offset = _get_record(data, offset)
                records.append(record)
            sections.append(tuple(records))
    except struct.error as error:
        raise DnsFormatError(f"truncated message: {error}") from None
    if offset != len(data):
        raise DnsFormatError(f"{len(data) - offset} octets after the last record")
    return Message(
        ident, bool(flags >> 15), (flags >> 11) & 0xF, bool(flags & 0x400), bool(flags & 0x200),
        bool(flags & 0x100), bool(flags & 0x80), flags & 0xF, tuple(questions), *sections,
    )


def _get_name(data: bytes, offset: int) -> tuple[str, int]:
    """The name at ``offset`` and the offset after it. A pointer must point before the label that holds
    it, so following pointers always ends (RFC 1035 §4.1.4 allows only earlier occurrences)."""
    labels: list[str] = []
    end: int | None = None
    length = 1
    position = offset
    while True:
        if position >= len(data):
            raise DnsFormatError("name runs past the message")
        size = data[position]
        if size & 0xC0 == 0xC0:
            if position + 1 >= len(data):
                raise DnsFormatError("truncated compression pointer")
            target = ((size & 0x3F) << 8) | data[position + 1]
            if target >= position:
                raise DnsFormatError("compression pointer does not point backwards")
            if end is None:
                end = position + 2
            position = target
            continue
        if size & 0xC0:
            raise DnsFormatError(f"unknown label type {size >> 6:#x}")
        if size == 0:
            return ".".join(labels), end if end is not None else position + 1
        label = data[position + 1 : position + 1 + size]
        if len(label) != size:
            raise DnsFormatError("label runs past the message")
        text = label.decode("latin-1")
        if "." in text:
            raise DnsFormatError(f"label with a dot: {text!r}")
        length += size + 1
        if length > _MAX_NAME:
            raise DnsFormatError(f"name longer than {_MAX_NAME} octets")
        labels.append(text)
        position += size + 1


def _get_record(data: bytes, offset: int) -> tuple[Record, int]:
    name, offset = _get_name(data, offset)
    rtype, rclass, ttl, size = struct.unpack_from("!HHIH", data, offset)
    offset += 10
    end = offset + size
    if end > len(data):
        raise DnsFormatError("RDATA runs past the message")
    rdata: RData
    if rtype == A and size == 4:
        rdata = str(ipaddress.IPv4Address(data[offset:end]))
    elif rtype == AAAA and size == 16:
        rdata = str(ipaddress.IPv6Address(data[offset:end]))
    elif rtype == CNAME:
        rdata, after = _get_name(data, offset)
        _check_end(after, end, "CNAME")
    elif rtype == SRV:
        priority, weight, port = struct.unpack_from("!HHH", data, offset)
        target, after = _get_name(data, offset + 6)
        _check_end(after, end, "SRV")
        rdata = Srv(priority, weight, port, target)
    elif rtype == NAPTR:
        order, preference = struct.unpack_from("!HH", data, offset)
        position = offset + 4
        strings = []
        for _ in range(3):
            size_byte = data[position]
            strings.append(data[position + 1 : position + 1 + size_byte].decode("latin-1"))
            position += 1 + size_byte
        replacement, after = _get_name(data, position)
        _check_end(after, end, "NAPTR")
        rdata = Naptr(order, preference, strings[0], strings[1], strings[2], replacement)
    elif rtype == SOA:
        mname, position = _get_name(data, offset)
        rname, position = _get_name(data, position)
        numbers = struct.unpack_from("!IIIII", data, position)
        _check_end(position + 20, end, "SOA")
        rdata = Soa(mname, rname, *numbers)
    elif rtype in (A, AAAA):
        raise DnsFormatError(f"address record of {size} octets")
    else:
        rdata = bytes(data[offset:end])
    return Record(name, rtype, ttl, rdata, rclass), end


def _check_end(after: int, end: int, kind: str) -> None:
    if after != end:
        raise DnsFormatError(f"{kind} RDATA length does not match its content")


# ---------------------------------------------------------------------------------------------- the client


def read_resolv_conf(path: Path = Path("/etc/resolv.conf")) -> list[tuple[str, int]]:
    """The ``nameserver`` lines of resolv.conf(5), in order; the resolver library's default, the local
    host, when there are none or the file cannot be read."""
    servers: list[tuple[str, int]] = []
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in lines:
        words = line.split("#", 1)[0].split(";", 1)[0].split()
        if len(words) >= 2 and words[0] == "nameserver":
            address = words[1].split("%", 1)[0]  # an IPv6 zone index: the route is the kernel's business
            try:
                ipaddress.ip_address(address)
            except ValueError:
                continue
            servers.append((address, 53))
    return servers or [("127.0.0.1", 53)]


def parse_nameserver(text: str) -> tuple[str, int]:
    """``192.0.2.53``, ``192.0.2.53:5353``, ``2001:db8::53`` or ``[2001:db8::53]:5353``: a numeric address
    (a nameserver cannot be found by name) and a port, 53 by default."""
    host, port = split_address(text)
    ipaddress.ip_address(host)
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"port out of range in {text!r}")
    return host, port or 53


class DnsClient:
    """Sends a query to recursive nameservers and returns their answer (RFC 1035 §7, stub resolver).

    Each round asks every nameserver in turn, waiting ``timeout`` seconds for each; ``attempts`` rounds at
    most, so a query takes at most ``timeout × attempts × len(nameservers)`` seconds. SERVFAIL, REFUSED,
    NOTIMP and FORMERR move on to the next nameserver; NOERROR and NXDOMAIN are answers.
    """

    def __init__(
        self, nameservers: Sequence[tuple[str, int]], *, timeout: float = 2.0, attempts: int = 2,
        query_id: Callable[[], int] | None = None,
    ) -> None:
        if not nameservers:
            raise ValueError("no nameserver")
        if timeout <= 0 or attempts < 1:
            raise ValueError("timeout must be positive and attempts at least 1")
        self.nameservers = [(host, port) for host, port in nameservers]
        self.timeout = timeout
        self.attempts = attempts
        self.query_id = query_id or (lambda: secrets.randbits(16))

    def query(self, name: str, rtype: int) -> Message:
        """The answer to ``name``/``rtype`` (recursion desired); ``DnsError`` if no nameserver gave one."""
        problems: list[str] = []
        for _ in range(self.attempts):
            for server in self.nameservers:
                ident = self.query_id()
                wire = encode(Message(ident, questions=(Question(name, rtype),)))
                try:
                    answer = self._udp(wire, ident, name, rtype, server)
                    if answer.truncated:
                        answer = self._tcp(wire, ident, name, rtype, server)
                except (OSError, DnsFormatError) as error:
                    problems.append(f"{server[0]}:{server[1]}: {error or type(error).__name__}")
                    continue
                if answer.rcode in (NOERROR, NXDOMAIN):
                    return answer
                problems.append(f"{server[0]}:{server[1]}: rcode {answer.rcode}")
        raise DnsError(f"no answer for {name} type {rtype}: " + "; ".join(problems[-len(self.nameservers):]))

    def _udp(self, wire: bytes, ident: int, name: str, rtype: int, server: tuple[str, int]) -> Message:
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as sock:
            sock.connect(server)  # a connected socket takes datagrams from the nameserver only
            sock.send(wire)
            deadline = time.monotonic() + self.timeout
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("timed out")
                sock.settimeout(remaining)
                data = sock.recv(65_535)
                try:
                    answer = decode(data)
                except DnsFormatError:
                    if len(data) >= 12 and data[2] & 0x02 and struct.unpack_from("!H", data)[0] == ident:
                        answer = _truncated_header(data)  # a cut answer with TC set: TCP will tell
                    else:
                        continue
                if _matches(answer, ident, name, rtype):
                    return answer

    def _tcp(self, wire: bytes, ident: int, name: str, rtype: int, server: tuple[str, int]) -> Message:
        """RFC 1035 §4.2.2: each message prefixed by its two-octet length."""
        family = socket.AF_INET6 if ":" in server[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(server)  # numeric: no name-service call (create_connection would make one)
            sock.sendall(struct.pack("!H", len(wire)) + wire)
            (size,) = struct.unpack("!H", _read_exactly(sock, 2))
            answer = decode(_read_exactly(sock, size))
        if not _matches(answer, ident, name, rtype):
            raise DnsFormatError("the TCP answer does not match the question")
        return answer


def _truncated_header(data: bytes) -> Message:
    ident, flags = struct.unpack_from("!HH", data)
    return Message(ident, response=bool(flags >> 15), truncated=True, rcode=flags & 0xF)


def _matches(answer: Message, ident: int, name: str, rtype: int) -> bool:
    """An answer to our query: the ID, QR, and the question echoed (RFC 5452 §4.3); a truncated answer
    cut before its question is judged by its ID alone, and only TCP is believed after it."""
    if answer.id != ident or not answer.response:
        return False
    if answer.truncated and not answer.questions:
        return True
    return len(answer.questions) == 1 and answer.questions[0].name.lower() == name.lower() and answer.questions[0].rtype == rtype


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the nameserver closed the connection")
        data += chunk
    return bytes(data)


# ---------------------------------------------------------------------------------------------- the resolver

#: NAPTR services for SIP (RFC 3263 §4.1, and RFC 7118 §5 is not used: no WebSocket here) as transports.
_SERVICES = {"SIP+D2U": "UDP", "SIP+D2T": "TCP", "SIP+D2S": "SCTP", "SIPS+D2T": "TLS", "SIPS+D2S": "TLS-SCTP"}
#: SRV owner names per transport (RFC 3263 §4.1, §4.2): "_sips" for TLS, with the stream's protocol.
_SRV_PREFIX = {
    "UDP": "_sip._udp.", "TCP": "_sip._tcp.", "SCTP": "_sip._sctp.", "TLS": "_sips._tcp.", "TLS-SCTP": "_sips._sctp.",
}
#: How long a name that does not exist is remembered when the answer carries no SOA (RFC 2308 §5).
_NEGATIVE_TTL = 30
#: CNAME chains longer than this are refused (RFC 1034 §3.6.2 wants chains short; this ends loops).
_MAX_CNAMES = 8


@dataclass(slots=True)
class _Lookup:
    """One resolution's bookkeeping: the records the additional sections gave, and whether any query
    failed for want of an answer (then "nothing found" is a 503, not a 404)."""

    extra: dict[tuple[str, int], list[Record]] = field(default_factory=dict)
    unavailable: list[str] = field(default_factory=list)
    declined: bool = False  # an SRV target "." said the service is not offered (RFC 2782)


class DnsResolver:
    """RFC 3263 §4 over DNS (module docstring). ``transports`` are those the client can send on, in its
    order of preference (§4.1 discards the others); ``rng`` draws the SRV weights (RFC 2782); ``clock``
    (seconds, monotonic) ages the cache; ``ipv6`` asks AAAA after A."""

    blocking = True

    def __init__(
        self, client: DnsClient, *, transports: Sequence[str] = ("UDP", "TCP"), rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic, ipv6: bool = True, cache_size: int = 4096,
    ) -> None:
        unknown = [name for name in transports if name not in _SRV_PREFIX]
        if unknown:
            raise ValueError(f"unknown transports {unknown} (one of {sorted(_SRV_PREFIX)})")
        self.client = client
        self.transports = tuple(transports)
        self.rng = rng if rng is not None else random.Random()
        self.clock = clock
        self.ipv6 = ipv6
        self.cache_size = cache_size
        self._cache: dict[tuple[str, int], tuple[float, list[Record]]] = {}
        self._lock = threading.Lock()  # the proxy resolves on a thread pool

    # -- RFC 3263 §4.1 and §4.2

    def resolve(self, uri: URI) -> list[Target]:
        hop = next_hop(uri)
        if hop.numeric:
            return [Target(hop.transport, hop.name, hop.port or hop.default_port)]
        assert isinstance(uri, SipURI)  # next_hop refused the others
        try:
            _labels(hop.name)
        except ValueError as error:  # the SIP grammar allows labels DNS cannot carry (RFC 1035 §2.3.4)
            raise ResolutionError(uri, str(error), 404) from None
        lookup = _Lookup()
        steps: list[Callable[[], list[Target] | None]] = []
        if hop.port is not None:
            # §4.1: a port and no transport: UDP for SIP, TCP (TLS) for SIPS, as next_hop chose;
            # §4.2: "the client performs an A or AAAA record lookup of the domain name".
            steps.append(lambda: self._addresses(hop.name, hop.transport, hop.port or 0, lookup))
        elif "transport" in uri.params:
            # §4.2: an SRV query for that transport, else A/AAAA at its default port.
            steps.append(lambda: self._srv(_SRV_PREFIX[hop.transport] + hop.name, hop.transport, lookup))
            steps.append(lambda: self._addresses(hop.name, hop.transport, hop.default_port, lookup))
        else:
            steps.append(lambda: self._by_naptr(hop.name, uri.secure, lookup))
            steps.append(lambda: self._by_srv(hop.name, uri.secure, lookup))
            # §4.1 "If no SRV records are found, the client SHOULD use TCP for a SIPS URI, and UDP for a
            # SIP URI"; §4.2: at the default port of that transport.
            steps.append(lambda: self._addresses(hop.name, hop.transport, hop.default_port, lookup))
        targets: list[Target] | None = None
        for step in steps:
            targets = step()
            # a step that found nothing because DNS did not answer ends here: the next step is for names
            # known to have no such records, and asking on would only multiply the wait
            if targets is not None or lookup.unavailable:
                break
        if targets:
            return targets
        if lookup.unavailable:
            raise ResolutionError(uri, "DNS did not answer: " + lookup.unavailable[0], 503)
        if lookup.declined:
            raise ResolutionError(uri, f"{hop.name!r} says SIP is decidedly not available there (SRV target '.')", 404)
        raise ResolutionError(uri, f"no NAPTR, SRV, A or AAAA record leads to a server for {hop.name!r}", 404)

    def _by_naptr(self, name: str, secure: bool, lookup: _Lookup) -> list[Target] | None:
        """§4.1 NAPTR processing; ``None`` when no record applies (then SRV per transport)."""
        usable: list[tuple[Naptr, str]] = []
        for record in self._query(name, NAPTR, lookup):
            naptr = record.data
            if not isinstance(naptr, Naptr):
                continue
            transport = _SERVICES.get(naptr.service.upper())
            if transport is None or transport not in self.transports:
                continue  # §4.1: not a SIP service, or a transport this client does not support
            if secure and not transport.startswith("TLS"):
                continue  # §4.1: "a client resolving a SIPS URI MUST discard any services that do not contain SIPS"
            if naptr.flags.lower() not in ("s", "a") or naptr.regexp:
                continue  # §4.1: "an empty regular expression and a replacement value"; terminal rules only
            usable.append((naptr, transport))
        if not usable:
            return None
        for order in sorted({naptr.order for naptr, _ in usable}):
            group = sorted((item for item in usable if item[0].order == order), key=lambda item: item[0].preference)
            targets: list[Target] = []
            for naptr, transport in group:
                if naptr.flags.lower() == "s":
                    targets += self._srv(naptr.replacement, transport, lookup) or []
                else:
                    default = 5061 if transport.startswith("TLS") else 5060
                    targets += self._addresses(naptr.replacement, transport, default, lookup)
            if targets:
                return targets
        return []

    def _by_srv(self, name: str, secure: bool, lookup: _Lookup) -> list[Target] | None:
        """§4.1 with no NAPTR: an SRV query per supported transport (of the URI's security), the
        client's preferred first; ``None`` when none has records."""
        found: list[Target] | None = None
        for transport in self.transports:
            if transport.startswith("TLS") != secure:
                continue
            targets = self._srv(_SRV_PREFIX[transport] + name, transport, lookup)
            if targets is not None:
                found = (found or []) + targets
        return found

    def _srv(self, owner: str, transport: str, lookup: _Lookup) -> list[Target] | None:
        """§4.2 and RFC 2782: the SRV records of ``owner`` in the order to try, each target's addresses
        in turn; ``None`` when there are none, ``[]`` when they lead nowhere."""
        records = [r.data for r in self._query(owner, SRV, lookup) if isinstance(r.data, Srv)]
        if not records:
            return None
        if len(records) == 1 and records[0].target in ("", "."):
            lookup.declined = True  # RFC 2782: "the service is decidedly not available at this domain"
            return []
        targets: list[Target] = []
        for srv in srv_order(records, self.rng):
            if srv.target not in ("", "."):
                targets += self._addresses(srv.target, transport, srv.port, lookup)
        return targets

    def _addresses(self, name: str, transport: str, port: int, lookup: _Lookup) -> list[Target]:
        """§4.2: the A, then AAAA, records of ``name``, each at ``port`` over ``transport``."""
        types = (A, AAAA) if self.ipv6 else (A,)
        return [
            Target(transport, record.data, port)
            for rtype in types for record in self._query(name, rtype, lookup)
            if record.rtype == rtype and isinstance(record.data, str)
        ]

    # -- queries, CNAMEs and the cache

    def _query(self, name: str, rtype: int, lookup: _Lookup) -> list[Record]:
        """The records of type ``rtype`` for ``name``, following CNAMEs (RFC 1034 §3.6.2); a failed query
        is noted in ``lookup`` and counts as no records."""
        for _ in range(_MAX_CNAMES):
            key = (name.lower(), rtype)
            records = lookup.extra.get(key)
            if records is None:
                records = self._cached(key)
            if records is None:
                try:
                    answer = self.client.query(name, rtype)
                except DnsError as error:
                    lookup.unavailable.append(str(error))
                    return []
                records = self._remember(key, answer, lookup)
            wanted = [record for record in records if record.rtype == rtype]
            if wanted or rtype == CNAME:
                return wanted
            alias = next((record.data for record in records if record.rtype == CNAME), None)
            if not isinstance(alias, str):
                return []
            name = alias
        return []

    def _remember(self, key: tuple[str, int], answer: Message, lookup: _Lookup) -> list[Record]:
        """The answer's records for ``key`` (a CNAME chain within the answer followed), cached for the
        smallest TTL among them; an empty answer for its SOA's negative TTL (RFC 2308 §5). Addresses in
        the additional section serve this resolution (RFC 2782: "the additional data section ... may")
        but are not cached: they are not authoritative answers."""
        by_name: dict[str, list[Record]] = {}
        for record in answer.answers:
            by_name.setdefault(record.name.lower(), []).append(record)
        name, rtype = key
        records: list[Record] = []
        walked: list[Record] = []  # the CNAMEs followed within the answer
        for _ in range(_MAX_CNAMES):
            here = by_name.get(name, [])
            records = [record for record in here if record.rtype == rtype]
            alias = next((record for record in here if record.rtype == CNAME), None)
            if records or alias is None or not isinstance(alias.data, str):
                break
            walked.append(alias)
            name = alias.data.lower()
        if not records and walked:
            records = walked[-1:]  # an alias the answer does not resolve: _query asks for its target
        ttls = [record.ttl for record in (*walked, *records)]
        for record in answer.additionals:
            if record.rtype in (A, AAAA):
                lookup.extra.setdefault((record.name.lower(), record.rtype), []).append(record)
        if ttls:
            ttl = min(ttls)
        else:
            soas = [record for record in answer.authorities if isinstance(record.data, Soa)]
            ttl = min(soas[0].ttl, soas[0].data.minimum) if soas and isinstance(soas[0].data, Soa) else _NEGATIVE_TTL
        if ttl > 0:
            with self._lock:
                if len(self._cache) >= self.cache_size:
                    self._cache.pop(next(iter(self._cache)))  # the oldest entry
                self._cache[key] = (self.clock() + ttl, records)
        return records

    def _cached(self, key: tuple[str, int]) -> list[Record] | None:
        with self._lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if entry[0] <= self.clock():
                del self._cache[key]
                return None
            return entry[1]


def srv_order(records: Iterable[Srv], rng: random.Random) -> list[Srv]:
    """RFC 2782 "Usage rules": lowest priority first; within a priority, a weighted random draw.

    For each draw the remaining records are listed with the weight-0 ones first (then, so that one seed
    gives one order, by target and port: RFC 3263 §4.4 asks for a deterministic order among equals), a
    number is drawn uniformly from 0 to the sum of their weights inclusive, and the first record whose
    running sum reaches it is taken next. Taken literally, as here, the draw's inclusive 0 gives the first
    record listed one extra chance in ``sum + 1``: that is what lets a weight-0 record be "selected" at all
    ("a very small chance"), and it skews weights 1 and 3 to 2:3 rather than 1:3.
    """
    ordered: list[Srv] = []
    by_priority: dict[int, list[Srv]] = {}
    for record in records:
        by_priority.setdefault(record.priority, []).append(record)
    for priority in sorted(by_priority):
        remaining = sorted(by_priority[priority], key=lambda r: (r.weight != 0, r.target.lower(), r.port, r.weight))
        while remaining:
            total = sum(record.weight for record in remaining)
            draw = rng.randint(0, total)
            running = 0
            for index, record in enumerate(remaining):
                running += record.weight
                if running >= draw:
                    ordered.append(remaining.pop(index))
                    break
    return ordered
