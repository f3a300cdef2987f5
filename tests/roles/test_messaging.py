"""Store-and-forward decisions for MESSAGE (RFC 3428 §4, §7, §8; RFC 3261 §20.17, §21.4.11, §21.4.18),
pure: time, the count of waiting messages and the sender are arguments."""

from __future__ import annotations

import pytest

from sipactors.message import Request, SipURI, parse
from sipactors.roles.messaging import (
    Keep,
    MessagingPolicy,
    accept,
    delivery_request,
    fate,
    recipient_aor,
    sender_of,
    too_large,
)
from sipactors.roles.proxy import Answer

NOW = 1_800_000_000.0  # Fri, 15 Jan 2027 08:00:00 GMT
POLICY = MessagingPolicy(max_size=100, max_stored=3, stored_for=3600.0)
BOB = "sip:bob@example.com"


def message(body: bytes = b"hello", *headers: str, method: str = "MESSAGE") -> Request:
    head = "\r\n".join([
        f"{method} sip:bob@example.com:5060 SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1",
        "Max-Forwards: 70", 'From: "Alice" <sip:alice@example.com>;tag=a1', "To: <sip:bob@example.com>",
        "Call-ID: c1@192.0.2.1", f"CSeq: 1 {method}", "Content-Type: text/plain", *headers,
        f"Content-Length: {len(body)}",
    ])
    request = parse(head.encode() + b"\r\n\r\n" + body)
    assert isinstance(request, Request)
    return request


def test_a_body_over_the_limit_gets_413_rfc3261_21_4_11() -> None:
    assert too_large(message(b"x" * 101), POLICY) == Answer(413, "Request Entity Too Large")
    assert too_large(message(b"x" * 100), POLICY) is None
    assert accept(message(b"x" * 101), BOB, 0, NOW, POLICY) == Answer(413, "Request Entity Too Large")


def test_an_offline_users_message_is_kept_and_answered_202_rfc3428_7() -> None:
    decision = accept(message(b"hello", "Date: Thu, 14 Jan 2027 08:00:00 GMT"), BOB, 0, NOW, POLICY, "alice")
    assert isinstance(decision, Keep) and decision.answer == Answer(202, "Accepted")
    kept = decision.message
    assert kept.aor == BOB and kept.from_ == '"Alice" <sip:alice@example.com>'  # no tag: a new request delivers it
    assert kept.to == "<sip:bob@example.com>" and kept.date == "Thu, 14 Jan 2027 08:00:00 GMT"
    assert (kept.content_type, kept.body, kept.sender) == ("text/plain", b"hello", "alice")
    assert kept.received == NOW and kept.expires == NOW + 3600.0


def test_a_message_without_date_gets_one_so_delivery_carries_the_original_time_rfc3261_20_17() -> None:
    decision = accept(message(), BOB, 0, NOW, POLICY)
    assert isinstance(decision, Keep) and decision.message.date == "Fri, 15 Jan 2027 08:00:00 GMT"


def test_expires_shortens_the_storage_from_the_date_or_the_arrival_rfc3428_7() -> None:
    dated = accept(message(b"x", "Date: Fri, 15 Jan 2027 07:59:00 GMT", "Expires: 120"), BOB, 0, NOW, POLICY)
    assert isinstance(dated, Keep) and dated.message.expires == NOW + 60.0
    undated = accept(message(b"x", "Expires: 120"), BOB, 0, NOW, POLICY)
    assert isinstance(undated, Keep) and undated.message.expires == NOW + 120.0
    longer = accept(message(b"x", "Expires: 100000"), BOB, 0, NOW, POLICY)
    assert isinstance(longer, Keep) and longer.message.expires == NOW + 3600.0  # stored_for caps it


def test_a_message_expired_on_arrival_is_not_stored() -> None:
    assert accept(message(b"x", "Expires: 0"), BOB, 0, NOW, POLICY) == Answer(480)
    old = message(b"x", "Date: Fri, 15 Jan 2027 07:00:00 GMT", "Expires: 60")
    assert accept(old, BOB, 0, NOW, POLICY) == Answer(480)


def test_a_full_store_for_the_user_gets_480() -> None:
    assert isinstance(accept(message(), BOB, 2, NOW, POLICY), Keep)
    refused = accept(message(), BOB, 3, NOW, POLICY)
    assert isinstance(refused, Answer) and refused.status == 480 and "Full" in (refused.reason or "")


def test_only_message_requests_are_stored() -> None:
    with pytest.raises(ValueError, match="MESSAGE"):
        accept(message(method="INFO"), BOB, 0, NOW, POLICY)
    assert too_large(message(b"x" * 101, method="INFO"), POLICY) is None


@pytest.mark.parametrize(("status", "event"), [
    (200, "accepted"), (202, "accepted"), (408, "deferred"), (480, "deferred"), (503, "deferred"),
    (404, "refused"), (415, "refused"), (486, "refused"), (500, "refused"), (603, "refused"),
])
def test_the_fate_of_a_delivery_by_its_final_response_rfc3428_7(status: int, event: str) -> None:
    assert fate(status) == event


def test_the_delivery_is_a_new_message_with_what_was_stored_rfc3428_4() -> None:
    kept = accept(message(b"hello", "Date: Thu, 14 Jan 2027 08:00:00 GMT"), BOB, 0, NOW, POLICY)
    assert isinstance(kept, Keep)
    request = parse(bytes(delivery_request(kept.message, "new-call@192.0.2.9", "t1")))
    assert isinstance(request, Request) and request.method == "MESSAGE" and request.uri.render() == BOB
    assert request.call_id == "new-call@192.0.2.9" and request.from_ is not None and request.from_.tag == "t1"
    assert request.from_.uri.render() == "sip:alice@example.com" and request.to is not None and request.to.tag is None
    assert request.header_text("Date") == "Thu, 14 Jan 2027 08:00:00 GMT"
    assert request.header_text("Content-Type") == "text/plain" and request.body == b"hello"
    assert not request.has("Contact") and request.cseq is not None and request.cseq.seq == 1


def test_the_sender_is_the_user_of_the_proxy_authorization_of_our_realm() -> None:
    auth = 'Proxy-Authorization: Digest username="alice", realm="example.com", nonce="n", uri="sip:bob@example.com", response="r"'
    other = 'Proxy-Authorization: Digest username="mallory", realm="elsewhere", nonce="n", uri="sip:x", response="r"'
    assert sender_of(message(b"x", other, auth), "example.com") == "alice"
    assert sender_of(message(b"x", other), "example.com") is None


def test_the_recipient_aor_has_no_port_or_parameters() -> None:
    assert recipient_aor(SipURI("sip", "Example.COM", "bob", port=5060)) == BOB
