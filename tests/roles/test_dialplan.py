"""The dial plan: tel URIs (RFC 3966) and user=phone SIP URIs (RFC 3261 §19.1.6) to gateways, longest
prefix first, with digit manipulation."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.message import SipURI, parse_uri
from sipactors.roles.dialplan import DialPlan, DialRule, phone_number

PLAN = DialPlan.from_table([
    {"prefix": "+", "gateway": "sip:intl.gw.example.net"},  # every other global number
    {"prefix": "+49", "gateway": "sip:de.gw.example.net:5080;transport=tcp", "strip": 3, "prepend": "0"},
    {"prefix": "+4930", "gateway": "sip:berlin.gw.example.net", "strip": 5, "prepend": "030"},
    {"prefix": "9", "gateway": "sip:127.0.0.1:5070", "strip": 1},  # the PBX's outside line
    {"prefix": "1", "gateway": "sip:pbx.example.com", "context": "example.com"},
    {"prefix": "", "gateway": "sips:secure.gw.example.net"},  # every other local number
])


def _route(uri: str) -> str | None:
    routed = PLAN.route(parse_uri(uri))
    return None if routed is None else routed.render()


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        # longest prefix: +4930 beats +49 beats +
        ("tel:+49-30-1234567", "sip:0301234567@berlin.gw.example.net;user=phone"),
        ("tel:+49-89-1234567", "sip:0891234567@de.gw.example.net:5080;transport=tcp;user=phone"),
        ("tel:+1-212-555-0100", "sip:+12125550100@intl.gw.example.net;user=phone"),
        # RFC 3261 §19.1.6: the number's parameters go into the userinfo, isub and postd first
        ("tel:+358-555-1234567;POSTD=PP22;isub=1411;tsp=a.b", "sip:+3585551234567;isub=1411;postd=pp22;tsp=a.b@intl.gw.example.net;user=phone"),
        # a user=phone SIP URI is a number; its own parameters stay behind
        ("sip:+49-30-1234567@example.com;user=phone;transport=udp", "sip:0301234567@berlin.gw.example.net;user=phone"),
        # local numbers: prefix 9 strips the outside-line digit; the context is kept (RFC 3966 §5.1.5)
        ("tel:9-555-0100;phone-context=example.com", "sip:5550100;phone-context=example.com@127.0.0.1:5070;user=phone"),
        # a context-bound rule takes only numbers of its context; the empty prefix takes other local ones,
        # but its gateway is SIPS and the URI is SIP: that is allowed (a SIPS gateway for a SIP URI)
        ("tel:1234;phone-context=EXAMPLE.com.", "sip:1234;phone-context=example.com@pbx.example.com;user=phone"),
        ("tel:1234;phone-context=other.example", "sips:1234;phone-context=other.example@secure.gw.example.net;user=phone"),
        ("tel:*21#;phone-context=+49", "sips:*21%23;phone-context=+49@secure.gw.example.net;user=phone"),
    ],
)
def test_numbers_go_to_the_gateway_of_the_longest_prefix(uri: str, expected: str) -> None:
    assert _route(uri) == expected


@pytest.mark.parametrize(
    "uri",
    [
        "sip:+4930123@example.com",  # no user=phone: a user name that happens to be digits (RFC 3261 §19.1.6)
        "sip:alice@example.com;user=phone",  # user=phone but no number
        "sip:example.com",
        "mailto:alice@example.com",
    ],
)
def test_what_is_not_a_number_is_not_routed(uri: str) -> None:
    assert _route(uri) is None


def test_a_sips_uri_goes_only_to_a_sips_gateway_rfc3261_section_26_2_2() -> None:
    plan = DialPlan.from_table([
        {"prefix": "+", "gateway": "sip:gw.example.net"},
        {"prefix": "+4", "gateway": "sips:tls.gw.example.net"},
    ])
    assert plan.route(parse_uri("sips:+4930@example.com;user=phone")) == parse_uri("sips:+4930@tls.gw.example.net;user=phone")
    assert plan.route(parse_uri("sips:+1212@example.com;user=phone")) is None
    assert plan.route(parse_uri("sip:+1212@example.com;user=phone")) == parse_uri("sip:+1212@gw.example.net;user=phone")


def test_a_global_number_made_local_is_sent_as_bare_digits() -> None:
    plan = DialPlan.from_table([{"prefix": "+33", "strip": 3, "prepend": "0", "gateway": "sip:fr.gw"}])
    # no context to give the local result: its parameters would make an invalid local number (RFC 3966 §5.1.5)
    assert str(plan.route(parse_uri("tel:+33-1-23-45-67-89;ext=12"))) == "sip:0123456789@fr.gw;user=phone"


def test_a_local_number_made_global_loses_its_context() -> None:
    plan = DialPlan.from_table([{"prefix": "0", "strip": 1, "prepend": "+33", "gateway": "sip:fr.gw"}])
    assert str(plan.route(parse_uri("tel:0123456789;phone-context=+33;ext=12"))) == "sip:+33123456789;ext=12@fr.gw;user=phone"


def test_a_number_stripped_to_nothing_is_not_routed() -> None:
    plan = DialPlan.from_table([{"prefix": "+49", "strip": 3, "gateway": "sip:gw"}])
    assert plan.route(parse_uri("tel:+49")) is None
    assert str(plan.route(parse_uri("tel:+491"))) == "sip:1@gw;user=phone"


def test_a_number_with_no_rule_is_not_routed() -> None:
    plan = DialPlan.from_table([{"prefix": "+49", "gateway": "sip:gw"}])
    assert plan.route(parse_uri("tel:+33123")) is None
    assert plan.route(parse_uri("tel:4912;phone-context=+49")) is None  # a local number never meets a + prefix
    assert len(DialPlan()) == 0 and DialPlan().route(parse_uri("tel:+1")) is None


def test_phone_numbers_compare_without_separators_and_escapes() -> None:
    a = phone_number(parse_uri("tel:+1-(212)-555.0100"))
    b = phone_number(parse_uri("sip:+12125550100@example.com;user=PHONE"))
    assert a is not None and a == b and a.is_global and a.context is None
    c = phone_number(parse_uri("tel:5#;phone-context=+1-212"))
    assert c is not None and (c.digits, c.context) == ("5#", "+1212")
    routed = DialPlan.from_table([{"prefix": "5", "gateway": "sip:gw"}]).route(parse_uri("tel:5#;phone-context=+1-212"))
    assert routed is not None and routed.user == "5%23;phone-context=+1212"  # "#" is escaped in a SIP URI
    assert phone_number(parse_uri(routed.render())) == c


@pytest.mark.parametrize(
    ("entry", "problem"),
    [
        ({"gateway": "sip:gw"}, "prefix is required"),
        ({"prefix": "+1"}, "gateway is required"),
        ({"prefix": "+1", "gateway": "tel:+1"}, "must be a sip: or sips: URI"),
        ({"prefix": "+1", "gateway": "sip:bad gw"}, "gateway 'sip:bad gw'"),
        ({"prefix": "+1", "gateway": "sip:user@gw"}, "no user part"),
        ({"prefix": "+1x", "gateway": "sip:gw"}, "prefix '\\+1x'"),
        ({"prefix": "1+", "gateway": "sip:gw"}, "prefix '1\\+'"),
        ({"prefix": "+1", "gateway": "sip:gw", "strip": 3}, "strip 3: between 0 and the prefix's 2"),
        ({"prefix": "+1", "gateway": "sip:gw", "strip": -1}, "strip -1"),
        ({"prefix": "+1", "gateway": "sip:gw", "strip": "1"}, "strip must be a whole number"),
        ({"prefix": "+1", "gateway": "sip:gw", "prepend": "0"}, "strip at least 1"),
        ({"prefix": "+1", "gateway": "sip:gw", "prepend": 0}, "prepend must be a string"),
        ({"prefix": "1", "gateway": "sip:gw", "prepend": "0+"}, "prepend '0\\+'"),
        ({"prefix": "+1", "gateway": "sip:gw", "context": "example.com"}, "a context applies to local numbers"),
        ({"prefix": "1", "gateway": "sip:gw", "context": "not a domain"}, "a domain name or \\+ and digits"),
        ({"prefix": "1", "gateway": "sip:gw", "suffix": "2"}, "unknown keys \\['suffix'\\]"),
    ],
)
def test_a_bad_rule_is_a_configuration_error_naming_the_entry(entry: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=f"entry 1: .*{problem}"):
        DialPlan.from_table([entry])


def test_two_rules_for_one_prefix_are_refused() -> None:
    with pytest.raises(ValueError, match="two rules for prefix '\\+1'"):
        DialPlan.from_table([{"prefix": "+1", "gateway": "sip:a"}, {"prefix": "+-1", "gateway": "sip:b"}])
    # the same prefix in two contexts is two rules
    assert len(DialPlan.from_table([{"prefix": "1", "gateway": "sip:a", "context": "a.example"},
                                    {"prefix": "1", "gateway": "sip:b", "context": "b.example"}])) == 2


# ------------------------------------------------------------------------------------------ properties

_digits = st.text(alphabet="0123456789", min_size=1, max_size=12)
_prefixes = st.text(alphabet="0123456789", max_size=5).map(lambda d: "+" + d)


@st.composite
def _plans(draw: st.DrawFn) -> DialPlan:
    prefixes = draw(st.lists(_prefixes, min_size=1, max_size=8, unique=True))
    rules = []
    for index, prefix in enumerate(prefixes):
        strip = draw(st.integers(0, len(prefix)))
        prepend = draw(st.text(alphabet="0123456789", max_size=3)) if strip else ""
        rules.append(DialRule(prefix, SipURI("sip", f"gw{index}.example.net"), strip, prepend))
    return DialPlan(rules)


@given(_plans(), _digits)
def test_the_longest_matching_prefix_wins(plan: DialPlan, digits: str) -> None:
    number = "+" + digits
    found = plan.rule_for(parse_uri(f"tel:{number}"))
    matching = [rule for rule in plan.rules if number.startswith(rule.prefix)]
    if not matching:
        assert found is None
        return
    assert found is not None
    assert found[0].prefix == max((rule.prefix for rule in matching), key=len)
    routed = plan.route(parse_uri(f"tel:{number}"))
    expected = found[0].prepend + number[found[0].strip:]
    if expected in ("", "+"):
        assert routed is None  # stripped to nothing: nothing to dial
        return
    assert routed is not None and routed.host == found[0].gateway.host
    assert routed.user == expected


@given(_plans(), _digits, st.lists(st.tuples(st.integers(0, 12), st.sampled_from("-.()")), max_size=6))
def test_visual_separators_do_not_change_the_route_rfc3966_section_5_1_1(
    plan: DialPlan, digits: str, separators: list[tuple[int, str]],
) -> None:
    written = list(digits)
    for position, separator in separators:
        written.insert(min(position, len(written)), separator)
    plain, decorated = parse_uri(f"tel:+{digits}"), parse_uri("tel:+" + "".join(written))
    assert plan.route(decorated) == plan.route(plain)
    assert plan.route(parse_uri(f"sip:+{''.join(written)}@example.com;user=phone")) == plan.route(plain)


@given(_plans(), _digits, st.sampled_from(["", ";isub=12", ";postd=pp1;ext=7", ";tsp=a.b;isub=x"]))
def test_a_routed_uri_is_well_formed_and_reads_back_as_the_same_number(plan: DialPlan, digits: str, params: str) -> None:
    routed = plan.route(parse_uri(f"tel:+{digits}{params}"))
    if routed is None:
        return
    assert parse_uri(routed.render()) == routed
    number = phone_number(routed)
    assert number is not None and number.digits == (routed.user or "").partition(";")[0]
