"""Every RFC 4475 and RFC 5118 torture message against its manifest entry, with both parsers.

Valid messages parse with the hot path and the oracle to equal messages, validate completely, and
round-trip (as received, and re-rendered from the parsed values). Invalid ones raise ParseError with a
reason, or parse and carry the refusal a server answers with; either way the reaction is one the manifest
allows. Responses are only ever dropped by a server (they match no transaction), so a malformed response
just has to be recognised as malformed or refused.
"""

from __future__ import annotations

import pytest

from sipactors.message import ParseError, Request, parse, parse_oracle
from tests.message.corpus import Case, all_cases, status_allowed

CASES = all_cases()


def _verdict(parser, data: bytes):  # type: ignore[no-untyped-def]
    try:
        message = parser(data)
        message.validate_all()
    except ParseError as error:
        return error
    return message


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_corpus_message_meets_manifest(case: Case) -> None:
    hot = _verdict(parse, case.data)
    oracle = _verdict(parse_oracle, case.data)
    # Same verdict from both parsers.
    assert isinstance(hot, ParseError) == isinstance(oracle, ParseError), (hot, oracle)
    if isinstance(hot, ParseError):
        assert hot.reason_phrase and hot.reason_phrase.isascii()
        assert not case.entry["valid"] or case.entry.get("graded") is False or "400" in case.allowed, (
            f"valid message rejected: {hot}"
        )
        if case.entry["kind"] == "request":
            assert "400" in case.allowed or "error" in case.allowed, f"400 not allowed for {case.name}: {hot}"
        return
    assert hot == oracle, "hot path and oracle disagree on the fields"
    # Round trip: as received, and rendered from the parsed values.
    assert parse(bytes(hot)) == hot
    assert bytes(hot) == case.data[: len(bytes(hot))] or case.folder == "rfc4475" and case.entry["name"] == "dblreq"
    assert parse(hot.to_bytes(canonical=True)) == hot
    if case.entry["kind"] == "response":
        return  # a server drops responses that match no transaction, refused or not
    assert isinstance(hot, Request)
    if hot.refusal is not None:
        assert status_allowed(hot.refusal.status, case.allowed), f"{hot.refusal} not in {case.allowed}"
    else:
        assert case.entry["valid"] or "accept" in case.allowed, f"invalid message accepted: {case.name}"
        assert any(token not in ("discard", "close") for token in case.allowed)


def test_corpus_is_complete() -> None:
    names = {case.name for case in CASES}
    assert len([n for n in names if n.startswith("rfc4475/")]) == 50
    assert len([n for n in names if n.startswith("rfc5118/")]) == 12


@pytest.mark.parametrize(
    ("name", "status"),
    [("unkscm", 416), ("novelsc", 416), ("badvers", 505), ("mismatch01", 400), ("insuf", 400), ("multi01", 400),
     ("scalar02", 400)],
)
def test_refusal_codes_for_well_formed_but_refused_requests(name: str, status: int) -> None:
    case = next(c for c in CASES if c.entry["name"] == name)
    message = parse(case.data)
    assert message.refusal is not None and message.refusal.status == status


@pytest.mark.parametrize(
    ("name", "header"),
    [("badinv01", "Via"), ("ncl", "Content-Length"), ("clerr", "Content-Length"), ("quotbal", "To"),
     ("mcl01", "Content-Length"), ("badaspec", "To"), ("baddn", "From"), ("regbadct", "Contact")],
)
def test_parse_errors_name_the_header(name: str, header: str) -> None:
    case = next(c for c in CASES if c.entry["name"] == name)
    with pytest.raises(ParseError) as info:
        parse(case.data)
    assert info.value.header == header
    assert header in info.value.reason_phrase
