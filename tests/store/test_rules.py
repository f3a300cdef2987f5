"""Watcher authorization rules in the store (``sipactors.store.rules``): memory and SQLite alike, the
revision that lets the server notice a write by another process, and survival across a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sipactors.roles.events import Authorization
from sipactors.store import MemoryStore, SqliteStore, open_store
from sipactors.store.rules import (
    ANY_WATCHER,
    MemoryRuleStore,
    Rule,
    RuleStore,
    canonical_presentity,
    canonical_watcher,
    parse_action,
)

ALICE, BOB = "sip:alice@example.com", "sip:bob@example.com"


@pytest.fixture(params=["memory", "sqlite"])
def rules(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[RuleStore]:
    store = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "rules.db")
    with store:
        yield store.presence_rules


def test_set_replaces_the_rule_for_the_same_watcher_and_says_whether_it_is_new(rules: RuleStore) -> None:
    assert rules.set(ALICE, BOB, Authorization.ALLOW) is True
    assert rules.set(ALICE, BOB, Authorization.BLOCK) is False
    assert rules.rules() == [Rule(ALICE, BOB, Authorization.BLOCK)]


def test_lookup_answers_only_for_the_watchers_that_have_a_rule(rules: RuleStore) -> None:
    rules.set(ALICE, BOB, Authorization.ALLOW)
    rules.set(ALICE, "*@example.org", Authorization.POLITE_BLOCK)
    rules.set(BOB, ANY_WATCHER, Authorization.BLOCK)
    assert rules.lookup(ALICE, (BOB, "*@example.org", ANY_WATCHER)) == {
        BOB: Authorization.ALLOW, "*@example.org": Authorization.POLITE_BLOCK,
    }
    assert rules.lookup(ALICE, ()) == {}


def test_forget_removes_one_rule_and_reports_a_missing_one(rules: RuleStore) -> None:
    rules.set(ALICE, BOB, Authorization.ALLOW)
    rules.set(ALICE, ANY_WATCHER, Authorization.BLOCK)
    assert rules.forget(ALICE, BOB) is True
    assert rules.forget(ALICE, BOB) is False
    assert rules.rules(ALICE) == [Rule(ALICE, ANY_WATCHER, Authorization.BLOCK)]
    assert rules.rules(BOB) == []


def test_every_write_moves_the_revision_and_names_its_presentity(rules: RuleStore) -> None:
    assert rules.changed_since(0) == (0, [])
    rules.set(ALICE, BOB, Authorization.ALLOW)
    first = rules.revision()
    rules.set(BOB, ALICE, Authorization.ALLOW)
    rules.set(BOB, ALICE, Authorization.BLOCK)
    assert rules.changed_since(0) == (rules.revision(), [ALICE, BOB])
    assert rules.changed_since(first) == (rules.revision(), [BOB])
    before = rules.revision()
    assert rules.forget(ALICE, "sip:nobody@example.com") is False  # nothing written, nothing to notice
    assert rules.revision() == before
    rules.forget(ALICE, BOB)
    assert rules.changed_since(before) == (rules.revision(), [ALICE])


def test_rules_survive_a_restart_with_their_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sipactors.db'}"
    with open_store(url) as store:
        store.presence_rules.set(ALICE, BOB, Authorization.POLITE_BLOCK)
        store.presence_rules.set(ALICE, "*@example.org", Authorization.BLOCK)
        revision = store.presence_rules.revision()
    with open_store(url) as store:
        assert store.presence_rules.rules() == [
            Rule(ALICE, "*@example.org", Authorization.BLOCK), Rule(ALICE, BOB, Authorization.POLITE_BLOCK),
        ]
        assert store.presence_rules.revision() == revision


def test_a_second_connection_sees_the_write_and_its_revision(tmp_path: Path) -> None:
    path = tmp_path / "sipactors.db"
    with SqliteStore(path) as server, SqliteStore(path) as cli:
        start = server.presence_rules.revision()
        cli.presence_rules.set(ALICE, BOB, Authorization.ALLOW)
        assert server.presence_rules.revision() > start
        assert server.presence_rules.changed_since(start)[1] == [ALICE]
        assert server.presence_rules.lookup(ALICE, (BOB,)) == {BOB: Authorization.ALLOW}


_names = st.sampled_from(["sip:a@x.org", "sip:b@x.org", "sip:c@y.org"])
_watchers = st.sampled_from(["sip:a@x.org", "sip:d@y.org", "*@x.org", "*"])
_actions = st.sampled_from(list(Authorization))
_operations = st.lists(st.tuples(st.booleans(), _names, _watchers, _actions), max_size=20)


@given(_operations)
def test_the_sqlite_store_behaves_as_the_memory_store(operations: list[tuple[bool, str, str, Authorization]]) -> None:
    model = MemoryRuleStore()
    with SqliteStore(":memory:") as store:
        real = store.presence_rules
        for write, presentity, watcher, action in operations:
            if write:
                assert real.set(presentity, watcher, action) == model.set(presentity, watcher, action)
            else:
                assert real.forget(presentity, watcher) == model.forget(presentity, watcher)
            assert real.revision() == model.revision()
        assert real.rules() == model.rules()
        for revision in range(model.revision() + 1):
            assert real.changed_since(revision) == model.changed_since(revision)


@pytest.mark.parametrize(("text", "expected"), [
    ("bob", "sip:bob@example.com"),
    ("bob@Example.COM", "sip:bob@example.com"),
    ("sip:Bob@EXAMPLE.com;transport=tcp", "sip:Bob@example.com"),
    ("tel:+1-201-555-0123", "tel:+12015550123"),
    ("*@Example.ORG", "*@example.org"),
    ("*@[2001:DB8::1]", "*@[2001:db8::1]"),
    ("*", "*"),
])
def test_watchers_are_stored_in_canonical_form(text: str, expected: str) -> None:
    assert canonical_watcher(text, "example.com") == expected


@pytest.mark.parametrize("text", ["bob", "*@", "*@a@b", "*@bad host", "*@example.com:5060", "*@[2001:db8::1]:5060"])
def test_a_watcher_without_a_domain_or_a_bad_domain_rule_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        canonical_watcher(text)


def test_presentities_and_actions() -> None:
    assert canonical_presentity("alice", "example.com") == ALICE
    assert canonical_presentity("sips:alice@example.com") == "sips:alice@example.com"
    assert parse_action(" Polite-Block ") is Authorization.POLITE_BLOCK
    assert parse_action("confirm") is Authorization.PENDING
    with pytest.raises(ValueError, match="allow, confirm, block, polite-block"):
        parse_action("permit")
