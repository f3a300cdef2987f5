"""RFC 3840 feature parameters as RFC 2533 predicates (RFC 3841 §8), and the RFC 2533 match, checked against
the RFC's examples and against a brute-force search over a small value space."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from sipactors.message import Params, parse
from sipactors.roles.features import (
    FeatureSyntaxError,
    Filter,
    Predicate,
    Term,
    contact_predicate,
    is_feature_name,
    matches,
    parse_term,
)


def token(text: str, negated: bool = False) -> Filter:
    return Filter("token", text.lower(), negated=negated)


def term(tag: str, *filters: Filter) -> Term:
    return Term(tag, filters)


def true(*tags: str) -> list[Term]:
    """Terms of bare feature parameters: ``(tag=TRUE)`` each (RFC 3841 §8)."""
    return [term(tag, token("TRUE")) for tag in tags]


def contact_params(header: str) -> Params:
    """The parameters of a Contact header field value, read by the message layer."""
    message = parse(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
        "To: <sip:user@example.com>\r\nFrom: <sip:user@example.com>;tag=1\r\nCall-ID: c\r\n"
        f"CSeq: 1 REGISTER\r\nContact: {header}\r\nContent-Length: 0\r\n\r\n".encode("latin-1")
    )
    return message.contact[0].params


# -- RFC 3840's examples ----------------------------------------------------------------------------------

RFC3840_S5_PREDICATE = Predicate((
    term("sip.mobility", token("fixed")),
    term("sip.events", token("presence", negated=True), token("message-summary")),
    term("language", token("en"), token("de")),
    term("sip.description", Filter("string", "PC")),
    term("sip.newparam", token("TRUE")),
    term("rangeparam", Filter("number", low=Fraction(-4), high=Fraction(5125, 1000))),
))


def test_contact_parameters_of_rfc3840_s5_encode_the_predicate_of_rfc3840_s5() -> None:
    params = contact_params(
        '<sip:user@pc.example.com>;mobility="fixed";events="!presence,message-summary"\r\n'
        '  ;language="en,de";description="<PC>"\r\n  ;+sip.newparam;+rangeparam="#-4:+5.125"'
    )
    assert contact_predicate(params) == RFC3840_S5_PREDICATE


def test_voicemail_registration_of_rfc3840_s6_encodes_its_predicate() -> None:
    params = contact_params(
        '<sip:user@host.example.com>;audio;video\r\n  ;actor="msg-taker";automata;mobility="fixed"\r\n'
        '  ;methods="INVITE,BYE,OPTIONS,ACK,CANCEL"'
    )
    assert contact_predicate(params) == Predicate((
        *true("sip.audio", "sip.video"),
        term("sip.actor", token("msg-taker")),
        *true("sip.automata"),
        term("sip.mobility", token("fixed")),
        term("sip.methods", *(token(m) for m in ("INVITE", "BYE", "OPTIONS", "ACK", "CANCEL"))),
    ))


def test_registration_of_another_aor_has_no_feature_set_rfc3840_s6() -> None:
    assert contact_predicate(contact_params("sip:user2@example.org")) is None


def test_registered_contact_of_rfc3841_s7_2_3_gives_its_predicate_without_other_param() -> None:
    params = contact_params(
        '<sip:user@example.com>;audio;video;mobility="fixed";\r\n    +sip.message="TRUE";other-param=66372;\r\n'
        '    methods="INVITE,OPTIONS,BYE,CANCEL,ACK";schemes="sip,http"'
    )
    assert contact_predicate(params) == Predicate((
        *true("sip.audio", "sip.video"),
        term("sip.mobility", token("fixed")),
        *true("sip.message"),
        term("sip.methods", *(token(m) for m in ("INVITE", "OPTIONS", "BYE", "CANCEL", "ACK"))),
        term("sip.schemes", token("sip"), token("http")),
    ))


# -- the encoding rules -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("+sip.x", '"#<=5"', term("sip.x", Filter("number", high=Fraction(5)))),
        ("+sip.x", '"#>=2"', term("sip.x", Filter("number", low=Fraction(2)))),
        ("+sip.x", '"#=0.25"', term("sip.x", Filter("number", low=Fraction(1, 4), high=Fraction(1, 4)))),
        ("+sip.x", '"!#1:3,7"', term("sip.x", Filter("number", low=Fraction(1), high=Fraction(3), negated=True),
                                      token("7"))),
        ("+g.3gpp!icsi'ref", '"a"', term("g.3gpp:icsi/ref", token("a"))),  # §8: "!" → ":", "'" → "/"
        ("Video", '"FALSE"', term("sip.video", token("false"))),  # names are case-insensitive
        ("type", '"<application/sdp>"', term("type", Filter("string", "application/sdp"))),
        ("description", r'"<say \"hi\">"', term("sip.description", Filter("string", 'say "hi"'))),
    ],
)
def test_feature_parameter_values_decode_as_rfc3841_s8_says(name: str, value: str, expected: Term) -> None:
    assert parse_term(name, value) == expected


@pytest.mark.parametrize("value", ["TRUE", '"a b"', '"<a>,<b>"', '"#>=x"', '""', '"a,,b"', '"!!a"', '"#1:"'])
def test_values_outside_rfc3840_s9_syntax_are_refused(value: str) -> None:
    with pytest.raises(FeatureSyntaxError):
        parse_term("audio", value)


def test_plus_form_of_a_base_tag_gives_way_to_the_base_tag_rfc3841_s7_2_3_step_3() -> None:
    predicate = contact_predicate(Params((("video", None), ("+video", '"FALSE"'), ("+other", None))))
    assert predicate == Predicate((term("sip.video", token("TRUE")), term("other", token("TRUE"))))


def test_instance_id_and_malformed_values_are_not_feature_parameters_rulings_r23() -> None:
    assert not is_feature_name("+sip.instance")
    params = Params((("+sip.instance", '"<urn:uuid:00000000-0000-1000-8000-000A95A0E128>"'), ("reg-id", "1"),
                     ("audio", "TRUE")))
    assert contact_predicate(params) is None  # nothing left: the contact is immune


# -- RFC 2533 matching --------------------------------------------------------------------------------------


def predicate(**params: str | None) -> Predicate:
    return Predicate(tuple(parse_term(name.replace("_", "+"), value) for name, value in params.items()))


@pytest.mark.parametrize(
    ("preference", "capability", "expected"),
    [
        (predicate(methods='"BYE"'), predicate(methods='"INVITE,BYE"'), True),
        (predicate(methods='"BYE"'), predicate(methods='"INVITE,OPTIONS"'), False),
        (predicate(audio=None), predicate(audio='"FALSE"'), False),
        (predicate(audio=None), predicate(video=None), True),  # inclusive: video says nothing of audio
        (predicate(events='"!presence"'), predicate(events='"presence"'), False),
        (predicate(events='"!presence"'), predicate(events='"presence,dialog"'), True),
        (predicate(_x='"#>=3"'), predicate(_x='"#1:2.5"'), False),
        (predicate(_x='"#>=2.5"'), predicate(_x='"#1:2.5"'), True),
        (predicate(_x='"#5:2"'), predicate(), False),  # an empty range matches nothing
        (predicate(description='"<PC>"'), predicate(description='"<pc>"'), False),  # strings: case counts
        (predicate(mobility='"FIXED"'), predicate(mobility='"fixed"'), True),  # tokens: case does not
        (predicate(_x='"7"'), predicate(_x='"#=7"'), False),  # a token is not a number
    ],
)
def test_rfc2533_match_of_two_predicates(preference: Predicate, capability: Predicate, expected: bool) -> None:
    assert matches(preference, capability) is expected
    assert matches(capability, preference) is expected


# Brute force: the tag-values below only use these tokens, strings and bounds (multiples of 1/2), so a tag
# value from this domain (quarter steps reach every gap between bounds) decides every satisfiability question.
TOKENS = ["a", "b", "TRUE", "FALSE"]
STRINGS = ["A", "a"]
NUMBERS = ["1", "2", "2.5", "-1"]
DOMAIN = (
    [("token", t.lower()) for t in [*TOKENS, "fresh"]]
    + [("string", s) for s in [*STRINGS, "fresh"]]
    + [("number", Fraction(k, 4)) for k in range(-12, 20)]
)
tag_values = st.one_of(
    st.sampled_from(TOKENS),
    st.builds(lambda op, n: f"#{op}{n}", st.sampled_from([">=", "<=", "="]), st.sampled_from(NUMBERS)),
    st.builds(lambda a, b: f"#{a}:{b}", st.sampled_from(NUMBERS), st.sampled_from(NUMBERS)),
).flatmap(lambda v: st.sampled_from([v, "!" + v]))
feature_values = st.one_of(
    st.none(),
    st.lists(tag_values, min_size=1, max_size=3).map(lambda vs: '"' + ",".join(vs) + '"'),
    st.sampled_from(STRINGS).map(lambda s: f'"<{s}>"'),
)
feature_lists = st.lists(st.tuples(st.sampled_from(["audio", "+x"]), feature_values), max_size=5)


def _naive_holds(tag_value: str, value: tuple[str, object]) -> bool:
    """RFC 3841 §8 read literally on one tag-value, evaluated at one value."""
    if tag_value.startswith("!"):
        return not _naive_holds(tag_value[1:], value)
    kind, content = value
    if tag_value.startswith("#"):
        if kind != "number":
            return False
        relation = tag_value[1:]
        for op, test in ((">=", lambda a, b: a >= b), ("<=", lambda a, b: a <= b), ("=", lambda a, b: a == b)):
            if relation.startswith(op):
                return bool(test(content, Fraction(relation[len(op):])))
        low, high = relation.split(":")
        return Fraction(low) <= content <= Fraction(high)  # type: ignore[operator]
    return kind == "token" and content == tag_value.lower()


def _naive_term(value: str | None, at: tuple[str, object]) -> bool:
    if value is None:
        return _naive_holds("TRUE", at)
    inner = value[1:-1]
    if inner.startswith("<"):
        return at == ("string", inner[1:-1])
    return any(_naive_holds(part, at) for part in inner.split(","))


@given(feature_lists, feature_lists)
@example([("+x", '"!#=1"'), ("+x", '"!#=2"')], [("+x", '"#1:2"')])  # only values strictly between 1 and 2
@example([("+x", '"!#<=2.5"')], [("+x", '"#>=1"')])  # only numbers above every bound
@example([("+x", '"!#>=-1"')], [("+x", '"#<=2"')])  # only numbers below every bound
@example([("+x", '"#=1"')], [("+x", '"#<=2"')])  # only the lowest bound itself
def test_match_agrees_with_a_brute_force_search_of_feature_collections(
    first: list[tuple[str, str | None]], second: list[tuple[str, str | None]]
) -> None:
    by_tag: dict[str, list[str | None]] = {}
    for name, value in first + second:
        by_tag.setdefault(name, []).append(value)
    expected = all(any(all(_naive_term(v, at) for v in values) for at in DOMAIN) for values in by_tag.values())
    as_predicate = [Predicate(tuple(parse_term(n, v) for n, v in side)) for side in (first, second)]
    assert matches(*as_predicate) is expected
