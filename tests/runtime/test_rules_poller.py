"""``RulesPoller``: a rule written by another connection (the CLI's process) reaches the notifier within a
second of the virtual clock (RFC 5025 §3.2.1: a change of sub-handling moves the affected subscriptions)."""

from __future__ import annotations

from pathlib import Path

from sipactors.roles.authorization import WatcherRules
from sipactors.roles.events import Authorization, Body, EventPackage, SubscriptionInfo
from sipactors.roles.winfo import WatchedPackage, WatcherList, WinfoPackage, parse
from sipactors.rules_admin import run_presence
from sipactors.runtime import ManualScheduler
from sipactors.runtime.rules import RulesPoller
from sipactors.store import MemoryStore, SqliteStore

ALICE = "sip:alice@example.com"


class FakeNotifier:
    def __init__(self) -> None:
        self.reauthorized: list[tuple[str, str, str | None]] = []

    def changed(self, event: str, resource: str, hint: frozenset[str] = frozenset()) -> None:
        raise AssertionError("the poller only reauthorizes")

    def reauthorize(self, event: str, resource: str, watcher: str | None = None) -> None:
        self.reauthorized.append((event, resource, watcher))


def test_the_poller_notices_a_cli_write_made_by_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "sipactors.db"
    scheduler, notifier, seen = ManualScheduler(), FakeNotifier(), []
    with SqliteStore(path) as server:
        server.presence_rules.set(ALICE, "*", Authorization.PENDING)  # before the start: already known
        poller = RulesPoller(server.presence_rules, scheduler, notifier, listeners=[seen.append])
        poller.start()
        assert run_presence("allow", f"sqlite:///{path}", "alice@example.com", "bob@example.org") == 0
        scheduler.advance(999)
        assert notifier.reauthorized == []
        scheduler.advance(1)
        assert notifier.reauthorized == [("presence", ALICE, None)]
        assert seen == [ALICE]
        scheduler.advance(5000)  # nothing more written: nothing more said
        assert notifier.reauthorized == [("presence", ALICE, None)]
        with SqliteStore(path) as cli:
            cli.presence_rules.set("sip:carol@example.com", "*", Authorization.ALLOW)
            cli.presence_rules.set("sip:dave@example.com", "*", Authorization.ALLOW)
            cli.presence_rules.forget(ALICE, "sip:bob@example.org")
        scheduler.advance(1000)
        assert notifier.reauthorized[1:] == [
            ("presence", ALICE, None), ("presence", "sip:carol@example.com", None),
            ("presence", "sip:dave@example.com", None),
        ]
        poller.stop()
        server.presence_rules.set(ALICE, "*", Authorization.BLOCK)
        scheduler.advance(5000)
        assert len(notifier.reauthorized) == 4


def test_every_watched_event_is_reauthorized_and_poll_answers_the_presentities() -> None:
    store, notifier = MemoryStore(), FakeNotifier()
    poller = RulesPoller(store.presence_rules, ManualScheduler(), notifier, events=("presence", "presence.winfo"))
    assert poller.poll() == []
    store.presence_rules.set(ALICE, "*", Authorization.ALLOW)
    assert poller.poll() == [ALICE]
    assert notifier.reauthorized == [("presence", ALICE, None), ("presence.winfo", ALICE, None)]
    assert poller.poll() == []


def test_a_failing_look_is_logged_and_the_polling_goes_on() -> None:
    store, notifier, scheduler = MemoryStore(), FakeNotifier(), ManualScheduler()
    rules = store.presence_rules
    poller = RulesPoller(rules, scheduler, notifier)
    calls = {"n": 0}
    real = rules.revision

    def flaky() -> int:
        calls["n"] += 1
        if calls["n"] == 1:
            raise OSError("database is locked")
        return real()

    rules.revision = flaky  # type: ignore[method-assign]
    poller.start()
    rules.set(ALICE, "*", Authorization.ALLOW)
    scheduler.advance(1000)
    assert notifier.reauthorized == []
    scheduler.advance(1000)
    assert notifier.reauthorized == [("presence", ALICE, None)]


