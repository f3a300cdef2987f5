"""Where ``sipactors serve`` sends what is not for its own domains: the ``[dns]``, ``[hosts]`` and
``[[dialplan]]`` configuration, and the factories that build the resolver (RFC 3263) and the dial plan
(RFC 3966) from it.

``build_resolver`` gives a ``HostsFirstResolver``: the static hosts table first, then DNS (NAPTR, SRV,
A/AAAA, ``sipactors.transport.dns``) unless ``--no-dns`` or ``[dns] enabled = false`` turned it off; then
a name outside the table fails at once with ``ResolutionError`` (status 404). Its ``blocking`` attribute
says whether a caller must keep it off the scheduler thread. ``build_dialplan`` gives the ``DialPlan``
whose ``route(uri)`` names the gateway Request-URI for a tel or ``user=phone`` URI.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sipactors.roles.dialplan import DialPlan
from sipactors.transport.dns import DnsClient, DnsResolver, parse_nameserver, read_resolv_conf
from sipactors.transport.resolve import HostsFirstResolver, StaticResolver

if TYPE_CHECKING:
    from sipactors.server import ServerConfig

__all__ = ["apply_routing_config", "build_dialplan", "build_resolver", "routing_banner"]

_DNS_KEYS = {"enabled", "nameservers", "timeout", "attempts"}


def apply_routing_config(config: ServerConfig, data: Mapping[str, Any], source: Path | str) -> None:
    """Read ``[dns]``, ``[hosts]`` and ``[[dialplan]]`` from a parsed TOML file into ``config``; a bad
    value stops the server before it starts, with a message naming the file, the table and the key."""

    def fail(where: str, problem: str) -> SystemExit:
        return SystemExit(f"sipactors serve: {source}: {where}: {problem}")

    dns = data.get("dns", {})
    if not isinstance(dns, Mapping):
        raise fail("[dns]", "must be a table")
    unknown = set(dns) - _DNS_KEYS
    if unknown:
        raise fail("[dns]", f"unknown keys {sorted(unknown)} (enabled, nameservers, timeout, attempts)")
    enabled = dns.get("enabled", config.dns_enabled)
    if not isinstance(enabled, bool):
        raise fail("[dns] enabled", "true or false")
    nameservers = dns.get("nameservers", config.dns_nameservers)
    if not isinstance(nameservers, list) or not all(isinstance(item, str) for item in nameservers):
        raise fail("[dns] nameservers", 'a list of addresses, e.g. ["192.0.2.53", "127.0.0.1:5353"]')
    for item in nameservers:
        try:
            parse_nameserver(item)
        except ValueError:
            raise fail("[dns] nameservers", f"{item!r} is not a numeric address with an optional port") from None
    timeout = dns.get("timeout", config.dns_timeout)
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout <= 30:
        raise fail("[dns] timeout", "seconds to wait for each answer: more than 0, at most 30")
    attempts = dns.get("attempts", config.dns_attempts)
    if isinstance(attempts, bool) or not isinstance(attempts, int) or not 1 <= attempts <= 5:
        raise fail("[dns] attempts", "rounds over the nameservers: 1 to 5")
    config.dns_enabled, config.dns_nameservers = enabled, list(nameservers)
    config.dns_timeout, config.dns_attempts = float(timeout), attempts

    hosts = data.get("hosts", {})
    if not isinstance(hosts, Mapping):
        raise fail("[hosts]", "must be a table of name = [addresses]")
    table: dict[str, list[str]] = {}
    for name, addresses in _flatten(hosts):
        if isinstance(addresses, str):
            addresses = [addresses]
        if not isinstance(addresses, list) or not addresses or not all(isinstance(item, str) for item in addresses):
            raise fail(f"[hosts] {name}", 'a list of numeric addresses, each with an optional port: ["127.0.0.1:5070"]')
        try:
            StaticResolver({name: addresses})
        except ValueError as error:
            raise fail(f"[hosts] {name}", str(error)) from None
        table[name] = addresses
    config.hosts = table

    dialplan = data.get("dialplan", [])
    if not isinstance(dialplan, list) or not all(isinstance(entry, Mapping) for entry in dialplan):
        raise fail("[[dialplan]]", "an array of tables, one [[dialplan]] per rule")
    try:
        DialPlan.from_table(dialplan)
    except ValueError as error:
        raise SystemExit(f"sipactors serve: {source}: {error}") from None
    config.dialplan = [dict(entry) for entry in dialplan]


def _flatten(table: Mapping[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """``gw.example.net = [...]`` is, in TOML, a dotted key: nested tables. Joined back into the name."""
    names: list[tuple[str, Any]] = []
    for key, value in table.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, Mapping):
            names += _flatten(value, name)
        else:
            names.append((name, value))
    return names


def _transports(config: ServerConfig) -> list[str]:
    """The transports the server can send on: those it listens on, UDP first (RFC 3263 §4.1 lets the
    client prefer; UDP is what a SIP URI with no NAPTR falls back to)."""
    names = {transport.upper() for transport, _, _ in config.listeners}
    return [name for name in ("UDP", "TCP", "TLS", "SCTP", "TLS-SCTP") if name in names] or ["UDP"]


def build_resolver(config: ServerConfig, rng: random.Random | None = None) -> HostsFirstResolver:
    """The server's resolver: ``[hosts]`` first, then DNS unless it is off (module docstring)."""
    hosts = StaticResolver(config.hosts)
    if not config.dns_enabled:
        return HostsFirstResolver(hosts, None)
    nameservers = [parse_nameserver(item) for item in config.dns_nameservers] or read_resolv_conf()
    client = DnsClient(nameservers, timeout=config.dns_timeout, attempts=config.dns_attempts)
    return HostsFirstResolver(hosts, DnsResolver(client, transports=_transports(config), rng=rng))


def build_dialplan(config: ServerConfig) -> DialPlan:
    return DialPlan.from_table(config.dialplan)


def routing_banner(config: ServerConfig) -> str:
    """The start-up line that says how next hops are found."""
    hosts = f"{len(config.hosts)} name{'s' if len(config.hosts) != 1 else ''} in [hosts]"
    rules = f"dial plan: {len(config.dialplan)} rule{'s' if len(config.dialplan) != 1 else ''}"
    if not config.dns_enabled:
        return (f"next hops: DNS OFF (--no-dns or [dns] enabled = false): numeric addresses and the {hosts} "
                f"only, other names get 404; {rules}")
    servers = ", ".join(config.dns_nameservers) or "from /etc/resolv.conf"
    return (f"next hops: {hosts}, then DNS (RFC 3263: NAPTR, SRV, A/AAAA; nameservers {servers}; "
            f"{config.dns_timeout:g} s x {config.dns_attempts}); {rules}")
