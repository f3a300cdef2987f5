"""The resource list server: presence lists served as ``presence`` subscriptions (RFC 4662).

``ListPackage`` wraps the presence package (RFC 3856) so that the notifier still sees one ``presence`` event
package. For a resource that is not a list URI every call goes to the inner package unchanged. For a list URI
(``sipactors.store.lists``; RFC 4662 §3: the list has its own URI):

* **Negotiation (§4.1).** The SUBSCRIBE must carry ``Supported: eventlist``: a list URI "fundamentally
  represents a list resource, and therefore the subscription cannot proceed without this extension", so the
  notifier answers 421 (Extension Required) with ``Require: eventlist`` (RFC 3261 §21.4.15). It learns that
  from :meth:`ListPackage.required_extensions`, which also names the option tag its 200 and every NOTIFY of
  the subscription carry in ``Require`` (§4.1). A notifier that does not ask gets ``BLOCK`` from
  :meth:`ListPackage.authorize` instead, so that no list subscription ever gets NOTIFYs without RLMI (§4.5).
* **Authorization (§4.4).** Only the list's owner may subscribe; anyone else is ``BLOCK``ed.
* **Bodies (§5).** multipart/related: an RLMI document (root) and one part per member whose virtual
  subscription is active, holding the member's state as the inner package renders it *for the owner as
  watcher*, so each buddy's own rules about the owner apply: a buddy who has not approved the owner is an
  instance in state ``pending`` with no part, one who blocked the owner is ``terminated`` with reason
  ``rejected``, one whose state is not known (no body yet) is a resource without instances (§4.5).
* **Versions (§5.2).** Per subscription: 0 in the first NOTIFY and one more in each later one. A NOTIFY
  asked for with ``full=True`` (the first one, and the first after each SUBSCRIBE) is ``fullState="true"``
  and names every member; with ``full=False`` and a ``changed`` hint it is ``fullState="false"`` and names
  only the hinted members.
* **Back-end subscriptions (§3, §4).** Members are local presentities, so the "back-end subscription" to a
  member is internal: a *virtual subscription* (watcher: the owner; resource: the member) that the inner
  package is told of through ``started``/``ended`` as if the owner had subscribed to the member (so the
  member's watcher list, RFC 3857, shows the owner waiting), and whose changes the package learns by
  wrapping the ``NotifierHandle`` the inner package is given (:class:`ListHandle`): when the inner package
  says ``changed("presence", member)``, the handle passes that on *and* says
  ``changed("presence", list_uri, hint={member})`` for every list holding the member.

Not supported: members on other servers, which would need real back-end SUBSCRIBEs (RFC 4662 §6, with the
identity questions of §7.1); adding one is refused with a message saying so (:func:`check_member`), and one
found in the store anyway is reported as a resource without instances (state not known, §4.5). Nor are
nested lists (a list URI as a member, §4); they are refused the same way.

Wiring (the inner package needs the handle before the ListPackage exists)::

    handle = ListHandle()
    presence = PresencePackage(..., notifier=handle)
    package = ListPackage(presence, store.lists, handle, is_local)
    notifier = Notifier([package, ...]);  handle.attach(notifier)
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from sipactors.roles.events import Authorization, Body, EventPackage, NotifierHandle, SubscriptionInfo
from sipactors.roles.rlmi import (
    RELATED_TYPE,
    RLMI_TYPE,
    Instance,
    Name,
    Part,
    Resource,
    Rlmi,
    render_related,
    render_rlmi,
)
from sipactors.store.lists import ListStore, Member, PresenceList
from sipactors.store.model import canonical_aor

__all__ = [
    "EVENTLIST", "ListConfig", "ListHandle", "ListPackage", "apply_lists", "check_member", "lists_from_config",
    "local_domains",
]

EVENTLIST = "eventlist"  # the option tag (RFC 4662 §8.1)


class ListHandle:
    """The ``NotifierHandle`` the inner package is given: it passes every call on to the notifier and lets the
    ``ListPackage`` turn a member's change into its lists' changes (the internal back-end subscription)."""

    def __init__(self, notifier: NotifierHandle | None = None) -> None:
        self._notifier = notifier
        self._package: ListPackage | None = None

    def attach(self, notifier: NotifierHandle) -> None:
        """Give the handle its notifier (made after the packages it serves)."""
        self._notifier = notifier

    def bind(self, package: ListPackage) -> None:
        self._package = package

    @property
    def notifier(self) -> NotifierHandle:
        if self._notifier is None:
            raise RuntimeError("ListHandle used before attach(notifier)")
        return self._notifier

    def changed(self, event: str, resource: str, hint: frozenset[str] = frozenset()) -> None:
        self.notifier.changed(event, resource, hint)
        if self._package is not None:
            self._package.member_changed(event, resource)

    def reauthorize(self, event: str, resource: str, watcher: str | None = None) -> None:
        self.notifier.reauthorize(event, resource, watcher)
        if self._package is not None:
            self._package.member_reauthorized(event, resource, watcher)


@dataclass
class _ListSubscription:
    """What the RLS keeps per list subscription: the next RLMI version and its virtual subscriptions."""

    info: SubscriptionInfo
    version: int = 0  # of the next NOTIFY (RFC 4662 §5.2)
    members: dict[str, Authorization] = field(default_factory=dict)  # member -> what the inner package said
    live: bool = True  # False: a body rendered outside started()..ended(), which tells the inner package nothing


def _token(*parts: str) -> str:
    """A short opaque identifier, the same for the same parts (the core draws nothing at random)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _host(uri: str) -> str:
    return uri.partition("@")[2] or uri.partition(":")[2] or "rls.invalid"


