"""Watcher information: who watches a presentity, and who waits for its approval (RFC 3857, RFC 3858).

Three parts:

* **The document** (RFC 3858 §3, §6): ``application/watcherinfo+xml``, a ``watcherinfo`` root (``version``,
  ``state`` full|partial) holding ``watcher-list`` elements (``resource``, ``package``), each holding
  ``watcher`` elements (``id``, ``status``, ``event``; optional ``display-name``, ``expiration``,
  ``duration-subscribed``, ``xml:lang``) whose text is the watcher's URI. ``generate`` and ``parse``;
  ``parse`` refuses DOCTYPE and entity declarations before any parsing (no entity expansion) and ignores
  elements and attributes of other namespaces (RFC 3858 §3: "MUST be ignored").
* **The watcher list** (``WatcherList``): the state of every presence subscription, per presentity, in the
  vocabulary of RFC 3857 §4.7.1's subscription state machine (pending, active, waiting, terminated and the
  events that led there). The presence package's ``started``/``ended`` calls reach it (``WatchedPackage``
  wraps the package to forward them); whenever the list changes it tells the notifier
  ``changed("presence.winfo", presentity, hint=ids)``.
* **The package** (``WinfoPackage``): event ``presence.winfo`` (RFC 3857 §4.1). Only the presentity itself
  may subscribe to its watcher information (RFC 3857 §4.6 recommends it; its other recommendation, that an
  authorized watcher may see its own subscription, is not offered: every other watcher is BLOCKed).
  The first NOTIFY of a subscription is full state (RFC 3857 §4.3's default policy); later ones are partial
  (only the watchers that changed, RFC 3857 §4.7.2) when the notifier passes ``full=False`` with the hint,
  full otherwise. ``version`` starts at 0 and grows by one per document, per subscription (RFC 3858 §3).

Not done: fetches (Expires: 0) are not hidden as transient (RFC 3857 §4.7.2 SHOULD NOT), because a
``SubscriptionInfo`` does not carry the expiry; the waiting entries live in memory only (a restart forgets
who waited); ``display-name`` and ``expiration`` are never filled in (the notifier does not pass them), but
they are parsed and generated.
"""

from __future__ import annotations

import hashlib
import re
import xml.etree.ElementTree as ET
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from sipactors.roles.events import Authorization, Body, EventPackage, NotifierHandle, SubscriptionInfo

__all__ = [
    "CONTENT_TYPE", "EVENTS", "NAMESPACE", "STATUSES", "ResourceWatchers", "WatchedPackage", "Watcher", "WatcherInfo",
    "WatcherList", "WinfoError", "WinfoPackage", "generate", "parse", "watcher_id",
]

NAMESPACE = "urn:ietf:params:xml:ns:watcherinfo"  # RFC 3858 §3
CONTENT_TYPE = "application/watcherinfo+xml"  # RFC 3858 §8.1
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_Q = f"{{{NAMESPACE}}}"

#: RFC 3858 §6 enumerations (the meanings are RFC 3857 §4.7.1's).
STATUSES = frozenset({"pending", "active", "waiting", "terminated"})
EVENTS = frozenset({"subscribe", "approved", "deactivated", "probation", "rejected", "timeout", "giveup", "noresource"})

_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")  # RFC 3261 §25.1 token: the grammar of a watcher id


class WinfoError(ValueError):
    """A watcherinfo document that is not well formed or not valid; the message names the problem."""


