"""PIDF (RFC 3863): round-trip properties over generated models and documents, and bad documents refused
with a reason that names the problem."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.roles.pidf import Contact, Note, PidfError, Presence, Status, Tuple, generate, parse

_TEXT = st.text(st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from("\n\t"), max_size=20)
_ID = st.from_regex(r"[A-Za-z_][A-Za-z0-9_.\-]{0,8}", fullmatch=True)
_URI = st.from_regex(r"(sip|pres|tel|im):[a-z0-9]{1,8}(@[a-z]{1,6}\.com)?", fullmatch=True)
_LANG = st.none() | st.sampled_from(["en", "fr", "de-CH"])
_Q = st.none() | st.sampled_from(["0", "0.5", "0.021", "1", "1.000", "0.8"])
_STAMP = st.none() | st.sampled_from(["2004-08-01T12:00:00Z", "2026-11-27T21:00:00.25+01:00"])
_EXTENSION = st.sampled_from([
    '<ns0:im xmlns:ns0="urn:ietf:params:xml:ns:pidf:im">busy</ns0:im>',
    '<ns0:activities xmlns:ns0="urn:ietf:params:xml:ns:pidf:rpid"><ns0:on-the-phone /></ns0:activities>',
    '<ns0:person xmlns:ns0="urn:ietf:params:xml:ns:pidf:data-model" id="p1" />',
])

notes = st.lists(st.builds(Note, _TEXT, _LANG), max_size=2).map(tuple)
statuses = st.one_of(
    st.builds(Status, st.sampled_from(["open", "closed"]), st.lists(_EXTENSION, max_size=2).map(tuple)),
    st.builds(Status, st.none(), st.lists(_EXTENSION, min_size=1, max_size=2).map(tuple)),
)
tuples = st.builds(
    Tuple, _ID, statuses, st.none() | st.builds(Contact, _URI, _Q), notes, _STAMP,
    st.lists(_EXTENSION, max_size=1).map(tuple),
)
models = st.builds(
    Presence, _URI,
    st.lists(tuples, max_size=4, unique_by=lambda t: t.id).map(tuple), notes,
    st.lists(_EXTENSION, max_size=2).map(tuple),
)


@given(models)
def test_parse_of_generate_is_the_model_rfc3863(model: Presence) -> None:
    assert parse(generate(model)) == model


def _as_written(model: Presence, prefix: str, indent: str) -> bytes:
    """The document of ``model`` as another writer might write it: PIDF under a prefix, other whitespace."""
    text = generate(model).decode()
    if prefix:
        text = text.replace('xmlns="urn:ietf:params:xml:ns:pidf"', f'xmlns:{prefix}="urn:ietf:params:xml:ns:pidf"')
        for name in ("presence", "tuple", "status", "basic", "contact", "note", "timestamp"):
            text = text.replace(f"<{name}>", f"<{prefix}:{name}>").replace(f"<{name} ", f"<{prefix}:{name} ")
            text = text.replace(f"</{name}>", f"</{prefix}:{name}>")
    return text.replace("\n<", "\n" + indent + "<").encode()


@given(models, st.sampled_from(["", "p", "pidf"]), st.sampled_from(["", "  ", "\t"]))
def test_generate_of_parse_keeps_the_model_of_any_spelling_rfc3863(model: Presence, prefix: str, indent: str) -> None:
    document = _as_written(model, prefix, indent)
    parsed = parse(document)
    assert parsed == model
    assert parse(generate(parsed)) == parsed


def test_rfc3863_example_with_extensions_round_trips() -> None:
    document = b"""<?xml version="1.0" encoding="UTF-8"?>
<impp:presence xmlns:impp="urn:ietf:params:xml:ns:pidf" xmlns:local="urn:example-com:pidf-status-type"
    entity="pres:someone@example.com">
  <impp:tuple id="ck38g9">
    <impp:status><impp:basic>open</impp:basic><local:location>home</local:location></impp:status>
    <impp:contact priority="0.65">tel:+09012345678</impp:contact>
  </impp:tuple>
  <impp:tuple id="md6tu9">
    <impp:status><impp:basic>open</impp:basic></impp:status>
    <impp:contact priority="2.5">mailto:someone@example.com</impp:contact>
    <impp:note xml:lang="en">Back soon</impp:note>
    <impp:timestamp>2003-08-27T11:49:29Z</impp:timestamp>
  </impp:tuple>
  <impp:note xml:lang="en">Far away</impp:note>
