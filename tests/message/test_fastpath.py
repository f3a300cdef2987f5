"""The hot path's fast paths (sipactors.message.headers) give exactly what the general parser gives.

A fast path splits the common shapes of Via and of name-addr headers at separators and memoises the parts
that repeat between messages; when it returns a value it must be the general parser's value, and when the
general parser refuses a value the fast path must not accept it. Values come from the grammar itself
(``from_lark``) and from hand-made shapes with quoted parameters, IPv6 references and odd whitespace.
"""

from __future__ import annotations

from functools import lru_cache

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

from sipactors._resources import grammar_file
from sipactors.message import ParseError
from sipactors.message import headers as h
from sipactors.message.syntax import syntax
from tests.message import strategies as s


@lru_cache(maxsize=1)
def _grammar() -> Lark:
    rules = ["via_value", "from_value", "contact_value", "route_value"]
    return Lark(grammar_file("sip.lark").read_text(encoding="utf-8"), parser="lalr", start=rules)


def _run(call):  # type: ignore[no-untyped-def]
    try:
        return call()
    except ParseError:
        return "error"


def _same(fast, general, text: str, header: str, many: bool | None) -> None:  # type: ignore[no-untyped-def]
    """``fast`` declines (None), or agrees with ``general``: the same value, or both refuse."""
    got = _run(lambda: fast(text, header) if many is None else fast(text, header, many))
    if got is None:
        return
    expected = _run(lambda: general(text, header))
    if got == "error":
        assert expected == "error", f"fast path refused what the general parser accepts: {text!r}"
        return
    assert expected != "error", f"fast path accepted what the general parser refuses: {text!r}"
    assert got == (expected if isinstance(expected, list) else [expected]), text


@given(from_lark(_grammar(), start="via_value", alphabet=st.characters(max_codepoint=0xFF)))
@example("SIP/2.0/UDP [2001:db8::9:1];received=2001:db8::9:255;branch=z9hG4bKas3")
@example("SIP / 2.0 / TCP host ; branch = z9hG4bK1 ; rport , SIP/2.0/UDP h2:5060;received=[::1]")
@example("SIP/2.0/UDP h;branch=z9hG4bK1;;rport")
@example("SIP/2.0/UDP h;rport=x")
def test_fast_via_equals_general(text: str) -> None:
    _same(h._fast_via, h._general_via, text, "Via", None)


@given(from_lark(_grammar(), start="from_value", alphabet=st.characters(max_codepoint=0xFF)))
@example('"Alice Liddell" <sip:alice@atlanta.example.com>;tag=1928301774')
@example('"a>b" <sip:x@y> ; tag = 1')
@example('"a<b>c" <sip:x@y>;tag=1')
@example("<sip:x@y>;tag=1,2")
@example("<sip:x@y>;q=1.5")
@example("Bob<sip:x@y>;p=\"quoted;value,with=separators\";tag=2")
def test_fast_address_equals_general(text: str) -> None:
    _same(h._fast_addresses, h._general_address, text, "From", False)


@given(from_lark(_grammar(), start="contact_value", alphabet=st.characters(max_codepoint=0xFF)))
@example('<sip:bob@192.0.2.4;transport=udp>;expires=7200;+sip.instance="<urn:uuid:f81d>";reg-id=1')
@example('"x, y" <sip:a@b>, <sip:c@d>;q=0.5 ,  <sip:e@f>')
@example("<sip:a,b@c>;q=1, <sip:d@e>")
@example('<sip:a@b>;x="1" <sip:c@d>')
def test_fast_contacts_equal_general(text: str) -> None:
    if text.strip(" \t") == "*":
        return
    _same(h._fast_addresses, h._general_contacts, text, "Contact", True)


@given(from_lark(_grammar(), start="route_value", alphabet=st.characters(max_codepoint=0xFF)))
@example("<sip:p1.example.com;lr>,<sip:p2.example.com;lr>")
@example("<sip:p1.example.com;lr>;x=1,sip:bare@host")
def test_fast_routes_equal_general(text: str) -> None:
    _same(h._fast_addresses, h._general_routes, text, "Route", True)