def local_domains(domains: Iterable[str]) -> Callable[[str], bool]:
    """``is_local`` for the server's domains: a URI whose host (port aside) is one of them."""
    wanted = frozenset(domain.lower() for domain in domains)

    def is_local(uri: str) -> bool:
        host = _host(canonical_aor(uri))
        if host.startswith("["):
            host = host.partition("]")[0] + "]"
        elif host.count(":") == 1:
            host = host.partition(":")[0]
        return host in wanted

    return is_local


def check_member(lists: ListStore, list_uri: str, member: str, is_local: Callable[[str], bool]) -> str:
    """The member's canonical URI if it may join ``list_uri``; ``ValueError`` saying why not."""
    uri = canonical_aor(member)
    if uri == canonical_aor(list_uri) or lists.get(uri) is not None:
        raise ValueError(f"{uri} is a presence list: nested lists (RFC 4662 §4) are not supported")
    if not is_local(uri):
        raise ValueError(
            f"{uri} is not a local presentity: a presence list holds users of this server's domains only "
            "(members elsewhere would need back-end SUBSCRIBEs, RFC 4662 §6, which are not supported)"
        )
    return uri


class ListPackage:
    """The ``presence`` package with resource lists (RFC 4662) in front of the single-presentity one."""

    def __init__(self, inner: EventPackage, lists: ListStore, handle: ListHandle,
                 is_local: Callable[[str], bool]) -> None:
        self.inner = inner
        self.event = inner.event
        self.lists = lists
        self.handle = handle
        self.is_local = is_local
        self._subscriptions: dict[str, _ListSubscription] = {}  # by SubscriptionInfo.id
        handle.bind(self)

    # --- EventPackage ---

    def content_types(self) -> tuple[str, ...]:
        """The inner package's types (default first), then those of list NOTIFYs (RFC 4662 §4.3)."""
        inner = self.inner.content_types()
        return inner + tuple(kind for kind in (RELATED_TYPE, RLMI_TYPE) if kind not in inner)

    def resource_exists(self, resource: str) -> bool:
        return self._list(resource) is not None or self.inner.resource_exists(resource)

    def required_extensions(self, subscription: SubscriptionInfo) -> frozenset[str]:
        """Option tags the SUBSCRIBE must support (else 421 with ``Require`` naming them) and that the 200 and
        every NOTIFY carry in ``Require``: ``eventlist`` for a list URI (RFC 4662 §4.1), none otherwise."""
        return frozenset({EVENTLIST}) if self._list(subscription.resource) is not None else frozenset()

    def authorize(self, subscription: SubscriptionInfo) -> Authorization:
        found = self._list(subscription.resource)
        if found is None:
            return self.inner.authorize(subscription)
        if EVENTLIST not in subscription.supported:
            return Authorization.BLOCK  # §4.5: never NOTIFYs without RLMI for a list (the notifier says 421 first)
        return Authorization.ALLOW if self._same(subscription.watcher, found.owner) else Authorization.BLOCK

    def started(self, subscription: SubscriptionInfo, authorization: Authorization) -> None:
        found = self._list(subscription.resource)
        if found is None:
            self.inner.started(subscription, authorization)
            return
        if authorization is not Authorization.ALLOW:
            self._end(subscription.id, "rejected")
            return
        state = self._subscriptions.setdefault(subscription.id, _ListSubscription(subscription))
        state.info = subscription
        self._sync(state, found)
        for member in found.members:
            if self.is_local(member.uri):  # a back-end (virtual) subscription per local member (RFC 4662 §4)
                self._refresh(state, member.uri)

    def ended(self, subscription: SubscriptionInfo, reason: str) -> None:
        if subscription.id in self._subscriptions:
            self._end(subscription.id, reason)
        elif self._list(subscription.resource) is None:
            self.inner.ended(subscription, reason)

    def body(self, subscription: SubscriptionInfo, authorization: Authorization, *, full: bool = True,
             changed: frozenset[str] = frozenset()) -> Body | None:
        found = self._list(subscription.resource)
        if found is None:
            return self.inner.body(subscription, authorization, full=full, changed=changed)
        if authorization is not Authorization.ALLOW:
            return None  # a blocked watcher learns nothing of the list
        state = self._subscriptions.get(subscription.id)
        if state is None:
            # Outside started()..ended() (the notifier calls started before the first NOTIFY and may render a
            # final one after ended): render from the inner package's answers, starting nothing that would leak.
            state = _ListSubscription(subscription, live=False)
        self._sync(state, found)
        full = full or not changed
        members = [m for m in found.members if full or m.uri in changed]
        version = state.version
        state.version += 1
        host = _host(found.uri)
        resources: list[Resource] = []
        parts: list[Part] = []
        for member in members:
            resource, part = self._resource(state, member, version, host)
            resources.append(resource)
            if part is not None:
                parts.append(part)
        document = Rlmi(found.uri, version, full, (Name(found.name),) if found.name else (), tuple(resources))
        root = Part(f"{_token(subscription.id, str(version))}@{host}", f'{RLMI_TYPE};charset="UTF-8"',
                    render_rlmi(document))
        return self._related([root, *parts], subscription.id, version)

    # --- the back-end side: what the wrapped handle reports ---

    def member_changed(self, event: str, resource: str) -> None:
        """The inner package said ``resource`` changed: each list holding it changed in that member only."""
        if event != self.event or not self._subscriptions:
            return  # no list has a subscriber (every live one is here, restored ones too): nobody to tell
        for list_uri in self.lists.containing(resource):
            self.handle.notifier.changed(self.event, list_uri, frozenset({resource}))

    def member_reauthorized(self, event: str, resource: str, watcher: str | None) -> None:
        """A member's rules changed (e.g. it approved the owner, RFC 3857): move the virtual subscriptions
        whose authorization the inner package now answers differently, and tell the lists' subscribers."""
        if event != self.event:
            return
        for state in list(self._subscriptions.values()):
            if resource in state.members and (watcher is None or self._same(watcher, state.info.watcher)):
                before = state.members[resource]
                if self._refresh(state, resource) is not before:
                    self.handle.notifier.changed(self.event, state.info.resource, frozenset({resource}))

    def list_changed(self, list_uri: str) -> None:
        """A list's owner or members changed here: ask the notifier to re-authorize its subscribers and send
        each a full-state NOTIFY (a removed member can only be told by full state, RFC 4662 §4.6)."""
        uri = canonical_aor(list_uri)
        self.handle.notifier.reauthorize(self.event, uri)
        self.handle.notifier.changed(self.event, uri)

    # --- helpers ---

    def _list(self, resource: str) -> PresenceList | None:
        try:
            return self.lists.get(resource)
        except ValueError:  # not a URI: certainly not a list
            return None

    @staticmethod
    def _same(one: str, other: str) -> bool:
        try:
            return canonical_aor(one) == canonical_aor(other)
        except ValueError:
            return one == other

    def _virtual(self, state: _ListSubscription, member: str) -> SubscriptionInfo:
        """The owner's virtual subscription to ``member`` (RFC 4662 §4): the list subscription's watcher and
        Accept (without the list's own types, so the inner package picks the member's format)."""
        accept = tuple(kind for kind in state.info.accept if kind.lower() not in (RELATED_TYPE, RLMI_TYPE))
        return replace(state.info, id=f"{state.info.id}/rls/{member}", resource=member, accept=accept,
                       supported=frozenset())

    def _refresh(self, state: _ListSubscription, member: str) -> Authorization:
        """Ask the inner package how the owner may see ``member``; start (or move) the virtual subscription
        when the answer is new."""
        virtual = self._virtual(state, member)
        authorization = self.inner.authorize(virtual)
        if state.members.get(member) is not authorization:
            state.members[member] = authorization
            if state.live:
                self.inner.started(virtual, authorization)
        return authorization

    def _sync(self, state: _ListSubscription, found: PresenceList) -> None:
        """End the virtual subscriptions of members that left the list (they were removed: ``deactivated``)."""
        current = {member.uri for member in found.members}
        for member in [m for m in state.members if m not in current]:
            del state.members[member]
            if state.live:
                self.inner.ended(self._virtual(state, member), "deactivated")

    def _end(self, subscription_id: str, reason: str) -> None:
        state = self._subscriptions.pop(subscription_id, None)
        if state is not None:
            for member in state.members:
                self.inner.ended(self._virtual(state, member), reason)

    def _resource(self, state: _ListSubscription, member: Member, version: int,
                  host: str) -> tuple[Resource, Part | None]:
        """A member's ``<resource>`` and its part, if its instance is active (RFC 4662 §5.3, §5.5)."""
        names = (Name(member.name),) if member.name else ()
        if not self.is_local(member.uri):
            return Resource(member.uri, names), None  # no back-end subscription: state not known (§4.5)
        authorization = self._refresh(state, member.uri)
        instance_id = _token(state.info.id, member.uri)
        if authorization is Authorization.PENDING:
            return Resource(member.uri, names, (Instance(instance_id, "pending"),)), None
        if authorization is Authorization.BLOCK:
            return Resource(member.uri, names, (Instance(instance_id, "terminated", reason="rejected"),)), None
        body = self.inner.body(self._virtual(state, member.uri), authorization, full=True)
        if body is None:
            return Resource(member.uri, names), None
        cid = f"{_token(state.info.id, str(version), member.uri)}@{host}"
        return (Resource(member.uri, names, (Instance(instance_id, "active", cid=cid),)),
                Part(cid, body.content_type, body.data))

    @staticmethod
    def _related(parts: Sequence[Part], subscription_id: str, version: int) -> Body:
        attempt = 0
        while True:  # a boundary must not occur in any part (RFC 2046 §5.1.1): derive another until one fits
            boundary = f"rls-{_token(subscription_id, str(version), str(attempt))}"
            if not any(boundary.encode() in part.data for part in parts):
                content_type, data = render_related(parts, boundary)
                return Body(content_type, data)
            attempt += 1


