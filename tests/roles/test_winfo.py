"""Watcher information (RFC 3857, RFC 3858): documents, the watcher list, and the presence.winfo package."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.roles.events import Authorization, Body, EventPackage, SubscriptionInfo
from sipactors.roles.winfo import (
    CONTENT_TYPE,
    EVENTS,
    MAX_WAITING,
    NAMESPACE,
    STATUSES,
    ResourceWatchers,
    WatchedPackage,
    Watcher,
    WatcherInfo,
    WatcherList,
    WinfoError,
    WinfoPackage,
    generate,
    parse,
    watcher_id,
)

A = Authorization
ALICE = "sip:alice@example.com"
Q = f"{{{NAMESPACE}}}"

# RFC 3858 §5, verbatim.
RFC3858_EXAMPLE = b"""<?xml version="1.0"?>
<watcherinfo xmlns="urn:ietf:params:xml:ns:watcherinfo"
             version="0" state="full">
  <watcher-list resource="sip:professor@example.net" package="presence">
    <watcher status="active"
             id="8ajksjda7s"
             duration-subscribed="509"
             event="approved" >sip:userA@example.net</watcher>
    <watcher status="pending"
             id="hh8juja87s997-ass7"
             display-name="Mr. Subscriber"
             event="subscribe">sip:userB@example.org</watcher>
  </watcher-list>
