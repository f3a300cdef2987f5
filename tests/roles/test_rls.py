"""The resource list server (RFC 4662) driven as the notifier drives it: ``ListPackage`` in front of a
presence package, with a recording ``NotifierHandle``.

The inner package here is a small stand-in for the presence package (a basic status per presentity and a rule
per (presentity, watcher), pending by default, as RFC 3856 §6.6 leaves it): the RLS only relies on the
``EventPackage`` contract, so these tests say what it does with whatever a presence package answers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from sipactors.roles.events import Authorization, Body, NotifierHandle, SubscriptionInfo
from sipactors.roles.rlmi import Rlmi, parse_related, parse_rlmi
from sipactors.roles.rls import (
    ListConfig,
    ListHandle,
    ListPackage,
    apply_lists,
    check_member,
    lists_from_config,
    local_domains,
)
from sipactors.store.lists import Member, MemoryListStore

LIST = "sip:alice-buddies@example.com"
ALICE, BOB, CAROL, DAVE = (f"sip:{n}@example.com" for n in ("alice", "bob", "carol", "dave"))
ACCEPT = ("application/pidf+xml", "application/rlmi+xml", "multipart/related")


@dataclass
class Notifier:
    """Records what a package asks of the notifier."""

    changes: list[tuple[str, str, frozenset[str]]] = field(default_factory=list)
    reauthorizations: list[tuple[str, str, str | None]] = field(default_factory=list)

    def changed(self, event: str, resource: str, hint: frozenset[str] = frozenset()) -> None:
        self.changes.append((event, resource, hint))

    def reauthorize(self, event: str, resource: str, watcher: str | None = None) -> None:
        self.reauthorizations.append((event, resource, watcher))


class Presence:
    """A stand-in presence package (RFC 3856): a basic status per presentity, rules per (presentity, watcher)."""

    event = "presence"

    def __init__(self, handle: NotifierHandle) -> None:
        self.handle = handle
        self.status: dict[str, str] = {}
        self.rules: dict[tuple[str, str], Authorization] = {}
        self.watchers: dict[str, tuple[SubscriptionInfo, Authorization]] = {}  # started, not ended
        self.ended_with: dict[str, str] = {}

    def content_types(self) -> tuple[str, ...]:
        return ("application/pidf+xml",)

    def resource_exists(self, resource: str) -> bool:
        return resource in (ALICE, BOB, CAROL, DAVE)

    def authorize(self, subscription: SubscriptionInfo) -> Authorization:
        return self.rules.get((subscription.resource, subscription.watcher), Authorization.PENDING)

    def body(self, subscription: SubscriptionInfo, authorization: Authorization, *, full: bool = True,
             changed: frozenset[str] = frozenset()) -> Body | None:
        if subscription.resource not in self.status:
            return None
        basic = "closed" if authorization is Authorization.POLITE_BLOCK else self.status[subscription.resource]
        return Body("application/pidf+xml", (f'<presence xmlns="urn:ietf:params:xml:ns:pidf" '
                                             f'entity="{subscription.resource}"><tuple id="t"><status><basic>'
                                             f'{basic}</basic></status></tuple></presence>').encode())

    def started(self, subscription: SubscriptionInfo, authorization: Authorization) -> None:
        self.watchers[subscription.id] = (subscription, authorization)

    def ended(self, subscription: SubscriptionInfo, reason: str) -> None:
        self.watchers.pop(subscription.id, None)
        self.ended_with[subscription.id] = reason

    # what a PUBLISH or an authorization decision does in the real package
    def publish(self, presentity: str, basic: str) -> None:
        self.status[presentity] = basic
        self.handle.changed("presence", presentity)

    def decide(self, presentity: str, watcher: str, authorization: Authorization) -> None:
        self.rules[(presentity, watcher)] = authorization
        self.handle.reauthorize("presence", presentity, watcher)


@dataclass
class Rls:
    package: ListPackage
    presence: Presence
    notifier: Notifier
    lists: MemoryListStore


@pytest.fixture
def rls() -> Rls:
    notifier = Notifier()
    handle = ListHandle()
    presence = Presence(handle)
    lists = MemoryListStore()
    package = ListPackage(presence, lists, handle, local_domains(["example.com"]))
    handle.attach(notifier)
    lists.put(LIST, ALICE, "Friends")
    for member, name in ((BOB, "Bob"), (CAROL, "Carol"), (DAVE, "")):
        lists.add_member(LIST, member, name)
    presence.status.update({BOB: "open", CAROL: "closed", DAVE: "open"})
    presence.rules[(BOB, ALICE)] = Authorization.ALLOW
    presence.rules[(DAVE, ALICE)] = Authorization.ALLOW  # carol has not decided yet: pending
    return Rls(package, presence, notifier, lists)


def subscription(resource: str = LIST, watcher: str = ALICE, supported: frozenset[str] = frozenset({"eventlist"}),
                 id: str = "call-1;from;to;presence") -> SubscriptionInfo:
    return SubscriptionInfo(id, "presence", resource, watcher, ACCEPT, supported)


def notify(rls: Rls, sub: SubscriptionInfo, *, full: bool = True, changed: frozenset[str] = frozenset()
           ) -> tuple[Rlmi, dict[str, bytes]]:
    """The NOTIFY body as the notifier would ask for it: the RLMI document and the other parts by Content-ID."""
    body = rls.package.body(sub, Authorization.ALLOW, full=full, changed=changed)
    assert body is not None
    root, *parts = parse_related(body.content_type, body.data)
    assert body.content_type.startswith('multipart/related;type="application/rlmi+xml";start="<')
    assert root.content_type.startswith("application/rlmi+xml")
    return parse_rlmi(root.data), {part.content_id: part.data for part in parts}


def start(rls: Rls, sub: SubscriptionInfo) -> None:
    authorization = rls.package.authorize(sub)
    assert authorization is Authorization.ALLOW
    rls.package.started(sub, authorization)


def states(document: Rlmi) -> dict[str, tuple[str, ...]]:
    return {r.uri: tuple(i.state for i in r.instances) for r in document.resources}


def test_first_notify_is_full_state_version_0_with_every_member_rfc4662_5_2(rls: Rls) -> None:
    sub = subscription()
    start(rls, sub)
    document, parts = notify(rls, sub)
    assert (document.uri, document.version, document.full_state) == (LIST, 0, True)
    assert [r.uri for r in document.resources] == [BOB, CAROL, DAVE]  # every member, in the list's order
    assert [n.text for n in document.names] == ["Friends"]
    assert [[n.text for n in r.names] for r in document.resources] == [["Bob"], ["Carol"], []]
    # one part per active instance, named by its cid (§5.5); carol pending: no part
    assert states(document) == {BOB: ("active",), CAROL: ("pending",), DAVE: ("active",)}
    cids = {r.uri: r.instances[0].cid for r in document.resources}
    assert set(parts) == {cids[BOB], cids[DAVE]}
    assert b"<basic>open</basic>" in parts[cids[BOB]] and f'entity="{BOB}"'.encode() in parts[cids[BOB]]


def test_a_pending_member_is_an_instance_in_state_pending_until_it_approves_the_owner(rls: Rls) -> None:
    sub = subscription()
    start(rls, sub)
    # the back-end (virtual) subscription to carol is there, pending, with alice as watcher (RFC 3857 sees it)
    virtual = {info.resource: (info.watcher, auth) for info, auth in rls.presence.watchers.values()}
    assert virtual == {BOB: (ALICE, Authorization.ALLOW), CAROL: (ALICE, Authorization.PENDING),
                       DAVE: (ALICE, Authorization.ALLOW)}
    notify(rls, sub)
    rls.notifier.changes.clear()
    rls.presence.decide(CAROL, ALICE, Authorization.ALLOW)
    assert ("presence", LIST, frozenset({CAROL})) in rls.notifier.changes
    document, parts = notify(rls, sub, full=False, changed=frozenset({CAROL}))
    assert (document.version, document.full_state) == (1, False)
    assert states(document) == {CAROL: ("active",)}
    assert b"<basic>closed</basic>" in parts[document.resources[0].instances[0].cid]


def test_a_member_that_blocks_the_owner_is_terminated_rejected(rls: Rls) -> None:
    rls.presence.rules[(CAROL, ALICE)] = Authorization.BLOCK
    sub = subscription()
    start(rls, sub)
    document, parts = notify(rls, sub)
    carol = document.resources[1]
    assert [(i.state, i.reason, i.cid) for i in carol.instances] == [("terminated", "rejected", None)]
    assert len(parts) == 2


def test_one_members_change_yields_a_partial_notify_naming_only_it_and_versions_increase(rls: Rls) -> None:
    sub = subscription()
    start(rls, sub)
    versions = [notify(rls, sub)[0].version]
    rls.notifier.changes.clear()
    rls.presence.publish(BOB, "closed")
    # the change reaches bob's own watchers and, as a hinted change, the list (the back-end subscription)
    assert rls.notifier.changes == [("presence", BOB, frozenset()), ("presence", LIST, frozenset({BOB}))]
    _, _, hint = rls.notifier.changes[1]
    document, parts = notify(rls, sub, full=False, changed=hint)
    versions.append(document.version)
    assert document.full_state is False
    assert [r.uri for r in document.resources] == [BOB]
    assert list(parts) == [document.resources[0].instances[0].cid]
    assert b"<basic>closed</basic>" in next(iter(parts.values()))
    # a refresh SUBSCRIBE: full state again (§5.2), the version still counting up
    document, parts = notify(rls, sub, full=True)
    versions.append(document.version)
    assert document.full_state and len(document.resources) == 3
    rls.presence.publish(DAVE, "closed")
    versions.append(notify(rls, sub, full=False, changed=frozenset({DAVE}))[0].version)
    assert versions == [0, 1, 2, 3]  # §5.2: 0 first, then exactly one more per NOTIFY


def test_content_ids_are_unique_across_notifies_and_the_instance_id_is_stable(rls: Rls) -> None:
    sub = subscription()
    start(rls, sub)
    first, first_parts = notify(rls, sub)
    second, second_parts = notify(rls, sub)
    assert not set(first_parts) & set(second_parts)
    assert [r.instances[0].id for r in first.resources] == [r.instances[0].id for r in second.resources]


def test_versions_are_per_subscription(rls: Rls) -> None:
    one, two = subscription(id="a"), subscription(id="b")
    start(rls, one)
    notify(rls, one)
    notify(rls, one)
    start(rls, two)
    assert notify(rls, two)[0].version == 0
    assert notify(rls, one)[0].version == 2


def test_only_the_owner_may_subscribe_to_the_list_rfc4662_4_4(rls: Rls) -> None:
    assert rls.package.authorize(subscription(watcher=BOB)) is Authorization.BLOCK
    assert rls.package.body(subscription(watcher=BOB), Authorization.BLOCK) is None
    assert rls.package.authorize(subscription(watcher="sip:alice@Example.COM")) is Authorization.ALLOW


def test_a_list_subscription_needs_eventlist_rfc4662_4_1(rls: Rls) -> None:
    without = subscription(supported=frozenset())
    assert rls.package.required_extensions(without) == frozenset({"eventlist"})  # the notifier answers 421
    assert rls.package.authorize(without) is Authorization.BLOCK  # and if it does not: never a non-RLMI NOTIFY
    assert rls.package.required_extensions(subscription(resource=BOB)) == frozenset()


def test_a_single_presentity_goes_to_the_inner_package_unchanged(rls: Rls) -> None:
    sub = subscription(resource=BOB, supported=frozenset())
    assert rls.package.resource_exists(BOB) and rls.package.resource_exists(LIST)
    assert not rls.package.resource_exists("sip:nobody@example.com")
    assert rls.package.authorize(sub) is Authorization.ALLOW
    rls.package.started(sub, Authorization.ALLOW)
    assert rls.presence.watchers[sub.id] == (sub, Authorization.ALLOW)
    body = rls.package.body(sub, Authorization.ALLOW)
    assert body is not None and body.content_type == "application/pidf+xml"
    rls.package.ended(sub, "timeout")
    assert rls.presence.ended_with[sub.id] == "timeout"
    assert rls.package.content_types()[0] == "application/pidf+xml"
    assert {"multipart/related", "application/rlmi+xml"} <= set(rls.package.content_types())


def test_ending_the_list_subscription_ends_its_back_end_subscriptions(rls: Rls) -> None:
    sub = subscription()
    start(rls, sub)
    assert len(rls.presence.watchers) == 3
    rls.package.ended(sub, "unsubscribed")
    assert rls.presence.watchers == {}
    assert set(rls.presence.ended_with.values()) == {"unsubscribed"}
    rls.notifier.changes.clear()
    asked: list[str] = []
    containing = rls.lists.containing
    rls.lists.containing = lambda member: asked.append(member) or containing(member)  # type: ignore[method-assign]
    rls.presence.publish(BOB, "closed")
    # no list has a subscriber now: the list is not told, and the store is not asked which lists hold bob
    # (a registrar tells the package of every REGISTER; that query cost each one ~3 % of its CPU time)
    assert rls.notifier.changes == [("presence", BOB, frozenset())] and asked == []
    start(rls, subscription(id="call-2;from;to;presence"))
    rls.presence.publish(BOB, "open")
    assert ("presence", LIST, frozenset({BOB})) in rls.notifier.changes and asked == [BOB]


def test_a_member_removed_from_the_list_is_deactivated_and_a_full_notify_follows(rls: Rls) -> None:
    sub = subscription()
    start(rls, sub)
    notify(rls, sub)
    rls.lists.remove_member(LIST, DAVE)
    rls.package.list_changed(LIST)
    assert rls.notifier.changes[-1] == ("presence", LIST, frozenset())
    assert ("presence", LIST, None) in rls.notifier.reauthorizations
    document, _ = notify(rls, sub, full=False, changed=frozenset())  # no hint: full state
    assert document.full_state and [r.uri for r in document.resources] == [BOB, CAROL]
    assert [reason for key, reason in rls.presence.ended_with.items() if key.endswith(DAVE)] == ["deactivated"]


def test_non_local_and_nested_members_are_refused(rls: Rls) -> None:
    is_local = local_domains(["example.com"])
    with pytest.raises(ValueError, match="not a local presentity.*RFC 4662 §6"):
        check_member(rls.lists, LIST, "sip:ed@dallas.example.net", is_local)
    with pytest.raises(ValueError, match="nested lists"):
        check_member(rls.lists, LIST, LIST, is_local)
    assert check_member(rls.lists, LIST, "sip:erin@EXAMPLE.com:5060", local_domains(["example.com"])) == (
        "sip:erin@example.com:5060")


def test_a_non_local_member_in_the_store_is_a_resource_without_instances(rls: Rls) -> None:
    rls.lists.add_member(LIST, "sip:ed@dallas.example.net", "Ed at NET")  # put there behind the RLS's back
    sub = subscription()
    start(rls, sub)
    document, _ = notify(rls, sub)
    assert states(document)["sip:ed@dallas.example.net"] == ()  # §4.5: state not known


def test_configured_lists_are_loaded_exactly_as_written() -> None:
    data = {"presence": {"list": [{"uri": LIST, "owner": ALICE, "name": "Friends",
                                   "members": [BOB, {"uri": CAROL, "name": "Carol"}]}]}}
    configured = lists_from_config(data)
    assert configured == [ListConfig(LIST, ALICE, "Friends", (Member(BOB), Member(CAROL, "Carol")))]
    lists = MemoryListStore()
    lists.put(LIST, ALICE)
    lists.add_member(LIST, DAVE)
    apply_lists(lists, configured, local_domains(["example.com"]))
    found = lists.get(LIST)
    assert found is not None and [m.uri for m in found.members] == [BOB, CAROL] and found.name == "Friends"
    with pytest.raises(ValueError, match="not a local presentity"):
        apply_lists(lists, lists_from_config({"presence": {"list": [
            {"uri": LIST, "owner": ALICE, "members": ["sip:x@elsewhere.org"]}]}}), local_domains(["example.com"]))
    for bad in ({"presence": {"list": [{"uri": LIST}]}}, {"presence": {"list": [{"uri": LIST, "owner": ALICE, "x": 1}]}},
                {"presence": {"list": [{"uri": LIST, "owner": ALICE, "members": [3]}]}}):
        with pytest.raises(ValueError, match=r"\[\[presence.list\]\] #1"):
            lists_from_config(bad)


def test_a_body_outside_the_subscriptions_life_starts_no_back_end_subscription(rls: Rls) -> None:
    sub = subscription()
    start(rls, sub)
    notify(rls, sub)
    rls.package.ended(sub, "timeout")
    assert rls.presence.watchers == {}
    document, parts = notify(rls, sub)  # e.g. a final NOTIFY rendered after ended()
    assert document.full_state and len(parts) == 2
    assert rls.presence.watchers == {}  # nothing started that nobody would end


def test_a_polite_block_is_active_with_the_neutral_state_rfc5025(rls: Rls) -> None:
    rls.presence.rules[(BOB, ALICE)] = Authorization.POLITE_BLOCK
    sub = subscription()
    start(rls, sub)
    document, parts = notify(rls, sub)
    bob = document.resources[0]
    assert bob.instances[0].state == "active"  # alice cannot tell she is blocked
    assert b"<basic>closed</basic>" in parts[bob.instances[0].cid]


def test_a_rule_about_another_watcher_does_not_touch_the_list(rls: Rls) -> None:
    sub = subscription()
    start(rls, sub)
    rls.notifier.changes.clear()
    rls.presence.decide(CAROL, BOB, Authorization.ALLOW)  # carol approves bob, not alice
    assert rls.notifier.reauthorizations == [("presence", CAROL, BOB)]  # passed on to the notifier
    assert rls.notifier.changes == []
    rls.presence.decide(BOB, ALICE, Authorization.ALLOW)  # bob already allowed alice: nothing moved
    assert rls.notifier.changes == []
