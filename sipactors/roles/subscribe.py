"""The notifier's pure part (RFC 6665 §4.2, RFC 3261 §12): checking a SUBSCRIBE, its 200, and building a
NOTIFY. No clock, no randomness: the caller passes the time left and the Via branch.

* ``check_subscribe`` runs the checks of RFC 6665 §4.2.1.1 in order: the Event header field names a
  package this notifier hosts (else ``489 Bad Event`` with Allow-Events, §8.2.2, §7.2), the Expires is
  acceptable (absent: the package's default, §5.4.4, 3600 for presence, RFC 3856 §6.4; below Min-Expires
  and not 0: ``423`` with Min-Expires; above the maximum: shortened, §4.2.1.1), the Accept header field
  allows one of the package's content types (else ``406`` with Accept, §7.2.4 / RFC 3261 §21.4.7), and
  the resource exists (else ``404``). What it accepts is a ``Subscribe``.
* ``accepted`` is the 200 (RFC 6665 §8.3.1 deprecates 202: never sent) with Expires and Contact
  (§4.2.1.1, RFC 3261 §12.1.1).
* ``notify_request`` is a NOTIFY in the dialog (RFC 3261 §12.2.1.1: To the remote URI and tag, From the
  local ones, the dialog's Call-ID, the next local CSeq, the remote target as Request-URI, the route set
  as Route; loose routing) carrying what RFC 6665 §4.2.2 wants: Event with its id, Subscription-State
  (``active;expires=N``, ``pending;expires=N``, ``terminated;reason=R``), Contact, Max-Forwards, and the
  package's body with its Content-Type.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from sipactors.message import NameAddr, Request, Response, Via, parse_uri
from sipactors.message.build import response_for
from sipactors.message.params import Params
from sipactors.roles.events import Body, EventPackage
from sipactors.roles.proxy import (
    Answer as Refusal,  # a SUBSCRIBE refused: answered as the proxy answers (status, headers)
)
from sipactors.store.model import canonical_aor, without_port

__all__ = [
    "DEFAULT_EXPIRES", "Refusal", "Subscribe", "SubscribePolicy", "accepted", "allow_events", "check_subscribe",
    "media_allowed", "notify_request", "subscription_state",
]

#: RFC 6665 §5.4.4: each package defines its default duration; this one is presence's (RFC 3856 §6.4),
#: used for a package that declares no ``default_expires`` of its own.
DEFAULT_EXPIRES = 3600
#: RFC 3261 §8.1.1.6, §12.2.1.1.
MAX_FORWARDS = 70


@dataclass(frozen=True)
class SubscribePolicy:
    """Local limits on subscription durations (RFC 6665 §4.2.1.1)."""

    min_expires: int = 60  # shorter (but not 0) gets 423 with Min-Expires
    max_expires: int = 86_400  # longer is shortened to this


@dataclass(frozen=True, slots=True)
class Subscribe:
    """A SUBSCRIBE the checks accepted."""

    event: str  # the package token (lower case: RFC 6665 §8.2.1 tokens compare case-insensitively)
    event_id: str | None  # the Event header field's id parameter (§8.2.1)
    expires: int  # the granted duration in seconds (0: a fetch, §4.4.3)
    resource: str  # the canonical AOR of the Request-URI
    accept: tuple[str, ...]  # the Accept media types as type/subtype, in order
    supported: frozenset[str]


def allow_events(packages: Mapping[str, EventPackage]) -> str:
    """The Allow-Events value (RFC 6665 §8.2.2): the packages hosted, sorted."""
    return ", ".join(sorted(packages))


def media_allowed(accept: tuple[str, ...], offered: str) -> bool:
    """Whether an Accept list admits media type ``offered`` (RFC 3261 §20.1: ``*/*`` and ``type/*`` ranges;
    an absent or empty Accept means the package's default, RFC 6665 §4.2.1.1)."""
    if not accept:
        return True
    kind = offered.partition(";")[0].strip().lower()
    major = kind.partition("/")[0]
    return any(item in (kind, "*/*", f"{major}/*") for item in accept)


def check_subscribe(
    request: Request, packages: Mapping[str, EventPackage], policy: SubscribePolicy, resource: str | None = None,
) -> Subscribe | Refusal:
    """RFC 6665 §4.2.1.1 for a SUBSCRIBE: what it asks for, or why it is refused. ``resource`` is given for
    an in-dialog SUBSCRIBE (a refresh, §4.2.1.4): its Request-URI is our Contact, and the resource is the
    subscription's."""
    event = request.header("Event")
    package = packages.get(event.value.lower()) if event is not None else None
    if event is None or package is None:
        # §8.2.1: Event is mandatory in a SUBSCRIBE; without it no package can be meant
        # (Allow-Events names at least one package, RFC 6665 §8.2.2: none hosted, none named)
        return Refusal(489, None, (("Allow-Events", allow_events(packages)),) if packages else ())
    expires = request.expires
    if expires is None:
        expires = int(getattr(package, "default_expires", DEFAULT_EXPIRES))
    elif 0 < expires < policy.min_expires:
        return Refusal(423, None, (("Min-Expires", policy.min_expires),))
    expires = min(expires, policy.max_expires)
    media = request.header("Accept") or []
    accept = tuple(f"{m.type}/{m.subtype}".lower() for m in media)
    if not any(media_allowed(accept, offered) for offered in package.content_types()):
        return Refusal(406, None, (("Accept", ", ".join(package.content_types())),))
    if resource is None:
        try:
            resource = without_port(canonical_aor(request.uri.render()))  # the port names us, not the resource
        except ValueError:
            return Refusal(404)
        if not package.resource_exists(resource):
            return Refusal(404)
    supported = frozenset(tag.lower() for tag in request.header("Supported") or [])
    return Subscribe(event.value.lower(), event.params.get("id"), expires, resource, accept, supported)


def accepted(request: Request, to_tag: str, expires: int, contact: NameAddr) -> Response:
    """The 200 to a SUBSCRIBE (RFC 6665 §4.2.1.1: Expires says the duration granted; §8.3.1: not 202),
    with our Contact (RFC 3261 §12.1.1: a response that creates a dialog carries it) and the Record-Route
    copied (§12.1.1)."""
    headers: list[tuple[str, object]] = [("Expires", expires), ("Contact", [contact])]
    headers += [("Record-Route", f.value) for f in request.get_fields("Record-Route")]
    return response_for(request, 200, to_tag=to_tag, headers=headers)


def subscription_state(state: str, expires_left: int | None = None, reason: str | None = None,
                       retry_after: int | None = None) -> str:
    """The Subscription-State value (RFC 6665 §8.2.3, §4.1.3)."""
    if state == "terminated":
        return "terminated" + (f";reason={reason}" if reason else "") + (
            f";retry-after={retry_after}" if retry_after is not None else "")
    return f"{state};expires={max(0, expires_left or 0)}"


def notify_request(
    *, call_id: str, local_uri: str, local_tag: str, remote_uri: str, remote_tag: str, remote_target: str,
    route_set: tuple[str, ...], cseq: int, event: str, event_id: str | None, state: str,
    expires_left: int | None, reason: str | None, contact: NameAddr, body: Body | None, via: Via,
    retry_after: int | None = None,
) -> Request:
    """A NOTIFY in the dialog (RFC 3261 §12.2.1.1) with RFC 6665 §4.2.2's header fields."""
    request = Request("NOTIFY", parse_uri(remote_target))
    request.add_header("Via", [via])
    if route_set:
        request.add_header("Route", ", ".join(f"<{uri}>" for uri in route_set))
    event_value = event + (f";id={event_id}" if event_id is not None else "")
    for name, value in (
        ("Max-Forwards", MAX_FORWARDS),
        ("To", NameAddr(parse_uri(remote_uri), params=Params((("tag", remote_tag),)))),
        ("From", NameAddr(parse_uri(local_uri), params=Params((("tag", local_tag),)))),
        ("Call-ID", call_id), ("CSeq", f"{cseq} NOTIFY"), ("Contact", [contact]), ("Event", event_value),
        ("Subscription-State", subscription_state(state, expires_left, reason, retry_after)),
    ):
        request.add_header(name, value)
    data = b""
    if body is not None:
        request.add_header("Content-Type", body.content_type)
        data = body.data
    request.add_header("Content-Length", len(data))
    request.body = data
    return request
