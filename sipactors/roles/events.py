"""The contract between the notifier and its event packages (RFC 6665 §4.2, §7, §8.2).

RFC 6665 splits SIP-specific event notification in two: the framework (SUBSCRIBE creates or refreshes a
subscription, the notifier sends NOTIFYs carrying Subscription-State, the subscription ends with exactly
one ``terminated`` NOTIFY) and *event packages* (§7.2) that say what a resource's state is and who may
see it. The notifier (``sipactors.runtime.subscription``) owns the framework; a package implements
:class:`EventPackage` and tells the notifier, through :class:`NotifierHandle`, when something changed.

Packages served here: ``presence`` (RFC 3856, bodies in PIDF, RFC 3863), ``presence.winfo`` (RFC 3857,
bodies in RFC 3858 watcher-info) and resource lists (RFC 4662: ``presence`` with ``Supported:
eventlist`` on a list URI, multipart/related with RLMI).

Rules of the contract:

1. **Sans-IO.** A package decides and renders; it never sends a message, reads a clock or touches a socket.
   Time, when a package needs it, is an argument.
2. **Full state by default.** ``body(..., full=True)`` is the resource's whole state for that watcher;
   every NOTIFY of the ``presence`` package is full state (RFC 3856 §6.7 leaves partial state to RFC 5263,
   which this server does not offer). Only a package that defines partial notifications (RFC 4662 §5.2:
   RLMI ``fullState="false"``) ever sees ``full=False``.
3. **Authorization is the package's** (RFC 6665 §4.2.1.2, §5.4.3): the notifier asks :meth:`EventPackage.authorize`
   when a subscription starts and whenever :meth:`NotifierHandle.reauthorize` says the rules changed, and
   carries out the answer: ``PENDING`` keeps the subscription pending (NOTIFYs without state), ``BLOCK``
   terminates it with reason ``rejected`` (RFC 6665 §4.1.3), ``POLITE_BLOCK`` makes it active but the
   package renders a neutral state for that watcher (RFC 5025 §3.2.1).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Protocol

__all__ = ["Authorization", "Body", "EventPackage", "NotifierHandle", "SubscriptionInfo"]


class Authorization(Enum):
    """What a watcher may see of a resource (RFC 5025 §3.2.1 sub-handling; RFC 6665 §4.2.1.2)."""

    ALLOW = "allow"  # active: the watcher gets the state
    PENDING = "confirm"  # pending until the resource's owner decides (RFC 3857: winfo shows it waiting)
    BLOCK = "block"  # terminated, reason=rejected: the watcher learns nothing
    POLITE_BLOCK = "polite-block"  # active, but with a neutral state: the watcher cannot tell it is blocked


@dataclass(frozen=True, slots=True)
class Body:
    """A NOTIFY body: its Content-Type (with parameters, e.g. a multipart boundary) and octets."""

    content_type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class SubscriptionInfo:
    """What a package knows of one subscription (RFC 6665 §4.1.2: identified by its dialog and its Event
    header field's type and ``id``)."""

    id: str  # stable across restarts: the dialog ID (Call-ID, local tag, remote tag) and the Event id
    event: str  # the event package token, e.g. "presence"
    resource: str  # canonical AOR of the Request-URI (RFC 3856 §6.1: the presentity)
    watcher: str  # the watcher's identity: the authenticated user if any, else the From URI's AOR
    accept: tuple[str, ...]  # the SUBSCRIBE's Accept media types, in order (RFC 6665 §4.1.2; empty: the default)
    supported: frozenset[str]  # option tags of the SUBSCRIBE's Supported header field (e.g. "eventlist")


class EventPackage(Protocol):
    """One event package (RFC 6665 §7.2) as the notifier uses it."""

    event: str  # the token the package registers in Event and Allow-Events

    def content_types(self) -> tuple[str, ...]:
        """The media types this package can render, the default first (RFC 6665 §7.2.4: 406 if the
        SUBSCRIBE's Accept allows none of them)."""
        ...

    def resource_exists(self, resource: str) -> bool:
        """Whether ``resource`` is one this package serves here (RFC 6665 §4.2.1.1: 404 otherwise)."""
        ...

    def authorize(self, subscription: SubscriptionInfo) -> Authorization:
        """Whether and how ``subscription.watcher`` may see ``subscription.resource``."""
        ...

    def body(self, subscription: SubscriptionInfo, authorization: Authorization, *, full: bool = True,
             changed: frozenset[str] = frozenset()) -> Body | None:
        """The NOTIFY body for this subscription now; ``None`` for a NOTIFY without a body (RFC 6665
        §4.2.1.2: pending, or nothing to say). ``changed`` is the hint the package passed to
        ``NotifierHandle.changed`` (e.g. the list members whose state moved, RFC 4662 §5.2)."""
        ...

    def started(self, subscription: SubscriptionInfo, authorization: Authorization) -> None:
        """A subscription began or its authorization changed (RFC 3857: the watcher list changed; RFC 4662:
        back-end subscriptions to a list's members start)."""
        ...

    def ended(self, subscription: SubscriptionInfo, reason: str) -> None:
        """A subscription ended with ``reason`` (RFC 6665 §4.1.3: timeout, rejected, deactivated, noresource,
        giveup, or the watcher's own unsubscribe, reported as "unsubscribed")."""
        ...


class NotifierHandle(Protocol):
    """What a package may ask of the notifier; every call is made on the scheduler's thread."""

    def changed(self, event: str, resource: str, hint: frozenset[str] = frozenset()) -> None:
        """The state of ``resource`` changed: every active subscription to it gets a NOTIFY (RFC 6665
        §4.2.2)."""
        ...

    def reauthorize(self, event: str, resource: str, watcher: str | None = None) -> None:
        """The rules for ``resource`` (and ``watcher``, or every watcher) changed: ask ``authorize`` again
        and move the subscriptions accordingly (pending → active, active → terminated; RFC 6665 §4.2.1.2)."""
        ...