class SmallNotifier:
    """The part of the notifier this flow needs: it holds subscriptions, asks ``authorize`` again on
    ``reauthorize`` and reports a changed authorization with ``started`` (events.py contract, rule 3)."""

    def __init__(self) -> None:
        self.packages: dict[str, EventPackage] = {}
        self.subscriptions: dict[str, tuple[SubscriptionInfo, Authorization]] = {}
        self.changes: list[tuple[str, str, frozenset[str]]] = []

    def subscribe(self, info: SubscriptionInfo) -> Authorization:
        authorization = self.packages[info.event].authorize(info)
        self.subscriptions[info.id] = (info, authorization)
        self.packages[info.event].started(info, authorization)
        return authorization

    def changed(self, event: str, resource: str, hint: frozenset[str] = frozenset()) -> None:
        self.changes.append((event, resource, hint))

    def reauthorize(self, event: str, resource: str, watcher: str | None = None) -> None:
        for key, (info, before) in list(self.subscriptions.items()):
            if info.event == event and info.resource == resource and watcher in (None, info.watcher):
                after = self.packages[event].authorize(info)
                if after is not before:
                    self.subscriptions[key] = (info, after)
                    self.packages[event].started(info, after)


class RulesPackage:
    """A presence package reduced to what authorization needs: it asks ``WatcherRules.decide``."""

    event = "presence"

    def __init__(self, rules: WatcherRules) -> None:
        self.rules = rules

    def content_types(self) -> tuple[str, ...]:
        return ("application/pidf+xml",)

    def resource_exists(self, resource: str) -> bool:
        return True

    def authorize(self, subscription: SubscriptionInfo) -> Authorization:
        return self.rules.decide(subscription.resource, subscription.watcher)

    def body(self, subscription: SubscriptionInfo, authorization: Authorization, *, full: bool = True,
             changed: frozenset[str] = frozenset()) -> Body | None:
        return None

    def started(self, subscription: SubscriptionInfo, authorization: Authorization) -> None:
        pass

    def ended(self, subscription: SubscriptionInfo, reason: str) -> None:
        pass


def test_approval_from_the_cli_turns_a_pending_watcher_active_in_alices_watcher_information(tmp_path: Path) -> None:
    """RFC 3857 §3.1: bob subscribes, is pending; alice learns it from presence.winfo and approves him
    (here from the command line); the server notices, bob becomes active with event "approved"."""
    path = tmp_path / "sipactors.db"
    scheduler, notifier = ManualScheduler(), SmallNotifier()
    with SqliteStore(path) as store:
        rules = WatcherRules(store.presence_rules)
        watchers = WatcherList(notifier)
        winfo = WinfoPackage(watchers, lambda resource: True)
        notifier.packages = {"presence": WatchedPackage(RulesPackage(rules), watchers), "presence.winfo": winfo}
        poller = RulesPoller(store.presence_rules, scheduler, notifier,
                             listeners=[lambda presentity: watchers.reconsider(presentity, rules.decide)])
        poller.start()
        bob = SubscriptionInfo("c1@h;t1;t2;", "presence", ALICE, "sip:bob@example.org", (), frozenset())
        own = SubscriptionInfo("c2@h;t3;t4;", "presence.winfo", ALICE, ALICE, (), frozenset())
        assert notifier.subscribe(bob) is Authorization.PENDING
        assert notifier.subscribe(own) is Authorization.ALLOW
        first = parse(winfo.body(own, Authorization.ALLOW).data)  # type: ignore[union-attr]
        assert [(w.uri, w.status, w.event) for w in first.lists[0].watchers] == [
            ("sip:bob@example.org", "pending", "subscribe")]
        assert run_presence("allow", f"sqlite:///{path}", "alice@example.com", "bob@example.org") == 0
        scheduler.advance(1000)
        assert notifier.subscriptions[bob.id][1] is Authorization.ALLOW
        assert notifier.changes[-1][:2] == ("presence.winfo", ALICE)
        now = parse(winfo.body(own, Authorization.ALLOW).data)  # type: ignore[union-attr]
        assert (now.version, [(w.uri, w.status, w.event) for w in now.lists[0].watchers]) == (
            1, [("sip:bob@example.org", "active", "approved")])
