"""Locating SIP servers (RFC 3263 §4): from a SIP or SIPS URI to an ordered list of next hops, each a
transport, a numeric address and a port.

The procedure splits in two, and so does this module:

* what the URI alone decides — the TARGET (§4: the ``maddr`` parameter, else the host), the transport
  (§4.1: the ``transport`` parameter; else UDP for ``sip:`` and TLS over TCP for ``sips:``), and the port
  (§4.2: the URI's, else the transport's default, RFC 3261 §19.1.2) — is the pure function
  ``next_hop``;
* what a name stands for is a ``Resolver``'s business. ``StaticResolver`` answers from a table, the way
  an A/AAAA lookup would (§4.2), and never asks DNS: simulations and tests resolve with it, so they run
  offline and replay exactly. A name the table does not hold fails at once with ``ResolutionError``.

NAPTR and SRV processing (§4.1, §4.2, §4.3) is ``sipactors.transport.dns.DnsResolver``'s; in a static
table an entry written ``address:port`` stands in for an SRV answer, used only when the URI names no port
(§4.2). ``HostsFirstResolver`` asks the table first and DNS (when it is on) for the other names.

A failed resolution carries the status a proxy answers in place of the branch it could not create
(``ResolutionError.status``), chosen so (RFC 3263 §4.3 leaves the client with no server to try):

* **404 Not Found** when the answer is definite: the name does not exist (NXDOMAIN), it has no NAPTR, SRV,
  A or AAAA record, its SRV target is "." ("decidedly not available", RFC 2782), or DNS is off and the
  static table does not hold it. RFC 3261 §21.4.4 gives 404 to a domain the server has "definitive
  information" about, and a lab run with ``--no-dns`` knows by configuration that nothing else exists;
  a 503 would invite the client to retry and to fail over (RFC 3263 §4.3) to no avail.
* **503 Service Unavailable** when the answer could not be had: every nameserver timed out, failed
  (SERVFAIL, REFUSED) or answered garbage, or the URI asks for a transport that does not exist. RFC 3261
  §16.9 treats a next hop that cannot be reached as a 503, and a later attempt may succeed.
* **416 Unsupported URI Scheme** for a URI that is not SIP or SIPS (RFC 3261 §21.4.14): a tel URI reaches
  a gateway through the dial plan, not through RFC 3263.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from sipactors.message import URI, SipURI
from sipactors.message.params import EMPTY_PARAMS, Params

__all__ = [
    "HostsFirstResolver", "NextHop", "ResolutionError", "Resolver", "StaticResolver", "Target", "next_hop", "proxy_uri",
]

#: The transport parameter's values (RFC 3261 §19.1.1, §25.1 transport-param) as Via transport tokens.
_TRANSPORTS = {"udp": "UDP", "tcp": "TCP", "sctp": "SCTP", "tls": "TLS", "tls-sctp": "TLS-SCTP"}
#: A SIPS URI asks for TLS over whatever stream the transport parameter names (RFC 3261 §26.2.2).
_SECURE = {"TCP": "TLS", "SCTP": "TLS-SCTP", "TLS": "TLS", "TLS-SCTP": "TLS-SCTP"}


class ResolutionError(LookupError):
    """No next hop for a URI: an unknown name, a URI that is not SIP or SIPS, or a transport it cannot use.

    ``status`` is the response a proxy gives for it (404, 503 or 416: see the module's docstring).
    """

    def __init__(self, uri: URI | str, reason: str, status: int = 503) -> None:
        self.uri = uri
        self.reason = reason
        self.status = status
        super().__init__(f"cannot resolve {uri}: {reason}")


@dataclass(frozen=True, slots=True)
class Target:
    """One place a request can be sent (RFC 3263 §4.2): transport, numeric address, port."""

    transport: str  # a Via transport token: UDP, TCP, TLS, SCTP, TLS-SCTP
    host: str  # a numeric address, IPv6 without brackets
    port: int

    @property
    def address(self) -> tuple[str, int]:
        return (self.host, self.port)


@dataclass(frozen=True, slots=True)
class NextHop:
    """What the URI alone says about its next hop (RFC 3263 §4, §4.1, §4.2)."""

    name: str  # TARGET: maddr, else the host; lower case, no trailing dot, IPv6 without brackets
    transport: str
    port: int | None  # None: the URI names none (a DNS resolver would do SRV here)
    numeric: bool

    @property
    def default_port(self) -> int:
        """RFC 3261 §19.1.2: 5061 for TLS, 5060 otherwise."""
        return 5061 if self.transport.startswith("TLS") else 5060


#: NextHop by URI text: bounded, as the URIs come from the network.
_HOPS: dict[str, NextHop] = {}
_HOPS_LIMIT = 4096


def next_hop(uri: URI) -> NextHop:
    """TARGET, transport and port of ``uri`` (RFC 3263 §4, §4.1, §4.2), before any name is looked up.
    Memoised by the URI's text (its rendering is kept on the URI): a proxy asks it for every request
    it forwards, mostly for the same few registered contacts and Record-Route values."""
    if not isinstance(uri, SipURI):
        raise ResolutionError(uri, f"a {uri.scheme} URI has no SIP next hop (RFC 3263 §4)", 416)
    text = uri.render()
    hop = _HOPS.get(text)
    if hop is None:
        hop = _next_hop(uri)
        if len(_HOPS) < _HOPS_LIMIT:
            _HOPS[text] = hop
    return hop


def _next_hop(uri: SipURI) -> NextHop:
    name = bare_name(uri.params.get("maddr") or uri.host)
    transport = None
    if "transport" in uri.params:
        written = uri.params.get("transport") or ""
        transport = _TRANSPORTS.get(written.lower())
        if transport is None:
            raise ResolutionError(uri, f"unsupported transport {written!r}")
    if uri.secure:
        if transport == "UDP":
            # §4.1: "it is not possible to use TLS over UDP".
            raise ResolutionError(uri, "a SIPS URI cannot be reached over UDP")
        transport = _SECURE[transport or "TCP"]
    return NextHop(name, transport or "UDP", uri.port, is_numeric(name))


def proxy_uri(host: str, port: int | None = None, transport: str | None = None) -> SipURI:
    """The temporary URI ``sip:<proxy>`` RFC 3263 §4 resolves for a proxy known only by host and port."""
    params = EMPTY_PARAMS if transport is None else Params((("transport", transport.lower()),))
    return SipURI("sip", f"[{host}]" if ":" in host and not host.startswith("[") else host, port=port, params=params)


class Resolver(Protocol):
    """Maps a SIP or SIPS URI to the next hops to try, in order (RFC 3263 §4); raises ``ResolutionError``.

    ``blocking`` is true when ``resolve`` may wait on the network (a DNS query): a caller on the
    scheduler thread must then run it elsewhere (a thread pool) and hand the result back.
    """

    blocking: bool

    def resolve(self, uri: URI) -> list[Target]: ...


class StaticResolver:
    """A resolver over a fixed table, ``{name: [address or address:port, ...]}``, that never asks DNS.

    * A numeric TARGET is used as it is (RFC 3263 §4.2).
    * A name is looked up in the table, case-insensitively and without its trailing dot (RFC 1034
      §3.1); its addresses are tried in the order given, as A/AAAA records would be (§4.2). An address
      written with a port stands for an SRV answer: that port is used when the URI names none.
    * An unknown name raises ``ResolutionError`` (404) at once.
    """

    blocking = False

    def __init__(self, hosts: Mapping[str, Sequence[str]] | None = None) -> None:
        self.hosts: dict[str, list[tuple[str, int | None]]] = {}
        for name, addresses in (hosts or {}).items():
            self.add(name, *addresses)

    def add(self, name: str, *addresses: str) -> None:
        """Give ``name`` (more) addresses; each must be numeric, optionally with a port."""
        entries = self.hosts.setdefault(bare_name(name), [])
        for text in addresses:
            host, port = split_address(text)
            if not is_numeric(host):
                raise ValueError(f"{text!r} for {name!r}: a static table holds numeric addresses only")
            entries.append((host, port))

    def resolve(self, uri: URI) -> list[Target]:
        hop = next_hop(uri)
        if hop.numeric:
            return _as_is(hop)
        entries = self.hosts.get(hop.name)
        if not entries:
            raise ResolutionError(uri, f"unknown host {hop.name!r} (static table, no DNS)", 404)
        return [Target(hop.transport, host, hop.port or port or hop.default_port) for host, port in entries]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bare_name(name) in self.hosts


class HostsFirstResolver:
    """The static ``[hosts]`` table first, then DNS for the names it does not hold; with no DNS resolver
    (``--no-dns``, ``[dns] enabled = false``) such a name fails at once with a 404 (module docstring).

    A numeric TARGET never reaches either (RFC 3263 §4.2). ``blocking`` follows the DNS resolver: the
    table alone never waits.
    """

    def __init__(self, hosts: StaticResolver, dns: Resolver | None = None) -> None:
        self.hosts = hosts
        self.dns = dns
        self.blocking = dns is not None and bool(getattr(dns, "blocking", True))

    def resolve(self, uri: URI) -> list[Target]:
        hop = next_hop(uri)
        if hop.numeric:  # (the usual case, a registered contact: without reading the URI again)
            return _as_is(hop)
        if hop.name in self.hosts:
            return self.hosts.resolve(uri)
        if self.dns is None:
            raise ResolutionError(uri, f"unknown host {hop.name!r}: not in the hosts table, and DNS is off", 404)
        return self.dns.resolve(uri)


def _as_is(hop: NextHop) -> list[Target]:
    """RFC 3263 §4.2: a numeric TARGET is contacted as it is, at the URI's port or the default one."""
    return [Target(hop.transport, hop.name, hop.port or hop.default_port)]


def bare_name(name: str) -> str:
    """A host as compared: lower case, without a trailing dot or IPv6 brackets."""
    return name.strip("[]").rstrip(".").lower()


@functools.lru_cache(maxsize=4096)
def is_numeric(host: str) -> bool:
    """Whether ``host`` is an IP address literal (RFC 3263 §4.2: then no lookup). Cached: a proxy asks it for
    every request it forwards, mostly for the same few registered contacts, and ``ip_address`` parses."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def split_address(text: str) -> tuple[str, int | None]:
    """``192.0.2.1``, ``192.0.2.1:5070``, ``2001:db8::1`` or ``[2001:db8::1]:5070``."""
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else None
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, int(port)
    return text, None