@dataclass(frozen=True, slots=True)
class Watcher:
    """A ``watcher`` element (RFC 3858 §3)."""

    uri: str
    id: str
    status: str
    event: str
    display_name: str | None = None
    expiration: int | None = None  # seconds until the subscription expires
    duration_subscribed: int | None = None  # seconds since the SUBSCRIBE that created it
    lang: str | None = None  # xml:lang of the display name

    def __post_init__(self) -> None:
        if not _TOKEN.fullmatch(self.id):
            raise WinfoError(f"watcher id {self.id!r} is not a token (RFC 3858 §3)")
        if self.status not in STATUSES:
            raise WinfoError(f"watcher status {self.status!r} is not one of {', '.join(sorted(STATUSES))}")
        if self.event not in EVENTS:
            raise WinfoError(f"watcher event {self.event!r} is not one of {', '.join(sorted(EVENTS))}")
        if not self.uri:
            raise WinfoError("a watcher element needs a URI")
        for name in ("expiration", "duration_subscribed"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 2**64:  # xs:unsignedLong
                raise WinfoError(f"watcher {name.replace('_', '-')} {value} is not an unsigned long")


@dataclass(frozen=True, slots=True)
class ResourceWatchers:
    """A ``watcher-list`` element: the watchers of one resource in one package (RFC 3858 §3)."""

    resource: str
    package: str
    watchers: tuple[Watcher, ...] = ()

    def __post_init__(self) -> None:
        if not self.resource or not self.package:
            raise WinfoError("a watcher-list needs a resource and a package")


@dataclass(frozen=True, slots=True)
class WatcherInfo:
    """A ``watcherinfo`` document (RFC 3858 §3)."""

    version: int
    state: str  # "full" or "partial"
    lists: tuple[ResourceWatchers, ...] = field(default=())

    def __post_init__(self) -> None:
        if not 0 <= self.version < 2**32:  # "MUST be representable using a 32 bit integer"
            raise WinfoError(f"version {self.version} does not fit 32 bits")
        if self.state not in ("full", "partial"):
            raise WinfoError(f"state {self.state!r} is neither full nor partial")


#: What XML 1.0 §2.2 does not allow in a document (ElementTree would write it, and no parser would read it).
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def _checked(text: str) -> str:
    if _NOT_XML_CHAR.search(text):
        raise WinfoError(f"{text!r} holds a character XML 1.0 cannot carry")
    return text


def generate(document: WatcherInfo) -> bytes:
    """The document as UTF-8 XML (RFC 3858 §3: XML 1.0, UTF-8, the watcherinfo namespace)."""
    # The namespace as a plain xmlns attribute over unqualified names: ElementTree would otherwise invent an
    # ns0: prefix, and its default_namespace option refuses the (unqualified) attributes.
    root = ET.Element("watcherinfo", {"xmlns": NAMESPACE, "version": str(document.version), "state": document.state})
    for resource in document.lists:
        element = ET.SubElement(root, "watcher-list", {"resource": _checked(resource.resource),
                                                       "package": _checked(resource.package)})
        for watcher in resource.watchers:
            attributes = {"id": watcher.id, "status": watcher.status, "event": watcher.event}
            if watcher.display_name is not None:
                attributes["display-name"] = _checked(watcher.display_name)
            if watcher.expiration is not None:
                attributes["expiration"] = str(watcher.expiration)
            if watcher.duration_subscribed is not None:
                attributes["duration-subscribed"] = str(watcher.duration_subscribed)
            if watcher.lang is not None:
                attributes[_XML_LANG] = watcher.lang
            ET.SubElement(element, "watcher", attributes).text = _checked(watcher.uri)
    return ET.tostring(root, encoding="UTF-8", xml_declaration=True)


_DECLARATION = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)


def _required(element: ET.Element, name: str) -> str:
    value = element.get(name)
    if value is None:
        raise WinfoError(f"{element.tag.removeprefix(_Q)} without its {name} attribute (RFC 3858 §3)")
    return value


def _unsigned(element: ET.Element, name: str) -> int | None:
    value = element.get(name)
    if value is None:
        return None
    if not value.strip().isdigit():
        raise WinfoError(f"watcher {name} {value!r} is not an unsigned integer")
    return int(value)


