"""Next-hop resolution (RFC 3263 §4): TARGET, transport and port from the URI; names from a static table,
never from DNS."""

from __future__ import annotations

import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.message import parse_uri
from sipactors.transport import ResolutionError, StaticResolver, Target, next_hop, proxy_uri

TABLE = {"example.com": ["192.0.2.5", "192.0.2.6:5070"], "v6.example.net": ["[2001:db8::1]:5080"]}


def _resolve(uri: str) -> list[Target]:
    return StaticResolver(TABLE).resolve(parse_uri(uri))


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # §4.1: no transport parameter, a SIP URI: UDP; §4.2: default port 5060, table order kept.
        ("sip:bob@example.com", [("UDP", "192.0.2.5", 5060), ("UDP", "192.0.2.6", 5070)]),
        # §4.2: an explicit port is used for every address (an A lookup, not SRV); names are case-insensitive.
        ("sip:bob@EXAMPLE.com.:5099", [("UDP", "192.0.2.5", 5099), ("UDP", "192.0.2.6", 5099)]),
        # §4.1: the transport parameter decides.
        ("sip:bob@example.com;transport=TCP", [("TCP", "192.0.2.5", 5060), ("TCP", "192.0.2.6", 5070)]),
        # §4.1 and RFC 3261 §19.1.2: SIPS means TLS over TCP, default port 5061.
        ("sips:bob@example.com", [("TLS", "192.0.2.5", 5061), ("TLS", "192.0.2.6", 5070)]),
        ("sips:bob@example.com;transport=tcp", [("TLS", "192.0.2.5", 5061), ("TLS", "192.0.2.6", 5070)]),
        # §4.2: a numeric TARGET is the address; with no port, the transport's default.
        ("sip:bob@198.51.100.7", [("UDP", "198.51.100.7", 5060)]),
        ("sip:bob@198.51.100.7:5062;transport=tcp", [("TCP", "198.51.100.7", 5062)]),
        ("sips:bob@[2001:db8::2]", [("TLS", "2001:db8::2", 5061)]),
        # §4: TARGET is maddr when present, not the host.
        ("sip:bob@nowhere.invalid;maddr=198.51.100.9", [("UDP", "198.51.100.9", 5060)]),
        ("sip:bob@nowhere.invalid:5070;maddr=example.com", [("UDP", "192.0.2.5", 5070), ("UDP", "192.0.2.6", 5070)]),
        ("sip:v6.example.net", [("UDP", "2001:db8::1", 5080)]),
    ],
)
def test_targets_follow_rfc3263_sections_4_1_and_4_2(uri: str, expected: list[tuple[str, str, int]], no_dns: list[str]) -> None:
    assert [(t.transport, t.host, t.port) for t in _resolve(uri)] == expected
    assert no_dns == []


@pytest.mark.parametrize(
    ("uri", "reason"),
    [
        ("sip:bob@unknown.example.org", "unknown host 'unknown.example.org'"),
        ("sip:bob@localhost", "unknown host 'localhost'"),  # not even the hosts file is read
        ("tel:+15551234567", "a tel URI has no SIP next hop"),
        ("sips:bob@example.com;transport=udp", "a SIPS URI cannot be reached over UDP"),
        ("sip:bob@example.com;transport=carrier-pigeon", "unsupported transport 'carrier-pigeon'"),
    ],
)
def test_what_cannot_be_resolved_fails_at_once_with_a_resolution_error(uri: str, reason: str, no_dns: list[str]) -> None:
    with pytest.raises(ResolutionError, match=reason) as caught:
        _resolve(uri)
    assert str(caught.value.uri) == uri and caught.value.reason.startswith(reason)
    assert no_dns == []


def test_the_no_dns_fixture_would_catch_a_lookup(no_dns: list[str]) -> None:
    with pytest.raises(AssertionError, match="a DNS query"):
        socket.getaddrinfo("example.com", 5060)
    assert no_dns == ["getaddrinfo"]


def test_a_static_table_holds_numeric_addresses_only() -> None:
    with pytest.raises(ValueError, match="numeric addresses only"):
        StaticResolver({"example.com": ["proxy.example.com"]})


def test_a_proxy_known_by_host_and_port_resolves_through_its_temporary_uri_rfc3263_section_4(no_dns: list[str]) -> None:
    resolver = StaticResolver(TABLE)
    assert resolver.resolve(proxy_uri("example.com", 5080, "tcp")) == [Target("TCP", "192.0.2.5", 5080), Target("TCP", "192.0.2.6", 5080)]
    assert str(proxy_uri("2001:db8::3")) == "sip:[2001:db8::3]"
    assert next_hop(proxy_uri("2001:db8::3")).numeric


@given(
    # labels end in a letter or digit (RFC 3261 §25.1 domainlabel): "a-" is no host name
    name=st.from_regex(r"[a-z]([a-z0-9-]{0,9}[a-z0-9])?(\.[a-z]([a-z0-9-]{0,9}[a-z0-9])?){1,3}", fullmatch=True),
    octets=st.tuples(*[st.integers(0, 255)] * 4),
    port=st.none() | st.integers(1, 65535),
    scheme=st.sampled_from(["sip", "sips"]),
)
def test_a_table_name_resolves_to_its_address_and_any_other_name_fails(
    name: str, octets: tuple[int, ...], port: int | None, scheme: str,
) -> None:
    address = ".".join(map(str, octets))
    resolver = StaticResolver({name: [address]})
    suffix = f":{port}" if port is not None else ""
    (target,) = resolver.resolve(parse_uri(f"{scheme}:alice@{name.upper()}{suffix}"))
    assert target == Target("UDP" if scheme == "sip" else "TLS", address, port or (5060 if scheme == "sip" else 5061))
    with pytest.raises(ResolutionError):
        resolver.resolve(parse_uri(f"{scheme}:alice@x{name}{suffix}"))
