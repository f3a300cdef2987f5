"""Round trip and idempotence of URIs, name-addr, Via and parameters (render → parse → equal)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from sipactors.message import NameAddr, SipURI, Via, parse, parse_uri
from tests.message import strategies as s

TEMPLATE = (
    "OPTIONS sip:bob@example.com SIP/2.0\r\n"
    "Via: {via}\r\n"
    "To: {to}\r\n"
    "From: <sip:alice@example.com>;tag=1\r\n"
    "Call-ID: c1@example.com\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "Contact: {contact}\r\n"
    "Content-Length: 0\r\n\r\n"
)


def _message(via: str = "SIP/2.0/UDP h.example.com;branch=z9hG4bK1", to: str = "<sip:bob@example.com>", contact: str = "<sip:a@b>"):  # type: ignore[no-untyped-def]
    return parse(TEMPLATE.format(via=via, to=to, contact=contact).encode("latin-1"))


@given(s.sip_uris)
def test_sip_uri_round_trip(uri: SipURI) -> None:
    assert parse_uri(uri.render()) == uri


@given(s.tel_uris)
def test_tel_uri_round_trip(uri) -> None:  # type: ignore[no-untyped-def]
    assert parse_uri(uri.render()) == uri


@given(s.name_addrs)
def test_name_addr_round_trip(address: NameAddr) -> None:
    message = _message(to=address.render())
    assert message.to == address
    again = _message(to=message.to.render())
    assert again.to == message.to


@given(s.vias)
def test_via_round_trip(via: Via) -> None:
    message = _message(via=via.render())
    assert message.via == [via]


@given(st.lists(s.vias, min_size=1, max_size=4))
def test_via_list_in_one_line_equals_separate_lines(vias: list[Via]) -> None:
    one_line = _message(via=", ".join(v.render() for v in vias))
    several = _message(via="\r\nVia: ".join(v.render() for v in vias))
    assert one_line.via == several.via == vias


@given(s.header_params(), st.sampled_from([("", ""), (" ", " "), ("\t", " "), ("  ", "\t")]))
def test_params_ignore_whitespace_around_separators(params, spaces) -> None:  # type: ignore[no-untyped-def]
    before, after = spaces
    text = "".join(f"{before};{after}{n}" if v is None else f"{before};{after}{n}{before}={after}{v}" for n, v in params)
    message = _message(to="<sip:bob@example.com>" + text)
    assert message.to.params == params


@given(s.name_addrs, st.integers(0, 3))
def test_folded_header_equals_unfolded(address: NameAddr, fold_at: int) -> None:
    # RFC 3261 §7.3.1: LWS (a fold included) may surround the SEMI of header parameters, never the inside
    # of a URI, so fold only after the ">".
    text = address.render()
    uri_end = text.rindex(">") + 1
    pieces = text[uri_end:].split(";")
    folded = text[:uri_end] + (" \r\n  ;").join(pieces[: fold_at + 1]) + ";".join([""] + pieces[fold_at + 1 :])
    folded = folded if fold_at and len(pieces) > 1 else text
    assert _message(to=folded).to == _message(to=text).to


@given(s.name_addrs, s.vias)
def test_canonical_serialisation_is_idempotent(address: NameAddr, via: Via) -> None:
    message = _message(via=via.render(), to=address.render())
    once = message.to_bytes(canonical=True)
    assert parse(once) == message
    assert parse(once).to_bytes(canonical=True) == once


def test_untouched_headers_pass_through_byte_for_byte() -> None:
    raw = (
        b"OPTIONS sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\n"
        b"To: <sip:bob@example.com>\r\nFrom: <sip:a@example.com>;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n"
        b"X-Odd:   spaced   value \r\n  folded\r\nSubject :\tweird\r\nContent-Length: 0\r\n\r\n"
    )
    message = parse(raw)
    assert bytes(message) == raw
    message.set_header("Max-Forwards", 69)
    out = bytes(message)
    assert b"X-Odd:   spaced   value \r\n  folded\r\nSubject :\tweird" in out
    assert parse(out).max_forwards == 69


def test_compact_and_long_names_are_the_same_header() -> None:
    long = _message()
    compact = parse(bytes(long).replace(b"Via:", b"v:").replace(b"To:", b"t:").replace(b"Call-ID:", b"i:").replace(b"Contact:", b"m:").replace(b"Content-Length:", b"l:"))
    assert compact.via == long.via and compact.to == long.to and compact.call_id == long.call_id
    assert compact.contact == long.contact