def parse(data: bytes) -> WatcherInfo:
    """The document in ``data``; ``WinfoError`` naming what is wrong."""
    if _DECLARATION.search(data):
        raise WinfoError("DOCTYPE and ENTITY declarations are refused (no entity expansion)")
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise WinfoError(f"not well-formed XML: {error}") from None
    if root.tag != f"{_Q}watcherinfo":
        raise WinfoError(f"root element is {root.tag}, not watcherinfo in {NAMESPACE}")
    version = _required(root, "version")
    if not version.strip().isdigit():
        raise WinfoError(f"version {version!r} is not a non-negative integer")
    lists = []
    for element in root.iter(f"{_Q}watcher-list"):  # elements of other namespaces: ignored (§3)
        watchers = tuple(
            Watcher(
                uri=(child.text or "").strip(), id=_required(child, "id"), status=_required(child, "status"),
                event=_required(child, "event"), display_name=child.get("display-name"),
                expiration=_unsigned(child, "expiration"),
                duration_subscribed=_unsigned(child, "duration-subscribed"), lang=child.get(_XML_LANG),
            )
            for child in element.findall(f"{_Q}watcher")
        )
        lists.append(ResourceWatchers(_required(element, "resource"), _required(element, "package"), watchers))
    return WatcherInfo(int(version), _required(root, "state"), tuple(lists))


def watcher_id(subscription_id: str) -> str:
    """The ``id`` of a subscription's watcher element: a token (RFC 3858 §3) that the subscription's own ID,
    with its Call-ID's ``@`` and the like, is not; stable, so it names the same watcher in every document."""
    return hashlib.blake2b(subscription_id.encode(), digest_size=8).hexdigest()


#: RFC 6665 §4.1.3 reasons as RFC 3857 §4.7.1 events. The watcher's own unsubscribe is a refresh with
#: Expires: 0 (RFC 6665 §4.1.2.3), so its subscription ends as by expiry: ``timeout``.
_REASON_EVENTS = {"unsubscribed": "timeout"}

#: Waiting entries kept per presentity; RFC 3857 §4.7.1 warns that unauthorized state invites a denial of
#: service. Beyond this the oldest waiting entry is given up.
MAX_WAITING = 100
#: Terminated entries remembered per presentity, so that a partial document can report them (RFC 3858 §4).
MAX_TERMINATED = 64


@dataclass(slots=True)
class _Entry:
    watcher: Watcher
    started: float | None  # when the SUBSCRIBE arrived, on the injected clock


