"""Hypothesis strategies for SIP syntax elements (RFC 3261 §25.1 character classes)."""

from __future__ import annotations

import string

from hypothesis import strategies as st

from sipactors.message import NameAddr, Params, SipURI, TelURI, Via, quote

ALNUM = string.ascii_letters + string.digits
TOKEN_CHARS = ALNUM + "-.!%*_+`'~"
UNRESERVED = ALNUM + "-_.!~*'()"
USER_UNRESERVED = "&=+$,;?/"
PARAM_UNRESERVED = "[]/:&+$"
HNV_UNRESERVED = "[]/?:+$"


def escaped() -> st.SearchStrategy[str]:
    return st.tuples(st.sampled_from("0123456789ABCDEFabcdef"), st.sampled_from("0123456789ABCDEF")).map(
        lambda p: "%" + p[0] + p[1]
    )


def chars(alphabet: str, min_size: int = 1, max_size: int = 10) -> st.SearchStrategy[str]:
    return st.lists(st.one_of(st.sampled_from(alphabet), escaped()), min_size=min_size, max_size=max_size).map("".join)


tokens = st.text(TOKEN_CHARS, min_size=1, max_size=10)
labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
toplabels = st.from_regex(r"[a-z]([a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
hostnames = st.builds(lambda ls, t: ".".join(ls + [t]), st.lists(labels, max_size=3), toplabels)
ipv4 = st.tuples(*[st.integers(0, 255)] * 4).map(lambda t: ".".join(map(str, t)))
ipv6 = st.lists(st.integers(0, 0xFFFF), min_size=8, max_size=8).map(lambda g: "[" + ":".join(f"{x:x}" for x in g) + "]")
hosts = st.one_of(hostnames, ipv4, ipv6)
ports = st.one_of(st.none(), st.integers(1, 65535))
users = chars(UNRESERVED + USER_UNRESERVED)
passwords = chars(UNRESERVED + "&=+$,")
quoted_strings = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12).map(quote)


def uri_params() -> st.SearchStrategy[Params]:
    names = chars(UNRESERVED + PARAM_UNRESERVED).filter(lambda n: n.lower() not in ("transport", "user", "method", "ttl", "maddr", "lr"))
    values = st.one_of(st.none(), chars(UNRESERVED + PARAM_UNRESERVED))
    known = st.sampled_from([("transport", "udp"), ("transport", "TLS"), ("lr", None), ("user", "phone"), ("ttl", "15"), ("maddr", "239.255.255.1"), ("method", "REGISTER")])
    return st.lists(st.one_of(st.tuples(names, values), known), max_size=4).map(lambda items: Params(tuple(items)))


def header_params(*, context: str = "header") -> st.SearchStrategy[Params]:
    names = tokens.filter(lambda n: n.lower() not in ("tag", "q", "expires", "branch", "ttl", "maddr", "received", "rport", "id", "reason", "retry-after"))
    values = st.one_of(st.none(), tokens, quoted_strings, ipv6)
    known = (
        st.sampled_from([("branch", "z9hG4bK74bf9"), ("received", "192.0.2.1"), ("rport", None), ("rport", "5061"), ("ttl", "1"), ("maddr", "example.net")])
        if context == "via"
        else st.sampled_from([("tag", "a6c85cf"), ("q", "0.7"), ("q", "1"), ("expires", "3600")])
    )
    return st.lists(st.one_of(st.tuples(names, values), known), max_size=4).map(lambda items: Params(tuple(items)))


sip_uris = st.builds(
    lambda scheme, user, password, host, port, params, headers: SipURI(
        scheme, host, user, password if user is not None else None, port, params, headers
    ),
    st.sampled_from(["sip", "sips"]),
    st.one_of(st.none(), users),
    st.one_of(st.none(), passwords),
    hosts,
    ports,
    uri_params(),
    st.lists(st.tuples(chars(UNRESERVED + HNV_UNRESERVED), chars(UNRESERVED + HNV_UNRESERVED, min_size=0)), max_size=2).map(tuple),
)

tel_uris = st.builds(
    lambda digits, params: TelURI("+" + digits, params),
    st.text(string.digits, min_size=1, max_size=12),
    st.lists(st.tuples(st.from_regex(r"[a-z][a-z0-9-]{0,6}", fullmatch=True), st.one_of(st.none(), st.from_regex(r"[a-z0-9]{1,6}", fullmatch=True))), max_size=2).map(lambda i: Params(tuple(i))),
)

display_names = st.one_of(
    st.none(),
    quoted_strings,
    st.lists(tokens, min_size=1, max_size=3).map(" ".join),
)

name_addrs = st.builds(
    lambda uri, display, params: NameAddr(uri, display, params, True),
    st.one_of(sip_uris, tel_uris),
    display_names,
    header_params(),
)

transports = st.one_of(st.sampled_from(["UDP", "TCP", "TLS", "SCTP", "WS", "WSS"]), tokens.map(str.upper))

vias = st.builds(
    lambda transport, host, port, params: Via(transport, host, port, params),
    transports,
    hosts,
    ports,
    header_params(context="via"),
)
