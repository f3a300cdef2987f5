"""Page-mode instant messaging (RFC 3428) with store-and-forward for users who have no device registered:
the pure decisions. The runtime (``sipactors.runtime.messaging``) carries them out.

A MESSAGE for a local user is proxied like any other request (RFC 3428 §6: forked to every registered
device, one final response upstream, RFC 3261 §16.7). This module decides what the proxy alone does not:

* **Size** (:func:`too_large`): a MESSAGE whose body is larger than ``max_size`` gets ``413 Request Entity
  Too Large`` (RFC 3261 §21.4.11: "larger than the server is willing or able to process"), whatever its
  destination. RFC 3428 §8 limits a MESSAGE outside a media session to 1300 bytes unless the UAC knows the
  path is congestion-controlled; a server cannot know what its clients know, so the limit is local policy
  (default 64 KiB, config ``[messaging] max_size``).
* **Storing** (:func:`accept`): a MESSAGE the proxy would answer ``480`` because the local AOR has no live
  binding (RFC 3261 §21.4.18) is kept instead and answered ``202 Accepted`` (RFC 3428 §7: a UAS "which is,
  in fact, a message relay, storing the message and forwarding it later on ... SHOULD return a 202
  (Accepted)"; §4: 202 says accepted, not delivered). The proxy's own decisions come first and stay:
  a local sender is challenged with 407 (``auth_methods``), a user who does not exist gets 404
  (RFC 3261 §21.4.5), so only a MESSAGE that passed both is stored.
* **What is kept**: From (without its tag: each delivery is a new request, RFC 3261 §8.1.1.3), To, Date
  (the sender's, or one added on arrival, RFC 3261 §20.17, so that delivery carries the original time:
  RFC 3428 §11.4 notes a stale Date is normal for a stored message), Content-Type, body, the user the proxy
  authenticated if any (RFC 3261 §22.3), the time received, and the expiry.
* **Expiry**: ``stored_for`` after arrival (default 7 days, config ``stored_for``), earlier if the MESSAGE
  carries an Expires (RFC 3428 §7: a delta from its Date, else from its arrival). A message that is
  expired on arrival is not stored: it gets the ``480`` a relay without a store gives.
* **A full store** for the user (``max_stored`` messages waiting, config ``max_stored``) gets ``480
  Temporarily Unavailable``: the user is offline (what §21.4.18 says) and this relay will keep no more for
  them. 486 Busy Here would claim the user's end system was reached (§21.4.24), which it was not; 507-like
  storage codes do not exist in SIP.
* **Delivery outcome** (:func:`fate`): a 2xx delivered it (RFC 3428 §4); a timeout, 408, 480 or 503 mean the
  device cannot take it now (RFC 3261 §21.4.9, §21.4.18, §21.5.4): it stays stored for the next
  registration; any other final response refused it (RFC 3428 §7: a 4xx/5xx "was not delivered
  successfully", a 6xx "delivered successfully, but refused"): it is dropped.

Sans-IO (DESIGN §1): time (``now``), the count of waiting messages and the authenticated sender are
arguments; nothing here reads a clock or a store.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

from sipactors.message import CSeq, Request, SipURI, parse_uri
from sipactors.roles.proxy import Answer
from sipactors.store.messages import StoredMessage
from sipactors.store.model import canonical_aor

__all__ = [
    "ACCEPTED", "DEFERRING", "Keep", "MessagingPolicy", "accept", "delivery_request", "fate", "recipient_aor",
    "sender_of", "too_large",
]

#: The final responses after which a stored message stays for the next registration: the device did not
#: answer (408, and a client transaction timeout counts as one: RFC 3261 §16.7 step 6), is not available
#: (480) or could not be reached (503, and a transport error or no next hop counts as one: §16.9).
DEFERRING = frozenset({408, 480, 503})
#: RFC 3428 §7: "SHOULD return a 202 (Accepted)".
ACCEPTED = Answer(202, "Accepted")


@dataclass(frozen=True, slots=True)
class MessagingPolicy:
    """Local configuration of store-and-forward (``[messaging]`` in the configuration file)."""

    max_size: int = 64 * 1024  # bytes of body, above which a MESSAGE gets 413 (RFC 3261 §21.4.11)
    max_stored: int = 100  # messages waiting per AOR, beyond which 480 (see the module docstring)
    stored_for: float = 7 * 24 * 3600.0  # seconds a stored message is kept undelivered (RFC 3428 §7)

    def __post_init__(self) -> None:
        if self.max_size < 0 or self.max_stored < 0 or self.stored_for <= 0:
            raise ValueError("expected max_size >= 0, max_stored >= 0 and stored_for > 0")


@dataclass(frozen=True, slots=True)
class Keep:
    """Store ``message``, and once it is committed answer ``answer`` (202)."""

    message: StoredMessage
    answer: Answer = ACCEPTED


def too_large(request: Request, policy: MessagingPolicy) -> Answer | None:
    """``413`` for a MESSAGE whose body exceeds ``max_size`` (RFC 3261 §21.4.11, RFC 3428 §8), else None."""
    if request.method == "MESSAGE" and len(request.body) > policy.max_size:
        return Answer(413, "Request Entity Too Large")
    return None


def recipient_aor(uri: SipURI) -> str:
    """The AOR a local Request-URI's messages are kept under: the URI without port or parameters in the
    canonical form a registrar keys bindings by (RFC 3261 §10.3 step 5); the port names this server
    (``roles.proxy``: clients register ``sip:user@domain`` and send to ``sip:user@domain:port``)."""
    return canonical_aor(SipURI(uri.scheme, uri.host, uri.user).render())


def sender_of(request: Request, realm: str) -> str | None:
    """The user name of the ``request``'s Proxy-Authorization for ``realm``: who the proxy authenticated
    (RFC 3261 §22.3) when it let the request through; None without one, or with a hashed user name
    (RFC 7616 §3.4.4: ``userhash=true`` hides it)."""
    for field in request.get_fields("Proxy-Authorization"):
        try:
            credentials = field.parsed
        except Exception:  # an unreadable value is not ours (the proxy ignored it too)
            continue
        if credentials.get("realm") == realm and (credentials.get("userhash") or "").lower() != "true":
            user: str | None = credentials.get("username")
            return user
    return None


def _expiry(request: Request, date: str | None, now: float, policy: MessagingPolicy) -> float:
    """When a stored message stops being worth delivering: ``stored_for`` after ``now``, or earlier by the
    MESSAGE's Expires, a delta from its Date if it has one, else from its arrival (RFC 3428 §7)."""
    expiry = now + policy.stored_for
    try:
        expires = request.expires
    except Exception:  # a malformed Expires: the message does not expire by it
        expires = None
    if expires is None:
        return expiry
    base = now
    if date is not None:
        try:
            base = parsedate_to_datetime(date).timestamp()
        except (TypeError, ValueError, OverflowError):  # an unreadable Date: the delta counts from arrival
            base = now
    return min(expiry, base + expires)


