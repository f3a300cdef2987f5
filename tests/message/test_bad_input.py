"""Bad input never raises anything but ParseError (DESIGN §2; the server turns it into a 400)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.message import Message, ParseError, parse, parse_oracle

INVITE = (Path(__file__).resolve().parents[2] / "examples" / "invite.sip").read_bytes()


def _parse_fully(data: bytes) -> Message | ParseError:
    try:
        message = parse(data)
        message.validate_all()
        bytes(message)
        message.to_bytes(canonical=True)
    except ParseError as error:
        assert error.reason_phrase.isascii() and "\r" not in error.reason_phrase and "\n" not in error.reason_phrase
        return error
    return message


@given(st.binary(max_size=2000))
def test_random_bytes_raise_only_parse_error(data: bytes) -> None:
    _parse_fully(data)


@given(st.binary(max_size=400))
def test_random_bytes_after_a_valid_start_line(data: bytes) -> None:
    _parse_fully(b"INVITE sip:bob@example.com SIP/2.0\r\n" + data)


@given(st.binary(max_size=200), st.integers(min_value=0, max_value=len(INVITE)))
def test_bytes_spliced_into_a_valid_invite(data: bytes, at: int) -> None:
    _parse_fully(INVITE[:at] + data + INVITE[at:])


def test_every_truncation_of_an_invite() -> None:
    """A datagram that ends right after a header line's CRLF is read as if the empty line followed
    (spec/rulings.md, R9): such a truncation may parse, but then it lacks a header a server requires (a
    refusal) or, cut before Content-Length, it is a complete body-less request. Every other truncation is a
    ParseError: no empty line, or a body shorter than Content-Length."""
    head_end = INVITE.index(b"\r\n\r\n")
    for end in range(len(INVITE)):
        data = INVITE[:end]
        result = _parse_fully(data)
        if end <= head_end + 2 and data.endswith(b"\r\n") and end > INVITE.index(b"\r\n"):
            if isinstance(result, Message):
                assert result.refusal is not None or not result.has("Content-Length"), end
        else:
            assert isinstance(result, ParseError), end
    assert isinstance(_parse_fully(INVITE), Message)


def test_one_megabyte_header_value() -> None:
    big = b"X" * (1 << 20)
    head, _, body = INVITE.partition(b"\r\n\r\n")
    assert isinstance(_parse_fully(head + b"\r\nSubject: " + big + b"\r\n\r\n" + body), Message)
    assert isinstance(_parse_fully(head + b"\r\nVia: SIP/2.0/UDP " + big + b"!\r\n\r\n" + body), ParseError)
    assert isinstance(_parse_fully(head.replace(b"Call-ID: ", b"Call-ID: " + big) + b"\r\n\r\n" + body), Message)
    assert isinstance(_parse_fully(head + b"\r\nTo: <sip:" + big + b"\r\n\r\n" + body), ParseError)


def test_one_megabyte_header_name() -> None:
    head, _, body = INVITE.partition(b"\r\n\r\n")
    assert isinstance(_parse_fully(head + b"\r\n" + b"N" * (1 << 20) + b": v\r\n\r\n" + body), Message)


@pytest.mark.parametrize(
    "mutation",
    [
        lambda m: m.replace(b"Max-Forwards: 70", b"Max-Forwards: 7\x000"),
        lambda m: m.replace(b"Call-ID", b"Call\x00ID"),
        lambda m: m.replace(b"Alice Liddell", b"Alice \x00 Liddell"),
        lambda m: m.replace(b"INVITE sip", b"INV\x00ITE sip"),
        lambda m: m.replace(b"\r\n\r\n", b"\r\n\x00\r\n\r\n"),
    ],
)
def test_nul_bytes(mutation) -> None:  # type: ignore[no-untyped-def]
    assert isinstance(_parse_fully(mutation(INVITE)), ParseError)


def test_invalid_utf8() -> None:
    head, _, body = INVITE.partition(b"\r\n\r\n")
    # An extension header is TEXT-UTF8: an invalid sequence is refused when the header is validated.
    result = _parse_fully(head + b"\r\nSubject: caf\xc3\x28 \xff\xfe\r\n\r\n" + body)
    assert isinstance(result, ParseError) and result.header == "Subject"
    # In a display name (quoted-string: UTF8-NONASCII) too.
    assert isinstance(_parse_fully(INVITE.replace(b"Alice Liddell", b"Alice \xe9\xff")), ParseError)
    # Valid UTF-8 is fine.
    assert isinstance(_parse_fully(INVITE.replace(b"Alice Liddell", "Alice Lidell ✓".encode())), Message)
    assert isinstance(_parse_fully(b"\xff\xfe\xfd" + INVITE), ParseError)


def test_ten_thousand_headers() -> None:
    head, _, body = INVITE.partition(b"\r\n\r\n")
    many = b"".join(b"\r\nX-Header-%d: value %d" % (i, i) for i in range(10_000))
    message = _parse_fully(head + many + b"\r\n\r\n" + body)
    assert isinstance(message, Message) and len(message.fields) == len(parse(INVITE).fields) + 10_000
    vias = b"".join(b"\r\nVia: SIP/2.0/UDP h%d.example.com;branch=z9hG4bK%d" % (i, i) for i in range(10_000))
    message = _parse_fully(head + vias + b"\r\n\r\n" + body)
    assert isinstance(message, Message) and len(message.via) == 10_001


@given(st.binary(max_size=300))
def test_oracle_raises_only_parse_error(data: bytes) -> None:
    try:
        parse_oracle(b"OPTIONS sip:a@example.com SIP/2.0\r\n" + data)
    except ParseError:
        pass


PATHOLOGICAL = {
    # RFC 3966's tel URI as written backtracks exponentially on a near miss (rulings R20).
    "tel URI, many ext, stray space": "<tel:+1" + ";ext=1" * 40 + " x>",
    "local tel URI, many ext, no context": "<tel:1" + ";ext=1" * 40 + " x>",
    "tel URI, many isub": "<tel:+1" + ";isub=a?" * 40 + " x>",
    "telephone-subscriber userinfo": "<sip:+1" + ";ext=1" * 40 + " x@h>",
    "display name of many tokens": "a " * 200 + "x",
    "many URI parameters": "<sip:h" + ";p=1" * 200 + " x>",
    "many header parameters": "<sip:h>" + ";p=1" * 200 + " x",
    "long quoted string with escapes": '"' + "\\a" * 500 + " <sip:h>",
    "long absoluteURI path": "<http://a" + "/b;c" * 200 + " x>",
}


@pytest.mark.parametrize("value", list(PATHOLOGICAL.values()), ids=list(PATHOLOGICAL))
def test_pathological_values_are_refused_in_bounded_time(value: str) -> None:
    """No catastrophic backtracking: each of these takes well under a millisecond per parser once the
    patterns are built; an exponential case would take minutes. The bound is loose on purpose."""
    import time

    data = INVITE.replace(b"To: Bob <sip:bob@biloxi.example.com>", b"To: " + value.encode("latin-1"))
    parse(INVITE), parse_oracle(INVITE)  # build both parsers first
    for parser in (parse, parse_oracle):
        started = time.perf_counter()
        with pytest.raises(ParseError):
            parser(data).validate_all()
        assert time.perf_counter() - started < 2.0
