"""Processing PUBLISH requests at the event state compositor (RFC 3903 §6), as a pure decision.

:func:`decide` takes the request, the presentity's live publications (by entity-tag), ``now`` (POSIX
seconds), the policy and a fresh entity-tag the caller drew (the sans-IO core draws no randomness), and
returns an :class:`Outcome`: the response to send and the one change to store (a new, refreshed,
modified or removed publication). It reads no clock and touches no store; the presence role
(``sipactors.roles.presence``) stores the change atomically and answers (§6 step 5: "processed
atomically"; step 6).

The steps, in the order of §6, each refusing with the row of :data:`FAILURES` it names:

0. **Access control** (RFC 3903 §14.1): a presentity's state is published only by the presentity: the
   authenticated user (digest, run by the caller) must be the Request-URI's user in its domain, unless the
   server is open (no users at all). 403 otherwise.
1. The Request-URI must be a SIP/SIPS URI with a user in a local domain (404 otherwise).
2. **Event** (step 2): missing or a package we do not serve → ``489 Bad Event`` with Allow-Events.
3. **SIP-If-Match** (step 3): more than one entity-tag → 400; a tag matching no live publication of this
   presentity and package → ``412 Conditional Request Failed``; none → a new publication.
4. **Expires** (step 4): the request's, else the package default; above ``max_expires`` it is shortened;
   above zero and below ``min_expires`` → ``423 Interval Too Brief`` with Min-Expires.
5. **The body** (step 5): Expires 0 removes the publication and stores nothing; an initial PUBLISH without
   a body → 400; a body whose Content-Type is not the package's → 415 with Accept; a body the package's
   validator refuses → 400 with the validator's reason, and nothing stored.
6. ``200`` with ``SIP-ETag`` (the new tag: every successful PUBLISH gets one, step 6) and ``Expires``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from sipactors.message import Request, Response, SipURI, unescape
from sipactors.message.build import response_for
from sipactors.roles.registrar import Rule  # a refusal: status, reason phrase, the RFC section requiring it
from sipactors.store.model import canonical_aor, without_port
from sipactors.store.publications import Publication

__all__ = ["FAILURES", "Failure", "Outcome", "PublishPolicy", "decide", "presentity_of"]

#: RFC 3903 §12: entity-tag = token (RFC 3261 §25.1).
_TOKEN = re.compile(r"[A-Za-z0-9\-.!%*_+`'~]+")


@dataclass(frozen=True, slots=True)
class PublishPolicy:
    """The compositor's configuration (RFC 3903 §6: "the set of addresses for which it maintains event
    state"; the expiration limits of step 4)."""

    domains: frozenset[str]
    #: the event packages served, each with the media types a PUBLISH body may have (step 5)
    packages: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {"presence": ("application/pidf+xml",)})
    min_expires: int = 60
    max_expires: int = 7200
    default_expires: int = 3600  # RFC 3903 §6 step 4 "a locally-configured default"; RFC 3856 §6.4's hour

    def __post_init__(self) -> None:
        object.__setattr__(self, "domains", frozenset(d.lower() for d in self.domains))
        if not 0 <= self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("expected 0 <= min_expires <= default_expires <= max_expires")


class Failure(Enum):
    FORBIDDEN = "forbidden"
    NOT_FOUND = "not-found"
    BAD_EVENT = "bad-event"
    IF_MATCH_NOT_ONE_TAG = "if-match-not-one-tag"
    NO_SUCH_ETAG = "no-such-etag"
    INTERVAL_TOO_BRIEF = "interval-too-brief"
    NO_BODY = "no-body"
    MEDIA_TYPE = "media-type"
    BAD_BODY = "bad-body"