</impp:presence>"""
    model = parse(document)
    assert [t.id for t in model.tuples] == ["ck38g9", "md6tu9"]
    assert model.tuples[0].contact == Contact("tel:+09012345678", "0.65")
    assert model.tuples[1].contact == Contact("mailto:someone@example.com", None)  # 2.5: out of range, ignored (§4.1.5)
    assert "location" in model.tuples[0].status.extensions[0]
    assert model.notes == (Note("Far away", "en"),)
    assert parse(generate(model)) == model


_HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n'
_OPEN = b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:alice@example.com">'


@pytest.mark.parametrize(("document", "problem"), [
    (_HEAD + b'<!DOCTYPE p [<!ENTITY lol "lol">]><presence/>', "DOCTYPE and ENTITY Declarations Refused"),
    (_HEAD + b'<!ENTITY x SYSTEM "file:///etc/passwd">', "DOCTYPE and ENTITY Declarations Refused"),
    (_OPEN + b"</presence>", "XML Declaration Missing"),
    (_HEAD + _OPEN, "Not Well-Formed XML"),
    (_HEAD + b'<presence entity="sip:a@b"/>', "Root Element Is Not presence"),
    (_HEAD + b'<presence xmlns="urn:ietf:params:xml:ns:pidf"/>', "presence Without entity"),
    (_HEAD + b'<presence xmlns="urn:ietf:params:xml:ns:pidf" entity="alice"/>', "entity Is Not a URI"),
    (_HEAD + _OPEN + b"<tuple><status><basic>open</basic></status></tuple></presence>", "tuple Without id"),
    (_HEAD + _OPEN + b'<tuple id="a"><x:e xmlns:x="urn:x"/><status><basic>open</basic></status></tuple></presence>',
     "status Must Come First"),
    (_HEAD + _OPEN + b'<tuple id="a"><contact>sip:a@b</contact></tuple></presence>', "tuple a Without status"),
    (_HEAD + _OPEN + b'<tuple id="a"/></presence>', "tuple a Without status"),
    (_HEAD + _OPEN + b'<tuple id="a"><status/></tuple></presence>', "Empty status In tuple a"),
    (_HEAD + _OPEN + b'<tuple id="a"><status><basic>away</basic></status></tuple></presence>', "basic Must Be open or closed"),
    (_HEAD + _OPEN + b'<tuple id="a"><status><basic>open</basic></status></tuple>'
     b'<tuple id="a"><status><basic>closed</basic></status></tuple></presence>', "Duplicate tuple id a"),
    (_HEAD + _OPEN + b'<tuple id="a"><status><basic>open</basic></status><timestamp>yesterday</timestamp>'
     b"</tuple></presence>", "timestamp Is Not an RFC 3339 date-time"),
    (_HEAD + _OPEN + b'<tuple id="a"><status><basic>open</basic></status><note>x</note><contact>sip:a@b</contact>'
     b"</tuple></presence>", "contact Out of Order In tuple a"),
    (_HEAD + _OPEN + b'<note>x</note><tuple id="a"><status><basic>open</basic></status></tuple></presence>',
     "tuple After note In presence"),
    (_HEAD + _OPEN + b"<mood>happy</mood></presence>", "Unknown Element mood In presence"),
    (_HEAD + b'<p:presence xmlns:p="urn:ietf:params:xml:ns:pidf" xmlns:x="urn:x" entity="sip:a@b"><x:e><plain/></x:e>'
     b"</p:presence>", "Unqualified Element plain"),
])
def test_a_bad_document_is_refused_naming_the_problem(document: bytes, problem: str) -> None:
    with pytest.raises(PidfError, match=problem) as caught:
        parse(document)
    assert str(caught.value).startswith("Bad PIDF: ")
    assert all(c.isprintable() for c in str(caught.value))  # usable as a reason phrase
