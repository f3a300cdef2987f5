"""Stored subscriptions (sipactors/store/subscriptions.py) over every store configuration: a record comes
back as it was saved (dialog, Event id, Accept, Supported, expiry, state), is replaced by id, removed, and
purged once expired; an SQLite file keeps it across a reopen."""

from __future__ import annotations

from pathlib import Path

from sipactors.store import MemoryStore, SqliteStore, open_store
from sipactors.store.subscriptions import SubscriptionRecord

RECORD = SubscriptionRecord(
    "c1;n1;a1;presence;7", "c1", "n1", "a1", "sip:bob@example.com", "sip:alice@example.com", "sip:alice@192.0.2.1",
    ("sip:p1.example.com;lr",), 4, 2, "presence", "7", "sip:bob@example.com", "sip:alice@example.com",
    ("application/pidf+xml",), frozenset({"eventlist"}), 1_800_000_600.5, "active", "allow", ("192.0.2.1", 5060),
)


def test_save_get_replace_delete(store: MemoryStore | SqliteStore) -> None:
    subscriptions = store.subscriptions
    subscriptions.save(RECORD)
    assert subscriptions.get(RECORD.id) == RECORD and subscriptions.all() == [RECORD]
    subscriptions.save(RECORD.with_cseq(9))
    assert subscriptions.all() == [RECORD.with_cseq(9)]
    assert subscriptions.delete(RECORD.id) == 1 and subscriptions.delete(RECORD.id) == 0
    assert subscriptions.get(RECORD.id) is None and subscriptions.all() == []


def test_purge_removes_what_expired(store: MemoryStore | SqliteStore) -> None:
    store.subscriptions.save(RECORD)
    assert store.subscriptions.purge(RECORD.expires - 1) == 0
    assert store.subscriptions.purge(RECORD.expires) == 1 and store.subscriptions.all() == []


def test_an_sqlite_file_keeps_subscriptions_across_a_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(url) as store:
        store.subscriptions.save(RECORD)
    with open_store(url) as store:
        assert store.subscriptions.all() == [RECORD]