@given(s.name_addrs)
def test_generated_name_addrs_take_the_fast_path(address) -> None:  # type: ignore[no-untyped-def]
    text = address.render()
    fast = h._fast_addresses(text, "To", False)
    assert fast == [h._general_address(text, "To")]


@pytest.mark.parametrize(
    ("context", "name"),
    sorted(k for k, v in syntax().param_checks.items() if v is not None and k[0] != "uri"),
)
def test_by_name_terminals_lie_inside_gen_value(context: str, name: str) -> None:
    """The fast parameter splitter skips the generic gen-value check when a by-name check applies; that is
    exact only if each by-name terminal's language lies inside gen-value (via-gen-value for Via)."""
    terminal, pattern = syntax().param_checks[(context, name)]  # type: ignore[misc]
    if terminal.endswith("?"):
        pattern = syntax().grammar.compile(terminal.rstrip("?"))
    generic = syntax().via_gen_value if context == "via" else syntax().gen_value

    @given(st.from_regex(pattern, fullmatch=True))
    def inside(value: str) -> None:
        assert generic.fullmatch(value), (terminal, value)

    inside()


def test_memoised_values_are_not_shared_mutably() -> None:
    """The hot path memoises parsed header lines; a list it hands out (Via, Contact, Route) is a copy, so a
    proxy that edits one message's list cannot change what the next message with the same line receives."""
    from sipactors.message import parse

    data = (
        b"OPTIONS sip:b@example.com SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:b@example.com>\r\n"
        b"From: <sip:a@example.com>;tag=1\r\nCall-ID: memo\r\nCSeq: 1 OPTIONS\r\nContact: <sip:a@h>\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    first = parse(data)
    first.get_fields("Via")[0].parsed.clear()
    first.get_fields("Contact")[0].parsed.append("junk")
    second = parse(data)
    assert len(second.via) == 1 and second.via[0].branch == "z9hG4bK1"
    assert len(second.contact) == 1


def test_memo_stays_bounded_and_keeps_what_repeats() -> None:
    from sipactors.message.memo import Memo

    memo = Memo(limit=100)
    memo.put("to", "Bob")
    for index in range(1_000):
        memo.put(f"via {index}", index)  # unique per message
        assert memo.get("to") == "Bob"  # used once per generation: never dropped
        assert len(memo) <= 200
    assert memo.get("via 0") is None


def test_prepare_builds_the_hot_path_and_tunes_the_collector() -> None:
    import gc

    from sipactors.message import prepare
    from sipactors.message.syntax import syntax

    threshold = gc.get_threshold()
    try:
        prepare(freeze_gc=False, gc_threshold=12_345, gc_older=67)
        assert syntax.cache_info().currsize == 1
        assert gc.get_threshold()[:2] == (max(12_345, threshold[0]), max(67, threshold[1]))
    finally:
        gc.set_threshold(*threshold)


def test_fold_between_list_elements_reaches_neither_display_name() -> None:
    """Found by CI's larger Hypothesis profile: LWS with a CRLF after a COMMA belongs to the separator."""
    text = '<A://>,\r\n ""<sip:A>'
    assert h._fast_addresses(text, "Route", True) == h._general_routes(text, "Route")


_TOKENS = st.text(alphabet="abcXYZ019-.!%*_+`'~", min_size=1, max_size=12)
_NOT_TOKENS = st.sampled_from(["a b", "a,b", 'a"b', "a=b", "\tx", "é", "a;b"])


def _through_template(header: str, template: str, token: str) -> None:
    """``template`` is read first (its template kept), then ``template`` with ``token`` in its hole: each
    reading gives what the general parser gives, value and verdict alike (rulings R22)."""
    spec = h.spec_for(header)
    assert spec is not None
    hole = h.hole_in(spec.kind, template)
    if hole is None:
        return
    h.clear_memos()
    for text in (template, template, template[: hole[0]] + token + template[hole[1] :]):
        text_hole = h.hole_in(spec.kind, text)
        if text_hole is not None:
            assert _run(lambda t=text, th=text_hole: h.parse_with_hole(spec, t, th)) == _run(  # type: ignore[misc]
                lambda t=text: h.parse_value(spec, t)  # type: ignore[misc]
            ), text


@given(from_lark(_grammar(), start="via_value", alphabet=st.characters(max_codepoint=0xFF)), _TOKENS)
@example("SIP/2.0/UDP pc33.atlanta.example.com:5060;branch=z9hG4bK776asdhds;rport", "z9hG4bK1")
@example("SIP/2.0/UDP h;branch=z9hG4bK1;branch=z9hG4bK2", "x")
@example("SIP/2.0/UDP h;branch=;rport", "x")
@example("SIP/2.0/UDP h;x=1;branch=z9hG4bK1", "x")
def test_fresh_branch_through_a_template_equals_general(template: str, token: str) -> None:
    _through_template("Via", template, token)


@given(from_lark(_grammar(), start="from_value", alphabet=st.characters(max_codepoint=0xFF)), _TOKENS)
@example('"Alice Liddell" <sip:alice@atlanta.example.com>;tag=1928301774', "0000000077")
@example('"a;tag=1>" <sip:x@y>;tag=2;p=3', "z")
@example('<sip:x@y>;tag=1;p="a>b"', "z")
@example("<sip:x@y;tag=u>;tag=1", "z")
def test_fresh_tag_through_a_template_equals_general(template: str, token: str) -> None:
    _through_template("From", template, token)
    _through_template("To", template, token)


@given(_NOT_TOKENS)
def test_a_fresh_branch_that_is_no_token_is_refused_as_the_general_parser_refuses(bad: str) -> None:
    spec = h.spec_for("Via")
    assert spec is not None
    good = "SIP/2.0/UDP h:5060;branch=z9hG4bK1;rport"
    h.parse_with_hole(spec, good, h.hole_in("via", good))  # type: ignore[arg-type]  # the template exists
    text = good.replace("z9hG4bK1", bad)
    hole = h.hole_in("via", text)
    if hole is not None:
        assert _run(lambda: h.parse_with_hole(spec, text, hole)) == _run(lambda: h.parse_value(spec, text))


_WARM_TEMPLATE = (
    "INVITE sip:bob@biloxi.example.com SIP/2.0\r\nVia: SIP/2.0/UDP pc33.example.com:5060;branch={branch};rport\r\n"
    "Max-Forwards: 70\r\nTo: Bob <sip:bob@biloxi.example.com>{to_tag}\r\n"
    'From: "Alice" <sip:alice@atlanta.example.com>;tag={tag}{space}\r\nCall-ID: {branch}@pc33\r\nCSeq: 1 INVITE\r\n'
    "Content-Length: 0\r\n\r\n"
)


def _cold(data: bytes):  # type: ignore[no-untyped-def]
    from sipactors.message import parse
    from sipactors.message.message import clear_memos

    clear_memos()
    return _run(lambda: parse(data))


@given(
    st.lists(st.tuples(_TOKENS | _NOT_TOKENS, _TOKENS | _NOT_TOKENS, st.booleans()), min_size=1, max_size=6),
    st.sampled_from(["", "  ", "\t"]),
)
def test_lines_read_through_templates_equal_a_cold_parse(tokens: list[tuple[str, str, bool]], space: str) -> None:
    """Messages of one shape with fresh branches and tags (rulings R22): once the memo and the templates are
    warm, each parses to what a cold parse (every memo cleared) gives, values and verdict alike."""

    messages = [
        _WARM_TEMPLATE.format(branch=b, tag=t, to_tag=f";tag={t}" if dialog else "", space=space).encode("latin-1")
        for b, t, dialog in tokens
    ]
    _warm_equals_cold(messages)


def _warm_equals_cold(messages: list[bytes]) -> None:
    """Each message parses warm (memos and templates filled by the ones before) as it parses cold."""
    from sipactors.message import parse

    expected = [_cold(data) for data in messages]
    for _ in range(2):  # the second round reads every line through a template or the line memo
        for data, cold in zip(messages, expected, strict=True):
            warm = _run(lambda d=data: parse(d))  # type: ignore[misc]
            if cold == "error":
                assert warm == "error", data
            else:
                assert warm != "error", data
                assert warm == cold and warm.refusal == cold.refusal, data
                assert bytes(warm) == data  # untouched lines go out as received


def test_a_deferred_value_is_built_once_on_first_access() -> None:
    from sipactors.message import parse
    from sipactors.message.headers import Deferred

    first = _WARM_TEMPLATE.format(branch="z9hG4bK1", tag="1", to_tag="", space="").encode()
    second = _WARM_TEMPLATE.format(branch="z9hG4bK2", tag="2", to_tag="", space="").encode()
    parse(first)
    message = parse(second)
    field = message.get_fields("From")[0]
    assert type(field._parsed) is Deferred  # validated, not built
    assert message.from_.tag == "2" and message.via[0].branch == "z9hG4bK2"
    assert field._parsed is message.from_  # built once


# ---------------------------------------------------------------------------------------- line templates
# A whole header line read through a line template (sipactors.message.message._LineTemplate, rulings R22):
# the user of a SIP URI, a tag and every branch of a comma-joined Via line are holes. Once a line of a shape
# has been parsed in full, a line of the same shape with other texts in its holes must read as the general
# parser reads it, value and verdict alike.

_USERS = st.text(alphabet="abcXYZ019-_.!~*'()&=+$,;?/%", min_size=1, max_size=10)
_NOT_USERS = st.sampled_from(["", "a@b", "a>b", "a:b", 'a"b', "a b", "é", "%zz", "a<b", "a\tb"])
_HOLE_TEXTS = _TOKENS | _NOT_TOKENS | _USERS | _NOT_USERS


def _general_line(line: str):  # type: ignore[no-untyped-def]
    """What the general parser makes of a header line's value (no line template involved)."""
    name, _, value = line.partition(":")
    spec = h.spec_for(name.strip(" \t"))
    assert spec is not None
    return _run(lambda: h.parse_value(spec, value.strip(" \t")))


def _read_line(line: str):  # type: ignore[no-untyped-def]
    from sipactors.message.message import _read_line

    return _run(lambda: _read_line(line).parsed)


def _fill_holes(line: str, texts: list[str]) -> str | None:
    from sipactors.message.message import _line_holes

    cuts = _line_holes(line)
    if cuts is None:
        return None
    out, last = [], 0
    for number, index in enumerate(range(1, len(cuts), 2)):
        out.append(line[last : cuts[index]])
        out.append(texts[number % len(texts)])
        last = cuts[index + 1]
    return "".join(out) + line[last:]


def _through_line_template(line: str, texts: list[str]) -> None:
    """``line`` is read (its template learnt), then ``line`` with ``texts`` in its holes: both readings give
    what the general parser gives."""
    from sipactors.message.message import clear_memos

    if "\r" in line or "\n" in line:
        return  # _read_line reads unfolded lines
    clear_memos()
    assert _read_line(line) == _general_line(line), line
    other = _fill_holes(line, texts)
    if other is not None:
        assert _read_line(other) == _general_line(other), other
        assert _read_line(other) == _general_line(other), other  # now from the line memo


@given(
    st.sampled_from(["From", "To", "Contact", "Route", "Record-Route"]),
    st.sampled_from(["", "Bob ", '"Alice" ', '"<sip:x@y>" ', '"<sip:alice@y>" ', "A B "]),
    st.sampled_from(["sip", "sips"]),
    st.sampled_from(["127.0.0.1", "example.com", "[::1]", "a-b.example.org"]),
    st.sampled_from(["", ":5060", ":99999"]),
    st.sampled_from(["", ";lr", ";transport=tcp", ";user=phone", "?h=v"]),
    st.sampled_from(["", ";tag=1", ";tag=1;p=2", ";expires=60", ";q=0.5;tag=1", ';x="a,b";tag=1', ";tag=1  ",
                     ';p="a>;tag=1;";tag=1']),
    st.sampled_from(["", ", <sip:v@h>", ", sip:w@h"]),
    st.lists(_HOLE_TEXTS, min_size=1, max_size=3),
)
@example("From", "", "sip", "127.0.0.1", "", "", ";tag=1", "", ["m12345", "1m12345"])
@example("Contact", "", "sip", "127.0.0.1", ":5100", "", "", "", ["u9"])
@example("To", "", "sip", "h", "", "", ";tag=1", "", ["a;tag=2", "x"])
@example("From", "", "sip", "h", "", "", ";tag=1", "", ["a;branch=z", "x"])
@example("To", '"<sip:alice@y>" ', "sip", "h", "", "", ";tag=1", "", ["bob", "2"])
@example("From", "", "sip", "h", "", "", ';p="a>;tag=1;";tag=1', "", ["bob", "2"])
def test_addresses_through_line_templates_equal_general(  # noqa: PLR0913 - one argument per part of the line
    header: str, display: str, scheme: str, host: str, port: str, uparams: str, params: str, more: str,
    texts: list[str],
) -> None:
    _through_line_template(f"{header}: {display}<{scheme}:alice@{host}{port}{uparams}>{params}{more}", texts)


@given(
    st.sampled_from(["127.0.0.1:5080", "proxy.example.com", "[2001:db8::1]:5060"]),
    st.sampled_from(["", ";rport", ";received=10.0.0.1", ';x="a;b"', ";branch=z9hG4bK2"]),
    st.sampled_from(["", ",SIP/2.0/TCP h2;branch=z9hG4bK9", ", SIP/2.0/UDP h3:5;rport;branch=z9hG4bK8;x=1",
                     ",SIP/2.0/UDP h4;rport", ",SIP/2.0/UDP h5;branch=z9hG4bK7,SIP/2.0/UDP h6;branch=z9hG4bK6"]),
    st.lists(_TOKENS | _NOT_TOKENS, min_size=1, max_size=3),
)
@example("127.0.0.1:5080", "", ",SIP/2.0/UDP 127.0.0.1:5100;branch=z9hG4bK-1-1-0", ["z9hG4bK1abc", "z9hG4bK-1-1-0"])
def test_vias_through_line_templates_equal_general(host: str, params: str, more: str, texts: list[str]) -> None:
    _through_line_template(f"Via: SIP/2.0/UDP {host};branch=z9hG4bK1{params}{more}", texts)


@given(
    st.sampled_from(["Via", "From", "Contact", "Route"]),
    from_lark(_grammar(), start="via_value", alphabet=st.characters(max_codepoint=0xFF))
    | from_lark(_grammar(), start="from_value", alphabet=st.characters(max_codepoint=0xFF))
    | from_lark(_grammar(), start="contact_value", alphabet=st.characters(max_codepoint=0xFF)),
    st.lists(_HOLE_TEXTS, min_size=1, max_size=3),
)
def test_grammar_lines_through_line_templates_equal_general(header: str, value: str, texts: list[str]) -> None:
    """Values from the grammar itself, under any of the template headers, holes refilled."""
    _through_line_template(f"{header}: {value}", texts)


_REGISTER = (
    "REGISTER sip:127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5100;branch=z9hG4bK-1-{n}-0\r\n"
    "Max-Forwards: 70\r\nFrom: <sip:{user}@127.0.0.1>;tag=1r{n}\r\nTo: <sip:{user}@127.0.0.1>\r\n"
    "Call-ID: {n}-1@127.0.0.1\r\nCSeq: 1 REGISTER\r\nContact: <sip:{user}@127.0.0.1:5100>;expires={expires}\r\n"
    "Content-Length: 0\r\n\r\n"
)


@given(st.lists(st.tuples(_USERS | _NOT_USERS, st.sampled_from(["60", "4294967296"])), min_size=1, max_size=5))
def test_registers_read_through_line_templates_equal_a_cold_parse(users: list[tuple[str, str]]) -> None:
    """REGISTERs of rotating users (the user a hole of From, To and Contact): warm equals cold, refusals
    included (a Contact expires above 2**32-1 is read from a Deferred Contact)."""

    messages = [
        _REGISTER.format(n=n, user=user, expires=expires).encode("latin-1")
        for n, (user, expires) in enumerate([("u0", "60"), *users])
    ]
    _warm_equals_cold(messages)
