"""RFC 3903 §6 as a pure decision (``sipactors.roles.publish.decide``): each step's refusal, and the four
successful kinds (initial, refresh, modify, remove), each with a new entity-tag and the chosen Expires."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from sipactors.message import Request, parse
from sipactors.roles.pidf import parse as parse_pidf
from sipactors.roles.publish import Failure, Outcome, PublishPolicy, decide
from sipactors.store.publications import Publication

ALICE = "sip:alice@example.com"
NOW = 1_800_000_000.0
POLICY = PublishPolicy(frozenset({"example.com"}), min_expires=60, max_expires=7200, default_expires=3600)
PIDF = (b'<?xml version="1.0" encoding="UTF-8"?>\n<presence xmlns="urn:ietf:params:xml:ns:pidf" '
        b'entity="sip:alice@example.com"><tuple id="t"><status><basic>open</basic></status></tuple></presence>')
HELD = {"old": Publication(ALICE, "old", PIDF, NOW + 100, NOW - 50)}


def publish(body: bytes = PIDF, *, uri: str = "sip:alice@example.com", event: str | None = "presence",
            if_match: Sequence[str] = (), expires: int | None = None, content_type: str = "application/pidf+xml") -> Request:
    lines = [
        f"PUBLISH {uri} SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp1", "Max-Forwards: 70",
        f"To: <{uri}>", "From: <sip:alice@example.com>;tag=1", "Call-ID: p1", "CSeq: 1 PUBLISH",
        *([f"Event: {event}"] if event is not None else []), *(f"SIP-If-Match: {tag}" for tag in if_match),
        *([f"Expires: {expires}"] if expires is not None else []),
        *([f"Content-Type: {content_type}"] if body else []), f"Content-Length: {len(body)}",
    ]
    message = parse(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    assert isinstance(message, Request)
    return message


def _decide(request: Request, **kwargs: object) -> Outcome:
    options: dict[str, object] = {"etag": "new", "validate": lambda event, body: parse_pidf(body), "open_mode": True}
    options.update(kwargs)
    return decide(request, HELD, NOW, POLICY, **options)  # type: ignore[arg-type]


@pytest.mark.parametrize(("request_", "failure", "status", "header"), [
    (publish(uri="sip:alice@elsewhere.org"), Failure.NOT_FOUND, 404, None),
    (publish(uri="sip:example.com"), Failure.NOT_FOUND, 404, None),
    (publish(event=None), Failure.BAD_EVENT, 489, ("Allow-Events", "presence")),
    (publish(event="dialog"), Failure.BAD_EVENT, 489, ("Allow-Events", "presence")),
    (publish(b"", if_match=["old", "other"]), Failure.IF_MATCH_NOT_ONE_TAG, 400, None),
    (publish(b"", if_match=["unknown"]), Failure.NO_SUCH_ETAG, 412, None),
    (publish(expires=30), Failure.INTERVAL_TOO_BRIEF, 423, ("Min-Expires", "60")),
    (publish(b""), Failure.NO_BODY, 400, None),
    (publish(content_type="application/xpidf+xml"), Failure.MEDIA_TYPE, 415, ("Accept", "application/pidf+xml")),
    (publish(PIDF.replace(b"open", b"away")), Failure.BAD_BODY, 400, None),
], ids=lambda value: value.value if isinstance(value, Failure) else None)
def test_each_step_refuses_as_rfc3903_6_says_and_nothing_is_stored(
    request_: Request, failure: Failure, status: int, header: tuple[str, str] | None,
) -> None:
    outcome = _decide(request_)
    assert outcome.failure is failure and outcome.status == status
    assert outcome.kind is None and outcome.publication is None
    if header is not None:
        assert header in outcome.headers


def test_a_bad_pidf_gets_400_whose_reason_names_the_problem() -> None:
    outcome = _decide(publish(PIDF.replace(b'id="t"', b"")))
    assert (outcome.status, outcome.reason) == (400, "Bad PIDF: tuple Without id")


def test_only_the_presentity_publishes_its_state_rfc3903_14_1() -> None:
    assert _decide(publish(), open_mode=False, authenticated_user="bob").status == 403
    assert _decide(publish(), open_mode=False, authenticated_user=None).status == 403
    assert _decide(publish(), open_mode=False, authenticated_user="alice").status == 200


def test_initial_publish_stores_the_body_under_a_new_tag_with_the_default_expiry() -> None:
    outcome = _decide(publish())
    assert outcome.kind == "publish" and outcome.replaces is None
    assert outcome.publication == Publication(ALICE, "new", PIDF, NOW + 3600, NOW)
    assert outcome.headers == (("SIP-ETag", "new"), ("Expires", "3600"))


def test_refresh_keeps_the_state_under_a_new_tag_and_a_long_interval_is_shortened_rfc3903_6_step_4() -> None:
    outcome = _decide(publish(b"", if_match=["old"], expires=90000))
    assert outcome.kind == "refresh" and outcome.replaces == "old"
    assert outcome.publication == Publication(ALICE, "new", PIDF, NOW + 7200, NOW - 50)
    assert ("Expires", "7200") in outcome.headers and ("SIP-ETag", "new") in outcome.headers


def test_modify_replaces_the_state_rfc3903_4_4() -> None:
    body = PIDF.replace(b"open", b"closed")
    outcome = _decide(publish(body, if_match=["old"], expires=600))
    assert outcome.kind == "modify" and outcome.replaces == "old"
    assert outcome.publication == Publication(ALICE, "new", body, NOW + 600, NOW)


def test_expires_zero_removes_and_stores_nothing_rfc3903_6_step_5() -> None:
    outcome = _decide(publish(b"", if_match=["old"], expires=0))
    assert (outcome.kind, outcome.publication, outcome.replaces) == ("remove", None, "old")
    assert outcome.headers == (("SIP-ETag", "new"), ("Expires", "0"))
    initial = _decide(publish(expires=0))
    assert initial.status == 200 and initial.kind is None


def test_an_expired_publication_is_not_matched_rfc3903_6_step_3() -> None:
    expired = {"old": Publication(ALICE, "old", PIDF, NOW, NOW - 3600)}
    outcome = decide(publish(b"", if_match=["old"]), expired, NOW, POLICY, etag="n", validate=lambda e, b: None,
                     open_mode=True)
    assert outcome.status == 412