class WatcherList:
    """The watchers of every presentity's presence, as RFC 3857 §4.7.1's state machine sees them.

    ``clock`` (seconds) is only read for ``duration-subscribed``; without it that attribute is left out.
    """

    def __init__(self, notifier: NotifierHandle | None = None, clock: Callable[[], float] | None = None,
                 package: str = "presence") -> None:
        self.notifier = notifier
        self.clock = clock
        self.package = package
        self.event = f"{package}.winfo"  # RFC 3857 §4.1
        self._current: dict[str, dict[str, _Entry]] = {}  # presentity -> id -> pending/active/waiting
        self._ended: dict[str, OrderedDict[str, Watcher]] = {}  # presentity -> id -> terminated

    def attach(self, notifier: NotifierHandle) -> None:
        """The notifier to tell of changes, when it is made after this list."""
        self.notifier = notifier

    def _changed(self, presentity: str, ids: Iterable[str]) -> None:
        hint = frozenset(ids)
        if hint and self.notifier is not None:
            self.notifier.changed(self.event, presentity, hint)

    def _terminate(self, presentity: str, entry: _Entry, event: str) -> str:
        watcher = replace(entry.watcher, status="terminated", event=event)
        ended = self._ended.setdefault(presentity, OrderedDict())
        ended[watcher.id] = watcher
        ended.move_to_end(watcher.id)
        while len(ended) > MAX_TERMINATED:
            ended.popitem(last=False)
        return watcher.id

    def watcher_started(self, info: SubscriptionInfo, auth: Authorization) -> None:
        """A presence subscription began, or its authorization changed (RFC 3857 §4.7.1 transitions from
        init, and pending → active on ``approved``; RFC 5025 §3.2.1 for the moves the rules cause)."""
        presentity, wid = info.resource, watcher_id(info.id)
        current = self._current.setdefault(presentity, {})
        changed: list[str] = []
        previous = current.get(wid)
        if previous is None:
            # A new subscription from a watcher that was waiting makes the waiting entry redundant (§4.7.1).
            for other_id, other in list(current.items()):
                if other.watcher.status == "waiting" and other.watcher.uri == info.watcher:
                    changed.append(self._terminate(presentity, current.pop(other_id), "giveup"))
        if auth is Authorization.BLOCK:  # "subscribe, policy=reject", or active → terminated on "rejected"
            entry = previous or _Entry(Watcher(info.watcher, wid, "pending", "subscribe"), None)
            current.pop(wid, None)
            changed.append(self._terminate(presentity, entry, "rejected"))
        else:
            # POLITE_BLOCK is active too: the watcher gets a neutral document (RFC 5025 §3.2.1).
            status = "pending" if auth is Authorization.PENDING else "active"
            if previous is None:
                event = "subscribe"
            elif previous.watcher.status == status:
                event = previous.watcher.event
            else:
                event = "approved" if status == "active" else "subscribe"  # RFC 5025: no event for → pending
            started = previous.started if previous is not None else (self.clock() if self.clock else None)
            entry = _Entry(Watcher(info.watcher, wid, status, event), started)
            if previous is None or previous.watcher != entry.watcher:
                current[wid] = entry
                changed.append(wid)
        if not current:
            del self._current[presentity]
        self._changed(presentity, changed)

    def watcher_ended(self, info: SubscriptionInfo, reason: str) -> None:
        """A presence subscription ended (RFC 6665 §4.1.3 ``reason``). A pending one that timed out moves to
        *waiting*, so the presentity still learns that someone asked (RFC 3857 §4.7.1); others terminate."""
        presentity, wid = info.resource, watcher_id(info.id)
        current = self._current.get(presentity, {})
        entry = current.pop(wid, None)
        if entry is None:
            return
        event = _REASON_EVENTS.get(reason, reason if reason in EVENTS else "deactivated")
        changed = []
        if entry.watcher.status == "pending" and event == "timeout":
            current[wid] = _Entry(replace(entry.watcher, status="waiting", event="timeout"), entry.started)
            changed.append(wid)
            waiting = [i for i, e in current.items() if e.watcher.status == "waiting"]
            for oldest in waiting[: max(0, len(waiting) - MAX_WAITING)]:  # dicts keep insertion order
                changed.append(self._terminate(presentity, current.pop(oldest), "giveup"))
        else:
            changed.append(self._terminate(presentity, entry, event))
        if not current:
            self._current.pop(presentity, None)
        self._changed(presentity, changed)

    def reconsider(self, presentity: str, decide: Callable[[str, str], Authorization]) -> None:
        """The presentity's rules changed: a waiting watcher now decided moves to terminated, ``approved`` or
        ``rejected`` (RFC 5025 §3.2.1; RFC 3857 §4.7.1: a waiting subscription is not revived)."""
        current = self._current.get(presentity, {})
        changed = []
        for wid, entry in list(current.items()):
            if entry.watcher.status != "waiting":
                continue
            decision = decide(presentity, entry.watcher.uri)
            if decision is not Authorization.PENDING:
                event = "rejected" if decision is Authorization.BLOCK else "approved"
                changed.append(self._terminate(presentity, current.pop(wid), event))
        if not current:
            self._current.pop(presentity, None)
        self._changed(presentity, changed)

    def _timed(self, entry: _Entry) -> Watcher:
        if entry.started is None or self.clock is None:
            return entry.watcher
        return replace(entry.watcher, duration_subscribed=max(0, int(self.clock() - entry.started)))

    def watchers(self, presentity: str) -> list[Watcher]:
        """The pending, active and waiting watchers of ``presentity``, in the order they came."""
        return [self._timed(entry) for entry in self._current.get(presentity, {}).values()]

    def find(self, presentity: str, ids: Iterable[str]) -> list[Watcher]:
        """The watchers named by ``ids``, terminated ones included while they are remembered."""
        current = self._current.get(presentity, {})
        ended: dict[str, Watcher] = self._ended.get(presentity, {})
        found: list[Watcher] = []
        for wid in sorted(ids):
            if wid in current:
                found.append(self._timed(current[wid]))
            elif wid in ended:
                found.append(ended[wid])
        return found