</watcherinfo>
"""

EXAMPLE_MODEL = WatcherInfo(0, "full", (ResourceWatchers("sip:professor@example.net", "presence", (
    Watcher("sip:userA@example.net", "8ajksjda7s", "active", "approved", duration_subscribed=509),
    Watcher("sip:userB@example.org", "hh8juja87s997-ass7", "pending", "subscribe", display_name="Mr. Subscriber"),
)),))


def test_the_rfc3858_example_parses_to_its_model() -> None:
    assert parse(RFC3858_EXAMPLE) == EXAMPLE_MODEL


def test_a_generated_document_has_the_shape_of_the_rfc3858_schema() -> None:
    data = generate(EXAMPLE_MODEL)
    assert data.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")  # §3: XML 1.0, UTF-8
    root = ET.fromstring(data)
    assert root.tag == f"{Q}watcherinfo" and root.attrib == {"version": "0", "state": "full"}
    (watcher_list,) = list(root)
    assert watcher_list.tag == f"{Q}watcher-list"
    assert watcher_list.attrib == {"resource": "sip:professor@example.net", "package": "presence"}
    first, second = list(watcher_list)
    assert first.tag == second.tag == f"{Q}watcher"
    assert first.attrib == {"id": "8ajksjda7s", "status": "active", "event": "approved", "duration-subscribed": "509"}
    assert first.text == "sip:userA@example.net"
    assert second.attrib["display-name"] == "Mr. Subscriber"
    assert b'xmlns="urn:ietf:params:xml:ns:watcherinfo"' in data  # the default namespace, no prefixes
    assert parse(data) == EXAMPLE_MODEL


def test_elements_and_attributes_of_other_namespaces_are_ignored_rfc3858() -> None:
    data = RFC3858_EXAMPLE.replace(b'package="presence">', b'package="presence" xmlns:x="urn:x" x:a="1"><x:extra/>')
    assert parse(data) == EXAMPLE_MODEL


@pytest.mark.parametrize(("data", "problem"), [
    (b"<watcherinfo", "not well-formed"),
    (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x/>', "DOCTYPE"),
    (b'<watcherinfo xmlns="urn:other" version="0" state="full"/>', "root element"),
    (f'<watcherinfo xmlns="{NAMESPACE}" state="full"/>'.encode(), "version"),
    (f'<watcherinfo xmlns="{NAMESPACE}" version="-1" state="full"/>'.encode(), "version"),
    (f'<watcherinfo xmlns="{NAMESPACE}" version="0" state="some"/>'.encode(), "state"),
    (f'<watcherinfo xmlns="{NAMESPACE}" version="0" state="full"><watcher-list package="presence"/>'
     f'</watcherinfo>'.encode(), "resource"),
    (f'<watcherinfo xmlns="{NAMESPACE}" version="0" state="full"><watcher-list resource="sip:a@b" package="p">'
     f'<watcher id="1" status="gone" event="subscribe">sip:c@d</watcher></watcher-list></watcherinfo>'.encode(), "status"),
    (f'<watcherinfo xmlns="{NAMESPACE}" version="0" state="full"><watcher-list resource="sip:a@b" package="p">'
     f'<watcher id="a b" status="active" event="subscribe">sip:c@d</watcher></watcher-list></watcherinfo>'.encode(), "token"),
    (f'<watcherinfo xmlns="{NAMESPACE}" version="0" state="full"><watcher-list resource="sip:a@b" package="p">'
     f'<watcher id="1" status="active" event="hello">sip:c@d</watcher></watcher-list></watcherinfo>'.encode(), "event"),
    (f'<watcherinfo xmlns="{NAMESPACE}" version="0" state="full"><watcher-list resource="sip:a@b" package="p">'
     f'<watcher id="1" status="active" event="approved" expiration="soon">sip:c@d</watcher></watcher-list>'
     f'</watcherinfo>'.encode(), "expiration"),
])
def test_bad_documents_are_refused_naming_the_problem(data: bytes, problem: str) -> None:
    with pytest.raises(WinfoError, match=problem):
        parse(data)


_text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")), min_size=1, max_size=20).filter(
    lambda s: s.strip() == s)
_uris = st.builds(lambda user, host: f"sip:{user}@{host}", st.from_regex(r"[a-z0-9._-]{1,10}", fullmatch=True),
                  st.sampled_from(["example.com", "example.org", "[2001:db8::1]"]))
_watchers = st.builds(
    Watcher, uri=_uris, id=st.from_regex(r"[A-Za-z0-9.!%*_+`'~-]{1,16}", fullmatch=True),
    status=st.sampled_from(sorted(STATUSES)), event=st.sampled_from(sorted(EVENTS)),
    display_name=st.none() | _text, expiration=st.none() | st.integers(0, 2**64 - 1),
    duration_subscribed=st.none() | st.integers(0, 2**64 - 1), lang=st.none() | st.sampled_from(["en", "de-CH"]),
)
_documents = st.builds(
    WatcherInfo, version=st.integers(0, 2**32 - 1), state=st.sampled_from(["full", "partial"]),
    lists=st.lists(st.builds(ResourceWatchers, resource=_uris, package=st.sampled_from(["presence", "presence.winfo"]),
                             watchers=st.lists(_watchers, max_size=4).map(tuple)), max_size=3).map(tuple),
)


@given(_documents)
def test_parse_inverts_generate(document: WatcherInfo) -> None:
    assert parse(generate(document)) == document


@given(_documents)
def test_generate_inverts_parse_on_generated_text(document: WatcherInfo) -> None:
    data = generate(document)
    assert generate(parse(data)) == data


@pytest.mark.parametrize("name", ["bell\x07", "\ufffe"])
def test_a_character_xml_cannot_carry_is_refused_rather_than_written(name: str) -> None:
    document = WatcherInfo(0, "full", (ResourceWatchers(ALICE, "presence", (
        Watcher("sip:bob@example.org", "1", "active", "subscribe", display_name=name),)),))
    with pytest.raises(WinfoError, match="XML 1.0"):
        generate(document)


def test_watcher_ids_are_tokens_and_stable() -> None:
    identifier = watcher_id("a84b4c76e66710@pc33.atlanta.com;1928301774;a73kszlfl;id=7")
    assert identifier == watcher_id("a84b4c76e66710@pc33.atlanta.com;1928301774;a73kszlfl;id=7")
    Watcher("sip:a@b", identifier, "active", "subscribe")  # a token, or this raises


# --- the watcher list -----------------------------------------------------------------------------------


class FakeNotifier:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str, frozenset[str]]] = []
        self.reauthorized: list[tuple[str, str, str | None]] = []

    def changed(self, event: str, resource: str, hint: frozenset[str] = frozenset()) -> None:
        self.changes.append((event, resource, hint))

    def reauthorize(self, event: str, resource: str, watcher: str | None = None) -> None:
        self.reauthorized.append((event, resource, watcher))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def subscription(watcher: str, number: int = 1, resource: str = ALICE, event: str = "presence") -> SubscriptionInfo:
    return SubscriptionInfo(f"call{number}@{watcher};tag{number};ttag{number};", event, resource, watcher, (),
                            frozenset())


def states(watchers: WatcherList, presentity: str = ALICE) -> list[tuple[str, str, str]]:
    return [(w.uri, w.status, w.event) for w in watchers.watchers(presentity)]


@pytest.fixture
def notifier() -> FakeNotifier:
    return FakeNotifier()


@pytest.fixture
def watchers(notifier: FakeNotifier) -> WatcherList:
    return WatcherList(notifier, Clock())


BOB, CAROL = "sip:bob@example.org", "sip:carol@example.org"


def test_pending_then_approved_then_timeout_rfc3857_state_machine(watchers: WatcherList, notifier: FakeNotifier) -> None:
    bob = subscription(BOB)
    watchers.watcher_started(bob, A.PENDING)
    assert states(watchers) == [(BOB, "pending", "subscribe")]
    watchers.watcher_started(bob, A.ALLOW)
    assert states(watchers) == [(BOB, "active", "approved")]
    watchers.watcher_ended(bob, "timeout")
    assert states(watchers) == []
    wid = watcher_id(bob.id)
    assert notifier.changes == [("presence.winfo", ALICE, frozenset({wid}))] * 3
    assert [(w.status, w.event) for w in watchers.find(ALICE, {wid})] == [("terminated", "timeout")]


def test_allowed_and_polite_blocked_watchers_are_active_and_blocked_ones_rejected(watchers: WatcherList) -> None:
    watchers.watcher_started(subscription(BOB, 1), A.ALLOW)
    watchers.watcher_started(subscription(CAROL, 2), A.POLITE_BLOCK)
    watchers.watcher_started(subscription("sip:eve@evil.net", 3), A.BLOCK)
    assert states(watchers) == [(BOB, "active", "subscribe"), (CAROL, "active", "subscribe")]
    (eve,) = watchers.find(ALICE, {watcher_id(subscription("sip:eve@evil.net", 3).id)})
    assert (eve.status, eve.event) == ("terminated", "rejected")


def test_an_unchanged_authorization_is_no_change(watchers: WatcherList, notifier: FakeNotifier) -> None:
    watchers.watcher_started(subscription(BOB), A.ALLOW)
    watchers.watcher_started(subscription(BOB), A.ALLOW)
    assert len(notifier.changes) == 1


def test_a_pending_subscription_that_times_out_waits_until_a_new_one_gives_it_up_rfc3857(
    watchers: WatcherList, notifier: FakeNotifier,
) -> None:
    first, second = subscription(BOB, 1), subscription(BOB, 2)
    watchers.watcher_started(first, A.PENDING)
    watchers.watcher_ended(first, "timeout")
    assert states(watchers) == [(BOB, "waiting", "timeout")]
    watchers.watcher_started(second, A.PENDING)
    assert states(watchers) == [(BOB, "pending", "subscribe")]
    assert notifier.changes[-1][2] == frozenset({watcher_id(first.id), watcher_id(second.id)})
    (given_up,) = watchers.find(ALICE, {watcher_id(first.id)})
    assert (given_up.status, given_up.event) == ("terminated", "giveup")


def test_reconsider_ends_a_waiting_watcher_once_the_rules_decide_rfc5025(
    watchers: WatcherList, notifier: FakeNotifier,
) -> None:
    bob, carol = subscription(BOB, 1), subscription(CAROL, 2)
    for each in (bob, carol):
        watchers.watcher_started(each, A.PENDING)
        watchers.watcher_ended(each, "timeout")
    before = len(notifier.changes)
    watchers.reconsider(ALICE, lambda presentity, watcher: A.PENDING)
    assert len(notifier.changes) == before  # still undecided: nothing moves
    watchers.reconsider(ALICE, lambda presentity, watcher: A.ALLOW if watcher == BOB else A.PENDING)
    assert states(watchers) == [(CAROL, "waiting", "timeout")]
    (approved,) = watchers.find(ALICE, {watcher_id(bob.id)})
    assert (approved.status, approved.event) == ("terminated", "approved")
    watchers.reconsider(ALICE, lambda presentity, watcher: A.BLOCK)
    assert states(watchers) == []
    assert [w.event for w in watchers.find(ALICE, {watcher_id(carol.id)})] == ["rejected"]


def test_the_watchers_own_unsubscribe_ends_as_timeout_and_other_reasons_keep_their_name(watchers: WatcherList) -> None:
    cases = {"unsubscribed": "timeout", "rejected": "rejected", "noresource": "noresource", "giveup": "giveup",
             "probation": "probation", "deactivated": "deactivated", "something-else": "deactivated"}
    for number, (reason, event) in enumerate(cases.items()):
        info = subscription(f"sip:w{number}@example.org", number)
        watchers.watcher_started(info, A.ALLOW)
        watchers.watcher_ended(info, reason)
        assert [w.event for w in watchers.find(ALICE, {watcher_id(info.id)})] == [event]
    watchers.watcher_ended(subscription("sip:never@example.org", 99), "timeout")  # unknown: ignored
    assert states(watchers) == []


def test_waiting_watchers_are_bounded(watchers: WatcherList) -> None:
    for number in range(MAX_WAITING + 3):
        info = subscription(f"sip:w{number}@example.org", number)
        watchers.watcher_started(info, A.PENDING)
        watchers.watcher_ended(info, "timeout")
    waiting = watchers.watchers(ALICE)
    assert len(waiting) == MAX_WAITING
    assert waiting[0].uri == "sip:w3@example.org"  # the oldest were given up


def test_duration_subscribed_counts_from_the_subscribe() -> None:
    clock = Clock()
    watchers = WatcherList(FakeNotifier(), clock)
    watchers.watcher_started(subscription(BOB), A.PENDING)
    clock.now += 509.7
    watchers.watcher_started(subscription(BOB), A.ALLOW)
    assert [w.duration_subscribed for w in watchers.watchers(ALICE)] == [509]
    assert [w.duration_subscribed for w in WatcherList().watchers(ALICE)] == []


# --- the presence.winfo package -------------------------------------------------------------------------


def package(watchers: WatcherList) -> WinfoPackage:
    return WinfoPackage(watchers, lambda resource: resource in (ALICE, "sip:professor@example.net"))


def test_the_winfo_package_implements_the_event_package_contract(watchers: WatcherList) -> None:
    winfo: EventPackage = package(watchers)
    assert winfo.event == "presence.winfo"
    assert winfo.content_types() == (CONTENT_TYPE,) == ("application/watcherinfo+xml",)
    assert winfo.resource_exists(ALICE) and not winfo.resource_exists("sip:nobody@example.com")


def test_only_the_presentity_may_subscribe_to_its_watcher_information_rfc3857(watchers: WatcherList) -> None:
    winfo = package(watchers)
    assert winfo.authorize(subscription(ALICE, event="presence.winfo")) is A.ALLOW
    assert winfo.authorize(subscription(BOB, event="presence.winfo")) is A.BLOCK
    assert winfo.body(subscription(BOB, event="presence.winfo"), A.BLOCK) is None


def test_winfo_notifications_full_first_then_partial_with_growing_versions_rfc3858(
    watchers: WatcherList, notifier: FakeNotifier,
) -> None:
    winfo = package(watchers)
    owner = subscription(ALICE, 9, event="presence.winfo")
    bob, carol = subscription(BOB, 1), subscription(CAROL, 2)
    watchers.watcher_started(bob, A.ALLOW)
    winfo.started(owner, A.ALLOW)
    first = winfo.body(owner, A.ALLOW, full=False, changed=frozenset({"ignored-for-the-first"}))
    assert first is not None and first.content_type == CONTENT_TYPE
    document = parse(first.data)
    assert (document.version, document.state) == (0, "full")
    assert [(w.uri, w.status) for w in document.lists[0].watchers] == [(BOB, "active")]
    assert (document.lists[0].resource, document.lists[0].package) == (ALICE, "presence")
    watchers.watcher_started(carol, A.PENDING)
    event, resource, hint = notifier.changes[-1]
    assert (event, resource) == ("presence.winfo", ALICE)
    partial = parse(winfo.body(owner, A.ALLOW, full=False, changed=hint).data)  # type: ignore[union-attr]
    assert (partial.version, partial.state) == (1, "partial")
    assert [(w.uri, w.status, w.event) for w in partial.lists[0].watchers] == [(CAROL, "pending", "subscribe")]
    watchers.watcher_ended(bob, "unsubscribed")
    ended = parse(winfo.body(owner, A.ALLOW, full=False, changed=notifier.changes[-1][2]).data)  # type: ignore[union-attr]
    assert (ended.version, ended.state) == (2, "partial")
    assert [(w.uri, w.status, w.event) for w in ended.lists[0].watchers] == [(BOB, "terminated", "timeout")]
    full = parse(winfo.body(owner, A.ALLOW).data)  # type: ignore[union-attr]
    assert (full.version, full.state) == (3, "full")
    assert [(w.uri, w.status) for w in full.lists[0].watchers] == [(CAROL, "pending")]


def test_versions_are_scoped_within_a_winfo_subscription_rfc3858(watchers: WatcherList) -> None:
    winfo = package(watchers)
    one, two = subscription(ALICE, 1, event="presence.winfo"), subscription(ALICE, 2, event="presence.winfo")
    for _ in range(3):
        winfo.body(one, A.ALLOW)
    assert parse(winfo.body(two, A.ALLOW).data).version == 0  # type: ignore[union-attr]
    winfo.ended(one, "timeout")
    assert parse(winfo.body(one, A.ALLOW).data).version == 0  # type: ignore[union-attr]


class RecordingPackage:
    """A presence package as the notifier sees it, recording the calls it gets."""

    event = "presence"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def content_types(self) -> tuple[str, ...]:
        return ("application/pidf+xml",)

    def resource_exists(self, resource: str) -> bool:
        return resource == ALICE

    def authorize(self, subscription: SubscriptionInfo) -> Authorization:
        return A.PENDING

    def body(self, subscription: SubscriptionInfo, authorization: Authorization, *, full: bool = True,
             changed: frozenset[str] = frozenset()) -> Body | None:
        return Body("application/pidf+xml", f"{full}:{sorted(changed)}".encode())

    def started(self, subscription: SubscriptionInfo, authorization: Authorization) -> None:
        self.calls.append(("started", authorization.value))

    def ended(self, subscription: SubscriptionInfo, reason: str) -> None:
        self.calls.append(("ended", reason))


def test_a_watched_package_forwards_to_the_package_and_the_watcher_list(watchers: WatcherList) -> None:
    inner = RecordingPackage()
    watched: EventPackage = WatchedPackage(inner, watchers)
    bob = subscription(BOB)
    assert watched.event == "presence" and watched.content_types() == ("application/pidf+xml",)
    assert watched.resource_exists(ALICE) and not watched.resource_exists(BOB)
    assert watched.authorize(bob) is A.PENDING
    assert watched.body(bob, A.ALLOW, full=False, changed=frozenset({"x"})) == Body("application/pidf+xml", b"False:['x']")
    watched.started(bob, A.PENDING)
    assert states(watchers) == [(BOB, "pending", "subscribe")]
    watched.ended(bob, "timeout")
    assert states(watchers) == [(BOB, "waiting", "timeout")]
    assert inner.calls == [("started", "confirm"), ("ended", "timeout")]