def accept(
    request: Request, aor: str, waiting: int, now: float, policy: MessagingPolicy, sender: str | None = None,
) -> Answer | Keep:
    """The store-and-forward decision for a MESSAGE to ``aor``, a local AOR with no live binding, which
    has ``waiting`` unexpired messages already; ``now`` POSIX seconds; ``sender`` the authenticated user.
    ``Keep`` (store, then 202) or the refusal (see the module docstring)."""
    if request.method != "MESSAGE":
        raise ValueError(f"store-and-forward keeps MESSAGE requests, not {request.method}")
    refusal = too_large(request, policy)
    if refusal is not None:
        return refusal
    if waiting >= policy.max_stored:
        return Answer(480, "Temporarily Unavailable (Message Store Full)")
    date = request.header_text("Date")
    expires = _expiry(request, date, now, policy)
    if expires <= now:  # RFC 3428 §7: expired before it could be delivered: not kept
        return Answer(480)
    from_, to = request.from_, request.to
    assert from_ is not None and to is not None  # parse refuses a request without them (§8.1.1)
    content_type = request.header_text("Content-Type")
    message = StoredMessage(
        aor=aor, from_=from_.with_params(from_.params.without("tag")).render(),
        to=to.with_params(to.params.without("tag")).render(),
        date=date if date is not None else formatdate(now, usegmt=True),
        content_type=content_type, body=request.body, sender=sender, received=now, expires=expires,
    )
    return Keep(message)


def delivery_request(message: StoredMessage, call_id: str, from_tag: str) -> Request:
    """The MESSAGE that delivers a stored one, as this server's UAC builds it (RFC 3428 §4, RFC 3261
    §8.1.1): Request-URI the AOR (the proxy's ``forward_request`` sets the device's contact and Route from
    its Path), a new Call-ID and From tag, CSeq 1, From, To, Date, Content-Type and body as stored, no
    Contact (RFC 3428 §4: "MUST NOT insert Contact header fields into MESSAGE requests"), no Via (the
    forwarding adds ours)."""
    request = Request("MESSAGE", parse_uri(message.aor, "Request-URI"))
    request.add_header("Max-Forwards", 70)  # RFC 3261 §8.1.1.6
    request.add_header("To", message.to)
    request.add_header("From", f"{message.from_};tag={from_tag}")
    request.add_header("Call-ID", call_id)
    request.add_header("CSeq", CSeq(1, "MESSAGE"))
    request.add_header("Date", message.date)  # RFC 3261 §20.17: the time it was sent, kept across the store
    if message.content_type is not None:
        request.add_header("Content-Type", message.content_type)
    request.add_header("Content-Length", len(message.body))
    request.body = message.body
    return request


def fate(status: int) -> str:
    """The delivery machine's event for a final response ``status`` (spec/machines/delivery.toml)."""
    if 200 <= status < 300:
        return "accepted"
    if status in DEFERRING:
        return "deferred"
    return "refused"