FAILURES: dict[Failure, Rule] = {
    Failure.FORBIDDEN: Rule(403, "Forbidden (Not the Presentity)", "RFC 3903 §14.1"),
    Failure.NOT_FOUND: Rule(404, "Not Found", "RFC 3903 §6 step 1"),
    Failure.BAD_EVENT: Rule(489, "Bad Event", "RFC 3903 §6 step 2"),
    Failure.IF_MATCH_NOT_ONE_TAG: Rule(400, "SIP-If-Match Must Hold One entity-tag", "RFC 3903 §6 step 3"),
    Failure.NO_SUCH_ETAG: Rule(412, "Conditional Request Failed", "RFC 3903 §6 step 3, §11.2.1"),
    Failure.INTERVAL_TOO_BRIEF: Rule(423, "Interval Too Brief", "RFC 3903 §6 step 4"),
    Failure.NO_BODY: Rule(400, "Initial PUBLISH Without Body", "RFC 3903 §6 step 5"),
    Failure.MEDIA_TYPE: Rule(415, "Unsupported Media Type", "RFC 3903 §6 step 5"),
    Failure.BAD_BODY: Rule(400, "Bad Event State", "RFC 3903 §6 step 5"),
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do with one PUBLISH: answer ``status``/``reason`` with ``headers``; for a 200, carry out
    ``kind`` ("publish", "refresh", "modify" or "remove"; None: nothing to store, an initial PUBLISH with
    Expires 0) on ``publication`` (the new state, None for a removal), which ``replaces`` the publication
    of that entity-tag (None for a new one)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    presentity: str | None = None
    kind: str | None = None
    publication: Publication | None = None
    replaces: str | None = None
    failure: Failure | None = None
    section: str = ""

    def response(self, request: Request, to_tag: str | None = None) -> Response:
        return response_for(request, self.status, self.reason, to_tag=to_tag, headers=list(self.headers))


def _refused(failure: Failure, presentity: str | None = None, headers: tuple[tuple[str, str], ...] = (),
             reason: str | None = None) -> Outcome:
    rule = FAILURES[failure]
    return Outcome(rule.status, reason or rule.reason, headers, presentity, failure=failure, section=rule.section)


def presentity_of(request: Request, domains: frozenset[str]) -> str | None:
    """The presentity a PUBLISH is for (RFC 3903 §6 step 1): its Request-URI in canonical form, if it is a
    SIP or SIPS URI with a user in one of ``domains``; else None."""
    uri = request.uri
    if not isinstance(uri, SipURI) or uri.user is None or uri.host.lower() not in domains:
        return None
    return without_port(canonical_aor(uri.render()))  # the port names this server, not the presentity


def decide(
    request: Request, held: Mapping[str, Publication], now: float, policy: PublishPolicy, *, etag: str,
    validate: Callable[[str, bytes], None], authenticated_user: str | None = None, open_mode: bool = False,
) -> Outcome:
    """Decide a PUBLISH (RFC 3903 §6). ``held`` is the live publications of the presentity by entity-tag,
    ``etag`` a fresh entity-tag unlike any used before for it, ``validate(event, body)`` the package's
    check of a body (raises ``ValueError`` whose text is the 400's reason phrase), ``authenticated_user``
    the user the digest authenticator proved, ``open_mode`` true when the server has no users."""
    presentity = presentity_of(request, policy.domains)
    if presentity is None:
        return _refused(Failure.NOT_FOUND)
    uri = request.uri
    assert isinstance(uri, SipURI) and uri.user is not None  # presentity_of checked it
    if not open_mode and authenticated_user != unescape(uri.user):
        return _refused(Failure.FORBIDDEN, presentity)
    event = request.header("Event")
    package = event.value.lower() if event is not None else None
    if package not in policy.packages:
        return _refused(Failure.BAD_EVENT, presentity, (("Allow-Events", ", ".join(policy.packages)),))
    assert package is not None
    matches = request.get_fields("SIP-If-Match")
    previous: Publication | None = None
    if matches:
        tag = str(matches[0].parsed).strip()
        if len(matches) > 1 or not _TOKEN.fullmatch(tag):
            return _refused(Failure.IF_MATCH_NOT_ONE_TAG, presentity)
        previous = held.get(tag)
        if previous is None or previous.event != package or previous.expires <= now:
            return _refused(Failure.NO_SUCH_ETAG, presentity)
    requested = request.expires if request.expires is not None else policy.default_expires
    if 0 < requested < policy.min_expires:
        return _refused(Failure.INTERVAL_TOO_BRIEF, presentity, (("Min-Expires", str(policy.min_expires)),))
    chosen = min(requested, policy.max_expires)
    ok = (("SIP-ETag", etag), ("Expires", str(chosen)))
    if chosen == 0:  # step 5: removed at once, nothing stored
        if previous is None:
            return Outcome(200, "OK", ok, presentity)
        return Outcome(200, "OK", ok, presentity, "remove", None, previous.etag)
    body = request.body
    if not body:
        if previous is None:
            return _refused(Failure.NO_BODY, presentity)
        refreshed = Publication(presentity, etag, previous.body, now + chosen, previous.updated, package,
                                previous.content_type)
        return Outcome(200, "OK", ok, presentity, "refresh", refreshed, previous.etag)
    content_type = request.header("Content-Type")
    accepted = policy.packages[package]
    media = content_type.mime.lower() if content_type is not None else None
    if media not in accepted:
        return _refused(Failure.MEDIA_TYPE, presentity, (("Accept", ", ".join(accepted)),))
    try:
        validate(package, body)
    except ValueError as error:
        return _refused(Failure.BAD_BODY, presentity, reason=str(error))
    publication = Publication(presentity, etag, body, now + chosen, now, package, media)
    if previous is None:
        return Outcome(200, "OK", ok, presentity, "publish", publication)
    return Outcome(200, "OK", ok, presentity, "modify", publication, previous.etag)
