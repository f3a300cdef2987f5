"""``RulesPoller``: a rule written by another connection (the CLI's process) reaches the notifier within a
second of the virtual clock (RFC 5025 §3.2.1: a change of sub-handling moves the affected subscriptions)."""

from __future__ import annotations

from pathlib import Path

from sipactors.roles.events import Authorization
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