# --- configuration: [[presence.list]] ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ListConfig:
    """One ``[[presence.list]]`` table: ``uri``, ``owner``, optional ``name`` and ``members``, each a URI or a
    table ``{uri = "...", name = "..."}``."""

    uri: str
    owner: str
    name: str = ""
    members: tuple[Member, ...] = ()


def lists_from_config(data: Mapping[str, Any]) -> list[ListConfig]:
    """The ``[[presence.list]]`` tables of a configuration file; ``ValueError`` naming the bad one."""
    tables = data.get("presence", {}).get("list", [])
    if not isinstance(tables, list):
        raise ValueError("[presence] list must be an array of tables: [[presence.list]]")
    found: list[ListConfig] = []
    for number, table in enumerate(tables, 1):
        where = f"[[presence.list]] #{number}"
        if not isinstance(table, dict) or not isinstance(table.get("uri"), str) or not isinstance(table.get("owner"), str):
            raise ValueError(f"{where}: uri and owner (strings) are required")
        unknown = set(table) - {"uri", "owner", "name", "members"}
        if unknown:
            raise ValueError(f"{where}: unknown key {', '.join(sorted(unknown))}")
        members = []
        for item in table.get("members", []):
            if isinstance(item, str):
                members.append(Member(item))
            elif isinstance(item, dict) and isinstance(item.get("uri"), str):
                members.append(Member(item["uri"], str(item.get("name", ""))))
            else:
                raise ValueError(f"{where}: a member is a URI or {{uri = ..., name = ...}}, not {item!r}")
        try:
            found.append(ListConfig(canonical_aor(table["uri"]), canonical_aor(table["owner"]),
                                    str(table.get("name", "")), tuple(members)))
        except ValueError as error:
            raise ValueError(f"{where}: {error}") from None
    return found


def apply_lists(lists: ListStore, configured: Sequence[ListConfig], is_local: Callable[[str], bool]) -> None:
    """Make the store hold each configured list exactly as written (its members replaced); lists made with
    ``sipactors lists`` and not in the file stay. ``ValueError`` (nothing changed) for a member refused by
    :func:`check_member`."""
    checked = []
    for entry in configured:
        uris = {other.uri for other in configured}
        for member in entry.members:
            if canonical_aor(member.uri) in uris:
                raise ValueError(f"{entry.uri}: {member.uri} is a presence list: nested lists (RFC 4662 §4) are "
                                 "not supported")
            check_member(lists, entry.uri, member.uri, is_local)
        checked.append(entry)
    for entry in checked:
        lists.put(entry.uri, entry.owner, entry.name)
        lists.set_members(entry.uri, entry.members)
