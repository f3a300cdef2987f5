"""The presence package and its publications on a virtual clock (RFC 3856, RFC 3903 §6, RFC 3863): PUBLISH
stored before its 200, refresh/modify/remove, expiry by the publication actors' timers, the composed state
(several devices merged, registration fallback, polite-block neutral), the notifier told exactly when the
composed document changes, and publications that survive a restart with the time they have left."""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from sipactors.message import Request, Response, parse
from sipactors.roles.core import Core
from sipactors.roles.digest import Authenticator, ha1, request_digest
from sipactors.roles.events import Authorization, SubscriptionInfo
from sipactors.roles.pidf import Contact, Note, Presence, Status, Tuple, generate
from sipactors.roles.pidf import parse as parse_pidf
from sipactors.roles.presence import PresencePackage, compose, neutral, registration_tuple_id
from sipactors.roles.publish import PublishPolicy
from sipactors.roles.registrar import Registrar
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.runtime.binding import wall_clock
from sipactors.store import Binding, open_store
from tests.roles.test_core import FakeProxy, Layer, _request
from tests.roles.test_registrar import POLICY as REGISTRAR_POLICY
from tests.roles.test_registrar import request as register

ALICE = "sip:alice@atlanta.com"
EPOCH = 1_800_000_000.0
POLICY = PublishPolicy(frozenset({"atlanta.com"}))
#: The worlds' randomness: a counter shared by every world, so no two restarts draw the same entity-tag (as
#: 96 random bits do not in the server)
SERIAL = itertools.count(1)


def pidf(*tuples: tuple[str, str], note: str | None = None) -> bytes:
    return generate(Presence(ALICE, tuple(Tuple(i, Status(basic), Contact(f"sip:alice@{i}.atlanta.com"))
                                          for i, basic in tuples), (Note(note),) if note else ()))


class Notifier:
    def __init__(self) -> None:
        self.changes: list[tuple[str, str]] = []

    def changed(self, event: str, resource: str, hint: frozenset[str] = frozenset()) -> None:
        self.changes.append((event, resource))

    def reauthorize(self, event: str, resource: str, watcher: str | None = None) -> None:
        raise AssertionError("the presence package never changes rules")


class Rules:
    def __init__(self, table: dict[tuple[str, str], Authorization]) -> None:
        self.table = table

    def decide(self, presentity: str, watcher: str) -> Authorization:
        return self.table.get((presentity, watcher), Authorization.PENDING)


