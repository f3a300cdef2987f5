"""Stored subscriptions (RFC 6665 §4.2): what a notifier needs to take each live subscription up again
after a restart — its dialog (RFC 3261 §12: Call-ID, tags, remote target, route set, both CSeqs), its
Event type and id, resource, watcher, Accept and Supported, absolute expiry and state.

``SubscriptionStore`` is the interface; ``MemorySubscriptionStore`` and ``SqliteSubscriptionStore`` (its
own table in the node's SQLite file, created if absent) implement it. The notifier writes a record
before each NOTIFY it sends (the local CSeq among it), so a restarted notifier never reuses a CSeq.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sipactors.store.sqlite import _Database

__all__ = ["MemorySubscriptionStore", "SqliteSubscriptionStore", "SubscriptionRecord", "SubscriptionStore"]


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    """One subscription as stored."""

    id: str  # the dialog ID and the Event type and id (RFC 6665 §4.1.2), as SubscriptionInfo.id
    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str  # the SUBSCRIBE's To URI: the NOTIFY's From
    remote_uri: str  # the SUBSCRIBE's From URI: the NOTIFY's To
    remote_target: str
    route_set: tuple[str, ...]
    local_cseq: int
    remote_cseq: int
    event: str
    event_id: str | None
    resource: str
    watcher: str
    accept: tuple[str, ...]
    supported: frozenset[str]
    expires: float  # absolute, POSIX seconds
    state: str  # "active" or "pending"
    authorization: str  # an Authorization value
    destination: tuple[str, int] | None = None  # where the SUBSCRIBE came from (the NOTIFY's fallback hop)

    def with_cseq(self, local_cseq: int) -> SubscriptionRecord:
        return replace(self, local_cseq=local_cseq)


class SubscriptionStore(Protocol):
    def save(self, record: SubscriptionRecord) -> None:
        """Insert or replace the record with this id."""
        ...

    def delete(self, id: str) -> int:
        """Remove the record; how many were removed (0 or 1)."""
        ...

    def get(self, id: str) -> SubscriptionRecord | None: ...

    def all(self) -> list[SubscriptionRecord]:
        """Every record, ordered by id."""
        ...

    def purge(self, now: float) -> int:
        """Remove the records whose expiry is past ``now``; how many."""
        ...


class MemorySubscriptionStore:
    def __init__(self) -> None:
        self._records: dict[str, SubscriptionRecord] = {}

    def save(self, record: SubscriptionRecord) -> None:
        self._records[record.id] = record

    def delete(self, id: str) -> int:
        return 1 if self._records.pop(id, None) is not None else 0

    def get(self, id: str) -> SubscriptionRecord | None:
        return self._records.get(id)

    def all(self) -> list[SubscriptionRecord]:
        return [self._records[key] for key in sorted(self._records)]

    def purge(self, now: float) -> int:
        gone = [key for key, record in self._records.items() if record.expires <= now]
        for key in gone:
            del self._records[key]
        return len(gone)


_COLUMNS = ("id, call_id, local_tag, remote_tag, local_uri, remote_uri, remote_target, route_set, local_cseq, "
            "remote_cseq, event, event_id, resource, watcher, accept, supported, expires, state, authorization, "
            "destination")
_SCHEMA = """CREATE TABLE IF NOT EXISTS subscriptions (
    id TEXT PRIMARY KEY, call_id TEXT NOT NULL, local_tag TEXT NOT NULL, remote_tag TEXT NOT NULL,
    local_uri TEXT NOT NULL, remote_uri TEXT NOT NULL, remote_target TEXT NOT NULL, route_set TEXT NOT NULL,
    local_cseq INTEGER NOT NULL, remote_cseq INTEGER NOT NULL, event TEXT NOT NULL, event_id TEXT,
    resource TEXT NOT NULL, watcher TEXT NOT NULL, accept TEXT NOT NULL, supported TEXT NOT NULL,
    expires REAL NOT NULL, state TEXT NOT NULL, authorization TEXT NOT NULL, destination TEXT
)"""
assert _COLUMNS.count(",") == 19  # twenty columns, in the order of SubscriptionRecord's fields


def _row(r: SubscriptionRecord) -> tuple[object, ...]:
    return (r.id, r.call_id, r.local_tag, r.remote_tag, r.local_uri, r.remote_uri, r.remote_target,
            json.dumps(list(r.route_set)), r.local_cseq, r.remote_cseq, r.event, r.event_id, r.resource, r.watcher,
            json.dumps(list(r.accept)), json.dumps(sorted(r.supported)), r.expires, r.state, r.authorization,
            json.dumps(list(r.destination)) if r.destination is not None else None)


def _record(row: tuple[object, ...]) -> SubscriptionRecord:
    values = list(row)
    values[7] = tuple(json.loads(str(values[7])))
    values[14] = tuple(json.loads(str(values[14])))
    values[15] = frozenset(json.loads(str(values[15])))
    destination = values[19]
    values[19] = tuple(json.loads(str(destination))) if destination is not None else None
    return SubscriptionRecord(*values)  # type: ignore[arg-type]


class SqliteSubscriptionStore:
    """The subscriptions table of an SQLite store (``SqliteStore.subscriptions``)."""

    def __init__(self, database: _Database) -> None:
        self._db = database
        with database.transaction() as cursor:
            cursor.execute(_SCHEMA)

    def save(self, record: SubscriptionRecord) -> None:
        with self._db.transaction() as cursor:
            cursor.execute(f"INSERT OR REPLACE INTO subscriptions ({_COLUMNS}) VALUES ({', '.join('?' * 20)})",
                           _row(record))

    def delete(self, id: str) -> int:
        with self._db.transaction() as cursor:
            return cursor.execute("DELETE FROM subscriptions WHERE id = ?", (id,)).rowcount

    def get(self, id: str) -> SubscriptionRecord | None:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM subscriptions WHERE id = ?", (id,))
        return _record(rows[0]) if rows else None

    def all(self) -> list[SubscriptionRecord]:
        return [_record(row) for row in self._db.query(f"SELECT {_COLUMNS} FROM subscriptions ORDER BY id")]

    def purge(self, now: float) -> int:
        with self._db.transaction() as cursor:
            return cursor.execute("DELETE FROM subscriptions WHERE expires <= ?", (now,)).rowcount