class WinfoPackage:
    """The ``presence.winfo`` event package (RFC 3857) over a ``WatcherList``."""

    def __init__(self, watchers: WatcherList, resource_exists: Callable[[str], bool]) -> None:
        self.watchers = watchers
        self.event = watchers.event
        self._resource_exists = resource_exists  # the presence package's own test (RFC 6665 §4.2.1.1: 404)
        self._versions: dict[str, int] = {}  # winfo subscription id -> the next document's version

    def content_types(self) -> tuple[str, ...]:
        return (CONTENT_TYPE,)  # RFC 3857 §4.5: the one every watcherinfo subscriber supports

    def resource_exists(self, resource: str) -> bool:
        return self._resource_exists(resource)

    def authorize(self, subscription: SubscriptionInfo) -> Authorization:
        """Only the presentity itself (RFC 3857 §4.6)."""
        return Authorization.ALLOW if subscription.watcher == subscription.resource else Authorization.BLOCK

    def body(self, subscription: SubscriptionInfo, authorization: Authorization, *, full: bool = True,
             changed: frozenset[str] = frozenset()) -> Body | None:
        if authorization is not Authorization.ALLOW:
            return None  # never rendered: the owner is always allowed, and no one else is
        version = self._versions.get(subscription.id, 0)
        self._versions[subscription.id] = version + 1
        presentity = subscription.resource
        partial = not full and bool(changed) and version > 0  # the first document is always full (§4.3)
        watchers = self.watchers.find(presentity, changed) if partial else self.watchers.watchers(presentity)
        document = WatcherInfo(version, "partial" if partial else "full",
                               (ResourceWatchers(presentity, self.watchers.package, tuple(watchers)),))
        return Body(CONTENT_TYPE, generate(document))

    def started(self, subscription: SubscriptionInfo, authorization: Authorization) -> None:
        """Nothing to set up: the watcher list exists whether or not anyone watches it, and versions start
        with the first document (RFC 3858 §3: scoped within the subscription)."""

    def ended(self, subscription: SubscriptionInfo, reason: str) -> None:
        self._versions.pop(subscription.id, None)


class WatchedPackage:
    """``package`` (the presence package) with its subscriptions reported to ``watchers``: register this with
    the notifier in the package's place, and every ``started``/``ended`` reaches both, the package first."""

    def __init__(self, package: EventPackage, watchers: WatcherList) -> None:
        self.package = package
        self.watchers = watchers
        self.event = package.event

    def content_types(self) -> tuple[str, ...]:
        return self.package.content_types()

    def resource_exists(self, resource: str) -> bool:
        return self.package.resource_exists(resource)

    def authorize(self, subscription: SubscriptionInfo) -> Authorization:
        return self.package.authorize(subscription)

    def body(self, subscription: SubscriptionInfo, authorization: Authorization, *, full: bool = True,
             changed: frozenset[str] = frozenset()) -> Body | None:
        return self.package.body(subscription, authorization, full=full, changed=changed)

    def started(self, subscription: SubscriptionInfo, authorization: Authorization) -> None:
        self.package.started(subscription, authorization)
        self.watchers.watcher_started(subscription, authorization)

    def ended(self, subscription: SubscriptionInfo, reason: str) -> None:
        self.package.ended(subscription, reason)
        self.watchers.watcher_ended(subscription, reason)