class World:
    def __init__(self, url: str, epoch: float = EPOCH, users: bool = False, scheduler: ManualScheduler | None = None) -> None:
        self.scheduler = scheduler or ManualScheduler(seed=2)
        set_default_scheduler(self.scheduler)
        self.store = open_store(url)
        if users:
            for user in ("alice", "bob"):
                self.store.users.add(user, "atlanta.com", "atlanta.com", {"SHA-256": ha1(user, "atlanta.com", "secret", "SHA-256")})
        self.clock = wall_clock(self.scheduler, epoch)
        self.bindings: dict[str, list[Binding]] = {}
        self.package = PresencePackage(
            self.store.publications, POLICY, lambda aor, now: [b for b in self.bindings.get(aor, []) if b.expires > now],
            self.clock, lambda n: next(SERIAL).to_bytes(n, "big"), authenticator=Authenticator(b"k" * 32),
            users=self.store.users,
        )
        self.notifier = Notifier()
        self.package.attach(self.notifier)
        self.restored = self.package.restore()
        self.scheduler.run_until_idle()

    def publish(self, body: bytes = b"", *, if_match: str | None = None, expires: int | None = None,
                authorization: str | None = None) -> Response:
        lines = [
            f"PUBLISH {ALICE} SIP/2.0", "Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKp", "Max-Forwards: 70",
            f"To: <{ALICE}>", f"From: <{ALICE}>;tag=1", "Call-ID: p", "CSeq: 1 PUBLISH", "Event: presence",
            *([f"SIP-If-Match: {if_match}"] if if_match else []), *([f"Expires: {expires}"] if expires is not None else []),
            *(["Content-Type: application/pidf+xml"] if body else []), f"Content-Length: {len(body)}",
            *([f"Authorization: {authorization}"] if authorization else []),
        ]
        request = parse(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        assert isinstance(request, Request) and self.package.serves(request)
        answers: list[Response] = []
        self.package.handle(request, "tag", answers.append)
        self.scheduler.run_until_idle()
        (response,) = answers
        return response

    def tuples(self) -> list[tuple[str, str | None]]:
        return [(t.id, t.status.basic) for t in parse_pidf(self.package.document(ALICE)).tuples]

    def stored(self) -> list[str]:
        return [p.etag for p in self.store.publications.all(0.0)]


@pytest.fixture
def url(tmp_path: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp_path / 'presence.db'}"
    set_default_scheduler(None)


def info(watcher: str, resource: str = ALICE) -> SubscriptionInfo:
    return SubscriptionInfo("id", "presence", resource, watcher, (), frozenset())


# ------------------------------------------------------------------------------------------- PUBLISH
def test_publish_refresh_modify_remove_each_get_a_new_tag_rfc3903_6(url: str) -> None:
    world = World(url)
    first = world.publish(pidf(("pc", "open")), expires=600)
    tag = first.header("SIP-ETag")
    assert first.status == 200 and first.header("Expires") == 600 and world.stored() == [tag]
    assert world.tuples() == [("pc", "open")] and world.notifier.changes == [("presence", ALICE)]
    refreshed = world.publish(if_match=tag, expires=600)
    new_tag = refreshed.header("SIP-ETag")
    assert refreshed.status == 200 and new_tag != tag and world.stored() == [new_tag]
    assert world.notifier.changes == [("presence", ALICE)]  # a refresh changes no state: no NOTIFY
    assert world.publish(if_match=tag).status == 412  # the old tag was replaced (§6 step 6)
    modified = world.publish(pidf(("pc", "closed")), if_match=new_tag)
    assert modified.status == 200 and world.tuples() == [("pc", "closed")] and len(world.notifier.changes) == 2
    removed = world.publish(if_match=modified.header("SIP-ETag"), expires=0)
    assert removed.status == 200 and removed.header("Expires") == 0 and world.stored() == []
    assert world.tuples() == [("offline", "closed")] and len(world.notifier.changes) == 3
    world.scheduler.run_until_idle()
    assert world.package.actors == {}


def test_a_bad_pidf_gets_400_and_nothing_is_stored_rfc3903_6_step_5(url: str) -> None:
    world = World(url)
    response = world.publish(pidf(("pc", "open")).replace(b"<status><basic>open</basic></status>", b""))
    assert (response.status, response.reason) == (400, "Bad PIDF: tuple pc Without status")
    assert world.stored() == [] and world.package.actors == {} and world.notifier.changes == []


def test_a_publication_expires_on_its_actors_timer_unless_refreshed_rfc3903_6_step_5(url: str) -> None:
    world = World(url)
    tag = world.publish(pidf(("pc", "open")), expires=120).header("SIP-ETag")
    world.scheduler.advance(100_000)
    tag = world.publish(if_match=tag, expires=120).header("SIP-ETag")  # 100 s in: a refresh for 120 s more
    world.scheduler.advance(100_000)  # 200 s: past the first interval, within the refresh's
    assert world.stored() == [tag] and world.tuples() == [("pc", "open")]
    world.scheduler.advance(20_001)
    assert world.stored() == [] and world.package.actors == {}
    assert world.tuples() == [("offline", "closed")] and world.notifier.changes[-1] == ("presence", ALICE)
    assert world.publish(if_match=tag).status == 412



class _Bounded(ManualScheduler):
    """A virtual clock that fails (RuntimeError) instead of spinning when work never ends at one instant."""

    def run_until_idle(self, max_steps: int = 10_000) -> int:
        return super().run_until_idle(max_steps)


def test_a_publication_whose_timer_fires_a_fraction_of_a_millisecond_early_expires_once_rfc3903_6(url: str) -> None:
    """Timers run in whole milliseconds: a publication restored with 60 000.4 ms left has its timer fire
    0.4 ms before its wall-clock expiry, which the actor's ``due`` guard takes as the expiry. The package
    must too (found by tests/conformance/test_presence.py: it gave the publication to a new actor, whose
    timer was due at once, and so on forever, at one instant of the virtual clock)."""
    first = World(url)
    first.scheduler.advance(0.4)
    assert first.publish(pidf(("pc", "open")), expires=60).status == 200
    first.store.close()
    world = World(url, scheduler=_Bounded(seed=2))  # the same epoch: the publication has 60.0004 s left
    assert world.restored == 1
    world.scheduler.advance(60_001)
    assert world.stored() == [] and world.package.actors == {}
    assert world.tuples() == [("offline", "closed")] and world.notifier.changes == [("presence", ALICE)]

def test_with_users_only_the_authenticated_presentity_publishes_rfc3903_14_1(url: str) -> None:
    world = World(url, users=True)
    challenge = world.publish(pidf(("pc", "open")))
    assert challenge.status == 401 and world.stored() == []
    offer = next(value for value in challenge.header_text("WWW-Authenticate").split(", Digest") if "SHA-256" in value)
    nonce = re.search(r'nonce="([^"]*)"', offer).group(1)  # type: ignore[union-attr]
    opaque = re.search(r'opaque="([^"]*)"', offer).group(1)  # type: ignore[union-attr]

    def credentials(user: str, nc: str) -> str:
        digest = request_digest(ha1(user, "atlanta.com", "secret", "SHA-256"), "SHA-256", nonce, nc, "c0ffee",
                                "PUBLISH", ALICE)
        return (f'Digest username="{user}", realm="atlanta.com", nonce="{nonce}", uri="{ALICE}", response="{digest}", '
                f'algorithm=SHA-256, qop=auth, nc={nc}, cnonce="c0ffee", opaque="{opaque}"')

    assert world.publish(pidf(("pc", "open")), authorization=credentials("bob", "00000001")).status == 403  # not bob's
    assert world.stored() == []
    assert world.publish(pidf(("pc", "open")), authorization=credentials("alice", "00000002")).status == 200
    assert len(world.stored()) == 1


# --------------------------------------------------------------------------------------- composition
def test_the_state_is_the_union_of_every_devices_publication_the_newer_tuple_winning_rfc3856_7_3(url: str) -> None:
    world = World(url)
    world.publish(pidf(("phone", "open"), ("shared", "open"), note="on the road"))
    world.scheduler.advance(1_000)
    world.publish(pidf(("pc", "closed"), ("shared", "closed"), note="in a meeting"))
    document = parse_pidf(world.package.document(ALICE))
    assert [(t.id, t.status.basic) for t in document.tuples] == [("phone", "open"), ("shared", "closed"), ("pc", "closed")]
    assert document.notes == (Note("on the road"), Note("in a meeting")) and document.entity == ALICE


def test_with_nothing_published_the_state_is_the_registration_state_rfc3856_7_2(url: str) -> None:
    world = World(url)
    assert world.tuples() == [("offline", "closed")]
    world.bindings[ALICE] = [Binding(ALICE, "sip:alice@192.0.2.1", EPOCH + 60, "c", 1, q=0.5),
                             Binding(ALICE, "sip:alice@192.0.2.2", EPOCH + 60, "c", 1)]
    world.package.registration_changed(ALICE)
    assert world.tuples() == [(registration_tuple_id("sip:alice@192.0.2.1"), "open"),
                              (registration_tuple_id("sip:alice@192.0.2.2"), "open")]
    assert parse_pidf(world.package.document(ALICE)).tuples[0].contact == Contact("sip:alice@192.0.2.1", "0.5")
    assert world.notifier.changes == [("presence", ALICE)]
    world.package.registration_changed(ALICE)  # a refresh of the same bindings: nothing to tell
    assert world.notifier.changes == [("presence", ALICE)]
    world.publish(pidf(("pc", "closed")))  # a publication takes precedence over registrations
    assert world.tuples() == [("pc", "closed")]


def test_registrar_tells_the_package_of_each_binding_added_and_expired(url: str) -> None:
    world = World(url)
    registrar = Registrar(world.store, REGISTRAR_POLICY, Authenticator(b"k" * 32), world.clock, lambda n: b"s" * n)
    world.package.locations = registrar.bindings
    registrar.observers.append(world.package.registration_changed)
    answers: list[Response] = []
    registrar.handle(register(["<sip:alice@192.0.2.1>"], expires=60), "t", answers.append)
    world.scheduler.run_until_idle()
    assert [a.status for a in answers] == [200] and world.tuples() == [(registration_tuple_id("sip:alice@192.0.2.1"), "open")]
    assert world.notifier.changes == [("presence", ALICE)]
    world.scheduler.advance(60_001)
    assert world.tuples() == [("offline", "closed")] and world.notifier.changes == [("presence", ALICE)] * 2


def test_compose_is_pure_and_the_neutral_state_says_nothing_rfc5025() -> None:
    assert compose(ALICE, [], []) == Presence(ALICE, (Tuple("offline", Status("closed"), Contact(ALICE)),))
    assert neutral(ALICE) == Presence(ALICE, (Tuple("neutral", Status("closed")),))


# --------------------------------------------------------------------------------- the event package
def test_authorization_and_bodies_per_watcher_rfc3856_6_6_2(url: str) -> None:
    world = World(url)
    world.package.rules = Rules({(ALICE, "sip:bob@biloxi.com"): Authorization.ALLOW,
                                 (ALICE, "sip:eve@evil.com"): Authorization.POLITE_BLOCK,
                                 (ALICE, "sip:mallory@evil.com"): Authorization.BLOCK})
    world.publish(pidf(("pc", "open"), note="secret"))
    package = world.package
    assert package.authorize(info(ALICE)) is Authorization.ALLOW  # a presentity watches itself
    assert package.authorize(info("sip:carol@chicago.com")) is Authorization.PENDING  # nobody said
    for watcher, expected in [("sip:bob@biloxi.com", package.document(ALICE)),
                              ("sip:eve@evil.com", generate(neutral(ALICE))),
                              ("sip:mallory@evil.com", None), ("sip:carol@chicago.com", None)]:
        authorization = package.authorize(info(watcher))
        body = package.body(info(watcher), authorization)
        assert (body.data if body is not None else None) == expected
        if body is not None:
            assert body.content_type == "application/pidf+xml"
    assert package.content_types() == ("application/pidf+xml",)
    assert package.resource_exists(ALICE) and not package.resource_exists("sip:alice@elsewhere.org")


# ---------------------------------------------------------------------------------------------- restart
def test_publications_survive_a_restart_with_the_time_they_have_left_rfc3903_8_3(url: str) -> None:
    world = World(url)
    tag = world.publish(pidf(("pc", "open")), expires=300).header("SIP-ETag")
    world.store.close()
    later = World(url, epoch=EPOCH + 100)  # the server comes back 100 s later
    assert later.restored == 1 and later.tuples() == [("pc", "open")]
    refreshed = later.publish(if_match=tag, expires=300)
    assert refreshed.status == 200
    later.scheduler.advance(300_001)
    assert later.stored() == [] and later.tuples() == [("offline", "closed")]
    later.store.close()
    gone = World(url, epoch=EPOCH + 1000)
    assert gone.restored == 0


# ------------------------------------------------------------------------------------------ the core
def test_the_core_hands_local_publish_to_the_presence_role_and_others_to_the_proxy_rfc3903_6(url: str) -> None:
    world = World(url)
    proxy = FakeProxy()
    core = Core("test", None, proxy, presence=world.package)
    layer = Layer()
    options = _request("OPTIONS", "sip:atlanta.com")
    core.request(layer, "k1", options)
    (answer,) = layer.answers
    assert "PUBLISH" in answer.header_text("Allow") and answer.header_text("Allow-Events") == "presence"  # RFC 3903 §7
    core.request(layer, "k2", _request("PUBLISH", ALICE))  # no Event header: ours, 489 (§6 step 2)
    assert layer.answers[-1].status == 489 and proxy.calls == []
    core.request(layer, "k3", _request("PUBLISH", "sip:carol@chicago.com"))  # another domain's presentity
    assert proxy.calls == [("request", "PUBLISH")] and len(layer.answers) == 2
    assert core.allow.count("PUBLISH") == 1
