"""Transaction matching (RFC 3261 §17.1.3, §17.2.3, §9.2)."""

from __future__ import annotations

from sipactors.fsm.keys import cancel_target, client_key, server_key
from sipactors.message import parse

INVITE = (
    "INVITE sip:bob@example.com SIP/2.0\r\nVia: SIP/2.0/UDP {sent_by};branch={branch}\r\n"
    "To: <sip:bob@example.com>{to_tag}\r\nFrom: <sip:alice@example.com>;tag=a1\r\nCall-ID: c1\r\n"
    "CSeq: 7 {method}\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
)


def _request(method: str = "INVITE", branch: str = "z9hG4bK1", sent_by: str = "pc.example.com:5060", to_tag: str = ""):  # type: ignore[no-untyped-def]
    text = INVITE.format(method=method, branch=branch, sent_by=sent_by, to_tag=to_tag)
    text = text.replace("INVITE sip:", f"{method} sip:", 1)
    return parse(text.encode())


def test_a_retransmission_has_the_same_key_and_the_sent_by_host_is_case_insensitive() -> None:
    assert server_key(_request()) == server_key(_request(sent_by="PC.Example.COM:5060"))


def test_a_different_branch_or_sent_by_or_method_is_another_transaction() -> None:
    key = server_key(_request())
    assert key != server_key(_request(branch="z9hG4bK2"))
    assert key != server_key(_request(sent_by="pc.example.com:5070"))
    assert key != server_key(_request(method="OPTIONS"))


def test_an_ack_matches_its_invite_server_transaction_rfc3261_17_2_3() -> None:
    assert server_key(_request(method="ACK", to_tag=";tag=b2")) == server_key(_request())


def test_a_cancel_has_its_own_transaction_and_targets_the_invite_rfc3261_9_2() -> None:
    cancel = _request(method="CANCEL")
    assert server_key(cancel) != server_key(_request())
    assert cancel_target(cancel) == server_key(_request())


def test_rfc2543_requests_are_matched_by_their_fields() -> None:
    old = _request(branch="1234")  # no magic cookie
    assert server_key(old)[0] == "2543"
    assert server_key(old) == server_key(_request(branch="1234"))
    assert server_key(_request(method="ACK", branch="1234", to_tag=";tag=b2")) == server_key(old)
    assert server_key(old) != server_key(_request(branch="1234", sent_by="other.example.com"))


def test_a_response_matches_by_branch_and_cseq_method_rfc3261_17_1_3() -> None:
    request = _request()
    response = parse(
        b"SIP/2.0 180 Ringing\r\nVia: SIP/2.0/UDP pc.example.com:5060;branch=z9hG4bK1\r\n"
        b"To: <sip:bob@example.com>;tag=b2\r\nFrom: <sip:alice@example.com>;tag=a1\r\nCall-ID: c1\r\n"
        b"CSeq: 7 INVITE\r\nContent-Length: 0\r\n\r\n"
    )
    assert client_key(response) == client_key(request) == ("z9hG4bK1", "INVITE")
    cancel_response = parse(bytes(response).replace(b"7 INVITE", b"7 CANCEL"))
    assert client_key(cancel_response) != client_key(request)
