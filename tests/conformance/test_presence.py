"""The presence role end to end in simulation (issue 5): the server as ``serve`` wires it (``presence_world``),
its clients on a lossy simulated network, against a reference model.

Presentities with several devices (``SimUA``s that REGISTER and PUBLISH PIDF open/closed with a note, refresh
and remove), watchers that SUBSCRIBE, refresh and unsubscribe, watcher rules (allow, block, polite-block,
confirm) set in the rule store before subscribing and changed mid-run (the rules poller reauthorizes), the
virtual clock run past expiries, and restarts on the same SQLite file, interleaved. Every step ends by letting
the network settle; then:

* every live subscription's last NOTIFY says what the model says (RFC 6665 §4.2.2): an allowed watcher sees
  the composed state (RFC 3903 §6 / RFC 3856 §7.3: the union of the live publications' tuples, the newer
  publication's tuple winning per tuple id, their notes; else one open tuple per registered contact, §7.2;
  else one closed tuple), compared on basic status per tuple and notes, not on bytes; a polite-blocked one
  the neutral document (RFC 5025 §3.2.1); a pending one no state (RFC 6665 §4.2.1.3);
* a watcher never allowed to see a presentity never got a NOTIFY with a body (RFC 5025 §3.2.1 block);
* NOTIFY CSeq strictly increases in each dialog (RFC 3261 §12.2.1.1), across restarts too;
* each subscription ended by the server or the watcher got exactly one ``terminated`` NOTIFY, its last
  (RFC 6665 §4.1.3, §4.2.1.4); at the end every watcher unsubscribes, and then every subscription has.

The model's expiry instants are the moments the requests were sent; the server's are up to a transaction's
retransmissions later, so the clock is never left within ``WINDOW_BEFORE``/``WINDOW_AFTER`` of one.

``test_resource_list_through_the_notifier`` is RFC 4662 end to end: full state first, then a partial NOTIFY
naming only the buddy that changed, then full state again after a refresh.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from sipactors.message import Request
from sipactors.roles.events import Authorization
from sipactors.roles.pidf import CONTENT_TYPE, Contact, Note, Presence, Status, Tuple, generate
from sipactors.roles.pidf import parse as parse_pidf
from sipactors.roles.rlmi import parse_related, parse_rlmi
from sipactors.runtime import set_default_scheduler
from sipactors.sim import Link, SimUA
from sipactors.sim.ua import ClientSubscription, SentRequest
from tests.conformance.presence_world import DOMAIN, PresenceWorld

PRESENTITIES = [f"sip:p{i}@{DOMAIN}" for i in range(3)]
DEVICES_PER_PRESENTITY = 2
WATCHERS = [f"sip:w{i}@{DOMAIN}" for i in range(4)]
ACTIONS = [Authorization.ALLOW, Authorization.BLOCK, Authorization.POLITE_BLOCK, Authorization.PENDING]
SETTLE_MS = 40_000  # every transaction over (Timer F, J: 32 s) and the rules poller (1 s) has looked
WINDOW_BEFORE = 35.0  # seconds: a request sent this close before an expiry may reach the server after it
WINDOW_AFTER = 40.0  # seconds: the server's expiry is at most this much after the model's


@dataclass
class Publication:
    etag: str
    tuple_id: str
    basic: str
    note: str
    expires: float
    order: int  # when its document was last set (a refresh keeps it): the newer one wins a tuple id


@dataclass
class Device:
    ua: SimUA
    presentity: str
    name: str
    registered_until: float | None = None
    publication: Publication | None = None


@dataclass
class Watch:
    """One subscription a watcher asked for, and what the model expects of it."""

    presentity: str
    watcher: str
    subscription: ClientSubscription
    expires: float
    live: bool = True
    silent_end: bool = False  # expired while the server was down: nobody could tell the watcher
    ever_visible: bool = False  # allowed or polite-blocked at some moment of its life
    refused: bool = False


def _cseq(request: Request) -> int:
    assert request.cseq is not None
    return request.cseq.seq


def _state(notify: Request) -> str:
    return (notify.header_text("Subscription-State") or "").split(";")[0].strip().lower()


class PresenceVersusModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="presconf-"))
        self.world = PresenceWorld(f"sqlite:///{self.folder / 'server.db'}?synchronous=normal", seed=7)
        self.devices: list[Device] = []
        for p, presentity in enumerate(PRESENTITIES):
            for d in range(DEVICES_PER_PRESENTITY):
                ua = SimUA(self.world.network, presentity, (f"192.0.2.{20 + 10 * p + d}", 5060), self.world.resolver,
                           seed=100 + 10 * p + d)
                self.devices.append(Device(ua, presentity, f"p{p}d{d}"))
        self.watchers = {w: SimUA(self.world.network, w, (f"192.0.2.{100 + i}", 5060), self.world.resolver, seed=200 + i)
                         for i, w in enumerate(WATCHERS)}
        self.rules: dict[tuple[str, str], Authorization] = {}
        self.watches: list[Watch] = []
        self.order = 0

    # -- the reference model ---------------------------------------------------------------------
    def now(self) -> float:
        return self.world.clock()

    def authorization(self, presentity: str, watcher: str) -> Authorization:
        return self.rules.get((presentity, watcher), Authorization.PENDING)  # the server's default: confirm

    def expected(self, presentity: str) -> tuple[str, dict[str, str], frozenset[str]]:
        """("published", tuple id → basic, notes) | ("registered", contact → "open", {}) | ("offline", ...)."""
        live = sorted((d.publication for d in self.devices if d.presentity == presentity and d.publication),
                      key=lambda pub: pub.order)
        if live:
            merged: dict[str, str] = {}
            for pub in live:
                merged[pub.tuple_id] = pub.basic
            return "published", merged, frozenset(pub.note for pub in live)
        contacts = {d.ua.contact.uri.render(): "open" for d in self.devices
                    if d.presentity == presentity and d.registered_until is not None}
        if contacts:
            return "registered", contacts, frozenset()
        return "offline", {}, frozenset()

    def expiries(self) -> list[float]:
        found = [d.registered_until for d in self.devices if d.registered_until is not None]
        found += [d.publication.expires for d in self.devices if d.publication is not None]
        found += [w.expires for w in self.watches if w.live]
        return found

    def expire(self, silently: bool = False) -> None:
        now = self.now()
        for device in self.devices:
            if device.registered_until is not None and device.registered_until <= now:
                device.registered_until = None
            if device.publication is not None and device.publication.expires <= now:
                device.publication = None
        for watch in self.watches:
            if watch.live and watch.expires <= now:
                watch.live = False
                watch.silent_end = silently

    def clear_of_windows(self, target_ms: float) -> float:
        """``target_ms`` moved on past every window around an expiry it falls in."""
        moved = True
        while moved:
            moved = False
            at = self.world.epoch_seconds(target_ms)
            for expiry in self.expiries():
                if expiry - WINDOW_BEFORE <= at < expiry + WINDOW_AFTER:
                    target_ms += (expiry + WINDOW_AFTER - at) * 1000 + 1
                    moved = True
        return target_ms

    def settle(self, ms: float = SETTLE_MS) -> None:
        scheduler = self.world.scheduler
        target = self.clear_of_windows(scheduler.now() + ms)
        scheduler.advance(target - scheduler.now())
        self.expire()

    # -- devices ----------------------------------------------------------------------------------
    def request(self, device: Device, method: str, headers: list[tuple[str, object]], body: bytes = b"") -> SentRequest:
        if method == "REGISTER":
            return device.ua.send(method, f"sip:{DOMAIN}", to=device.presentity, headers=headers)
        return device.ua.send(method, device.presentity, headers=headers, body=body,
                              content_type=CONTENT_TYPE if body else None)

    @staticmethod
    def final(sent: SentRequest) -> int:
        outcome = sent.outcome
        assert outcome is not None and outcome.response is not None, f"{sent.request.method}: {outcome}"
        return outcome.response.status

    @rule(pick=st.integers(0, 5), expires=st.sampled_from([60, 300, 3600]))
    def register(self, pick: int, expires: int) -> None:
        device = self.devices[pick % len(self.devices)]
        sent = self.request(device, "REGISTER", [("Expires", expires)])
        device.registered_until = self.now() + expires
        self.settle()
        assert self.final(sent) == 200

    @precondition(lambda self: any(d.registered_until is not None for d in self.devices))
    @rule(pick=st.integers(0, 5))
    def unregister(self, pick: int) -> None:
        registered = [d for d in self.devices if d.registered_until is not None]
        device = registered[pick % len(registered)]
        sent = self.request(device, "REGISTER", [("Expires", 0)])
        device.registered_until = None
        self.settle()
        assert self.final(sent) == 200

    @rule(pick=st.integers(0, 5), basic=st.sampled_from(["open", "closed"]), note=st.sampled_from(["away", "busy", "here"]),
          shared=st.booleans(), expires=st.sampled_from([60, 300, 3600]))
    def publish(self, pick: int, basic: str, note: str, shared: bool, expires: int) -> None:
        """An initial PUBLISH, or a modification of the device's live one (RFC 3903 §4.1, §4.4)."""
        device = self.devices[pick % len(self.devices)]
        tuple_id = "shared" if shared else device.name
        document = generate(Presence(device.presentity, (Tuple(tuple_id, Status(basic), Contact(device.ua.contact.uri.render())),),
                                     (Note(f"{device.name} {note}"),)))
        headers: list[tuple[str, object]] = [("Event", "presence"), ("Expires", expires)]
        if device.publication is not None:
            headers.append(("SIP-If-Match", device.publication.etag))
        sent = self.request(device, "PUBLISH", headers, document)
        self.order += 1
        publication = device.publication = Publication("", tuple_id, basic, f"{device.name} {note}",
                                                       self.now() + expires, self.order)
        self.settle()
        assert self.final(sent) == 200
        response = sent.outcome.response if sent.outcome else None
        assert response is not None
        publication.etag = str(response.header("SIP-ETag"))  # (the model may have seen it expire meanwhile)

    @precondition(lambda self: any(d.publication is not None for d in self.devices))
    @rule(pick=st.integers(0, 5), expires=st.sampled_from([60, 300, 3600]))
    def refresh_publication(self, pick: int, expires: int) -> None:
        published = [d for d in self.devices if d.publication is not None]
        device = published[pick % len(published)]
        assert device.publication is not None
        sent = self.request(device, "PUBLISH", [("Event", "presence"), ("Expires", expires),
                                                ("SIP-If-Match", device.publication.etag)])
        publication = device.publication
        publication.expires = self.now() + expires
        self.settle()
        assert self.final(sent) == 200
        response = sent.outcome.response if sent.outcome else None
        assert response is not None
        publication.etag = str(response.header("SIP-ETag"))

    @precondition(lambda self: any(d.publication is not None for d in self.devices))
    @rule(pick=st.integers(0, 5))
    def remove_publication(self, pick: int) -> None:
        published = [d for d in self.devices if d.publication is not None]
        device = published[pick % len(published)]
        assert device.publication is not None
        sent = self.request(device, "PUBLISH", [("Event", "presence"), ("Expires", 0),
                                                ("SIP-If-Match", device.publication.etag)])
        device.publication = None
        self.settle()
        assert self.final(sent) == 200

    # -- watchers and rules -----------------------------------------------------------------------
    @rule(presentity=st.sampled_from(PRESENTITIES), watcher=st.sampled_from(WATCHERS),
          expires=st.sampled_from([120, 600, 3600]))
    def subscribe(self, presentity: str, watcher: str, expires: int) -> None:
        if any(w.live and w.presentity == presentity and w.watcher == watcher for w in self.watches):
            return  # one subscription per pair at a time keeps the model simple
        authorization = self.authorization(presentity, watcher)
        subscription = self.watchers[watcher].subscribe(presentity, expires=expires)
        watch = Watch(presentity, watcher, subscription, self.now() + expires,
                      ever_visible=authorization in (Authorization.ALLOW, Authorization.POLITE_BLOCK))
        self.watches.append(watch)
        self.settle()
        status = self.final(subscription.sent)
        if authorization is Authorization.BLOCK:  # RFC 6665 §4.2.1.3: a failure response, no subscription
            assert status >= 300, f"a blocked watcher's SUBSCRIBE got {status}"
            watch.live, watch.refused = False, True
        else:
            assert 200 <= status < 300

    def live_watch(self, pick: int) -> Watch | None:
        live = [w for w in self.watches if w.live]
        return live[pick % len(live)] if live else None

    @precondition(lambda self: any(w.live for w in self.watches))
    @rule(pick=st.integers(0, 10), expires=st.sampled_from([120, 600, 3600]))
    def refresh_subscription(self, pick: int, expires: int) -> None:
        watch = self.live_watch(pick)
        assert watch is not None
        sent = self.watchers[watch.watcher].refresh(watch.subscription, expires)
        watch.expires = self.now() + expires
        self.settle()
        assert self.final(sent) == 200

    @precondition(lambda self: any(w.live for w in self.watches))
    @rule(pick=st.integers(0, 10))
    def unsubscribe(self, pick: int) -> None:
        watch = self.live_watch(pick)
        assert watch is not None
        sent = self.watchers[watch.watcher].unsubscribe(watch.subscription)
        watch.live = False
        self.settle()
        assert self.final(sent) == 200

    @rule(presentity=st.sampled_from(PRESENTITIES), watcher=st.sampled_from(WATCHERS), action=st.sampled_from(ACTIONS))
    def set_rule(self, presentity: str, watcher: str, action: Authorization) -> None:
        """A rule changed in the store (as ``sipactors presence`` does); the poller reauthorizes within 1 s."""
        self.world.server.rules.set(presentity, watcher, action)
        self.rules[presentity, watcher] = action
        for watch in self.watches:
            if watch.live and watch.presentity == presentity and watch.watcher == watcher:
                if action is Authorization.BLOCK:
                    watch.live = False  # RFC 6665 §4.1.3: terminated;reason=rejected
                elif action is not Authorization.PENDING:
                    watch.ever_visible = True
        self.settle()

    # -- time and restarts ------------------------------------------------------------------------
    @rule(ms=st.sampled_from([5_000, 60_000, 200_000, 1_000_000]))
    def advance(self, ms: int) -> None:
        self.settle(ms)

    @rule(down_ms=st.sampled_from([0, 30_000, 400_000]))
    def restart(self, down_ms: int) -> None:
        """The server stops and comes back ``down_ms`` later on the same file."""
        scheduler = self.world.scheduler
        back = self.clear_of_windows(scheduler.now() + down_ms)
        self.world.restart(back - scheduler.now())
        self.expire(silently=True)  # what ran out while it was down: purged at the start, no NOTIFY
        self.settle()

    # -- invariants -------------------------------------------------------------------------------
    @invariant()
    def every_live_watcher_sees_the_models_state(self) -> None:
        for watch in self.watches:
            if not watch.live:
                continue
            notifies = watch.subscription.notifies
            assert notifies, f"{watch.watcher} → {watch.presentity}: no NOTIFY (RFC 6665 §4.2.1.2)"
            last = max(notifies, key=_cseq)
            authorization = self.authorization(watch.presentity, watch.watcher)
            where = f"{watch.watcher} → {watch.presentity} ({authorization.value})"
            if authorization is Authorization.PENDING:
                assert _state(last) == "pending" and not last.body, f"{where}: {last.header_text('Subscription-State')}"
                continue
            assert _state(last) == "active", f"{where}: {last.header_text('Subscription-State')}"
            document = parse_pidf(last.body)
            if authorization is Authorization.POLITE_BLOCK:
                assert [t.status.basic for t in document.tuples] == ["closed"], where
                assert not document.notes and all(t.contact is None for t in document.tuples), where
                continue
            kind, tuples, notes = self.expected(watch.presentity)
            if kind == "published":
                assert {t.id: t.status.basic for t in document.tuples} == tuples, where
                assert len(document.tuples) == len(tuples), where
                assert frozenset(n.text for n in document.notes) == notes, where
            elif kind == "registered":
                seen = {t.contact.uri if t.contact else "": t.status.basic for t in document.tuples}
                assert seen == tuples and len(document.tuples) == len(tuples), where
            else:
                assert [t.status.basic for t in document.tuples] == ["closed"] and not document.notes, where

    @invariant()
    def notifies_are_ordered_and_end_once(self) -> None:
        for watch in self.watches:
            notifies = watch.subscription.notifies
            where = f"{watch.watcher} → {watch.presentity}"
            seqs = [_cseq(n) for n in notifies]
            assert seqs == sorted(set(seqs)), f"{where}: NOTIFY CSeqs {seqs} (RFC 3261 §12.2.1.1)"
            states = [_state(n) for n in notifies]
            assert states.count("terminated") <= 1, f"{where}: {states}"
            assert "terminated" not in states[:-1], f"{where}: a NOTIFY after terminated: {states}"
            if watch.refused:
                assert not notifies, f"{where}: a refused subscription got NOTIFYs"
            elif watch.live:
                assert "terminated" not in states, f"{where}: ended early: {watch.subscription.states}"
            elif not watch.silent_end:
                assert states[-1:] == ["terminated"], f"{where}: no terminated NOTIFY: {watch.subscription.states}"
            if not watch.ever_visible:
                assert not any(n.body for n in notifies), f"{where}: a watcher never allowed got state"

    def teardown(self) -> None:
        try:
            for watch in self.watches:
                if watch.live:
                    self.watchers[watch.watcher].unsubscribe(watch.subscription)
                    watch.live = False
            self.settle()
            self.notifies_are_ordered_and_end_once()
        finally:
            self.world.close()
            shutil.rmtree(self.folder, ignore_errors=True)


