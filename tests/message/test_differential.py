"""Differential tests: the hot path and the oracle (Lark LALR over grammar/sip.lark) give the same verdict
and the same fields, on header values generated from the grammar and on mutated valid messages."""

from __future__ import annotations

from functools import lru_cache

from hypothesis import example, given
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark
from lark import Lark

from sipactors._resources import grammar_file
from sipactors.message import Message, ParseError, parse, parse_oracle
from sipactors.message.headers import SPECS
from sipactors.message.syntax import VALUE_RULES
from tests.message.corpus import all_cases

#: Header name to use for each value rule.
RULE_HEADER = {spec.rule: spec.name for spec in SPECS.values()}
RULE_HEADER["extension_value"] = "X-Extension"

TEMPLATE = (
    "OPTIONS sip:bob@example.com SIP/2.0\r\n"
    "Via: SIP/2.0/UDP h.example.com;branch=z9hG4bK1\r\n"
    "To: <sip:bob@example.com>\r\n"
    "From: <sip:alice@example.com>;tag=1\r\n"
    "Call-ID: c1@example.com\r\n"
    "CSeq: 1 OPTIONS\r\n"
    "{header}"
    "Content-Length: 0\r\n\r\n"
)


@lru_cache(maxsize=1)
def value_grammar() -> Lark:
    return Lark(grammar_file("sip.lark").read_text(encoding="utf-8"), parser="lalr", start=list(VALUE_RULES))


def verdict(parser, data: bytes) -> Message | ParseError:  # type: ignore[no-untyped-def]
    try:
        message = parser(data)
        message.validate_all()
    except ParseError as error:
        return error
    return message


def assert_same(data: bytes) -> None:
    hot = verdict(parse, data)
    oracle = verdict(parse_oracle, data)
    assert isinstance(hot, ParseError) == isinstance(oracle, ParseError), f"hot={hot!r} oracle={oracle!r}"
    if not isinstance(hot, ParseError):
        assert hot == oracle
        assert hot.refusal == oracle.refusal


def _text(value: str) -> bytes:
    return value.encode("latin-1", errors="replace")


@st.composite
def generated_headers(draw: st.DrawFn) -> bytes:
    rule = draw(st.sampled_from(VALUE_RULES))
    value = draw(from_lark(value_grammar(), start=rule, alphabet=st.characters(max_codepoint=0xFF)))
    header = RULE_HEADER[rule]
    return _text(TEMPLATE.format(header=f"{header}: {value}\r\n"))


@given(generated_headers())
def test_generated_header_values_same_verdict_and_fields(data: bytes) -> None:
    assert_same(data)


SEEDS = [case.data for case in all_cases() if case.entry["valid"] and case.entry["kind"] == "request"]
NOISE = st.sampled_from([";", ",", ":", "<", ">", '"', "\\", " ", "\t", "=", "@", "/", "?", "&", "[", "]", "%", "*", "\x00", "\xe9", "a", "1", "\r\n", "\r\n "])


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    head_end = data.find(b"\r\n\r\n")
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, max(0, head_end - 1)))
        action = draw(st.sampled_from(["insert", "delete", "replace"]))
        noise = _text(draw(NOISE))
        if action == "insert":
            data[at:at] = noise
        elif action == "delete":
            del data[at : at + draw(st.integers(1, 4))]
        else:
            data[at : at + 1] = noise
    return bytes(data)


@given(mutated_messages())
@example(b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: a <sip:a@b>\r\nFrom: sip:b@c;tag=1\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n")
def test_mutated_messages_same_verdict_and_fields(data: bytes) -> None:
    assert_same(data)


def test_every_corpus_message_same_verdict() -> None:
    for case in all_cases():
        assert_same(case.data)