PresenceVersusModel.TestCase.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
test_presence_follows_the_reference_model = PresenceVersusModel.TestCase


# ------------------------------------------------------------------------------------------ RFC 4662
@pytest.fixture
def folder() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="presconf-rls-"))
    yield path
    set_default_scheduler(None)
    shutil.rmtree(path, ignore_errors=True)


@dataclass
class ListNotify:
    version: int
    full_state: bool
    resources: list[str]
    parts: dict[str, bytes] = field(default_factory=dict)


def _rlmi(notify: Request) -> ListNotify:
    content_type = notify.header_text("Content-Type") or ""
    parts = parse_related(content_type, notify.body)
    document = parse_rlmi(parts[0].data)
    return ListNotify(document.version, document.full_state, [r.uri for r in document.resources],
                      {p.content_id: p.data for p in parts[1:]})


def test_resource_list_through_the_notifier(folder: Path) -> None:
    """RFC 4662 §5.2 through the real notifier: version 0 full state naming every member, then a buddy's
    PUBLISH gives version 1, partial, naming only that buddy; a refresh gives version 2, full state."""
    world = PresenceWorld(f"sqlite:///{folder / 'rls.db'}", seed=3, link=Link())
    try:
        owner, list_uri = "sip:w0@example.com", "sip:w0-buddies@example.com"
        members = PRESENTITIES
        store = world.server.store
        store.lists.put(list_uri, owner)
        for member in members:
            store.lists.add_member(list_uri, member)
            world.server.rules.set(member, owner, Authorization.ALLOW)
        watcher = SimUA(world.network, owner, ("192.0.2.100", 5060), world.resolver, seed=1)
        buddy = SimUA(world.network, members[1], ("192.0.2.30", 5060), world.resolver, seed=2)
        subscription = watcher.subscribe(list_uri, headers=[("Supported", "eventlist")],
                                         accept=["multipart/related", "application/rlmi+xml", CONTENT_TYPE])
        world.run(5_000)
        assert subscription.sent.outcome is not None and subscription.sent.outcome.status == 200
        first = _rlmi(subscription.notifies[-1])
        assert (first.version, first.full_state, sorted(first.resources)) == (0, True, sorted(members))
        assert len(first.parts) == len(members)  # every buddy allowed the owner: every state is there

        document = generate(Presence(members[1], (Tuple("pc", Status("open")),)))
        buddy.send("PUBLISH", members[1], headers=[("Event", "presence"), ("Expires", 600)], body=document,
                   content_type=CONTENT_TYPE)
        world.run(5_000)
        second = _rlmi(subscription.notifies[-1])
        assert (second.version, second.full_state, second.resources) == (1, False, [members[1]])
        (state,) = second.parts.values()
        assert [(t.id, t.status.basic) for t in parse_pidf(state).tuples] == [("pc", "open")]

        watcher.refresh(subscription, 600)
        world.run(5_000)
        third = _rlmi(subscription.notifies[-1])
        assert (third.version, third.full_state, sorted(third.resources)) == (2, True, sorted(members))
        assert [_cseq(n) for n in subscription.notifies] == sorted({_cseq(n) for n in subscription.notifies})
    finally:
        world.close()
