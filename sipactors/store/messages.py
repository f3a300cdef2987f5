"""Stored instant messages (RFC 3428 §7: a relay "storing the message and forwarding it later on"): the
MESSAGEs a store-and-forward server accepted with ``202`` for an address-of-record that had no device
registered, kept until a device registers and takes them, or until they expire.

One small interface (DESIGN §4), two implementations that behave alike: ``MemoryMessageStore`` (unit
tests, ``memory:``) and ``SqliteMessageStore`` (its own table in the server's SQLite file, created with
``CREATE TABLE IF NOT EXISTS`` so that the location store's schema version is untouched).

Rules of the module:

1. Time is an argument (``now``: POSIX seconds, the wall clock: a stored message outlives the process);
   nothing here reads a clock. A message whose ``expires`` is not after ``now`` is gone for every reader.
2. ``add`` returns once the message is committed (SQLite: ``BEGIN IMMEDIATE`` ... ``COMMIT`` with the
   file's ``synchronous`` setting, FULL by default): the server sends its ``202`` only after that, so an
   accepted message survives ``kill -9`` (RFC 3428 §7: 202 means "accepted for delivery").
3. Messages of one AOR come back oldest first (the order they were received, ties by id), the order the
   server delivers them in.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sipactors.store.sqlite import _Database

__all__ = ["MESSAGES_SCHEMA", "MemoryMessageStore", "MessageStore", "SqliteMessageStore", "StoredMessage"]


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """One MESSAGE kept for later delivery: what the delivered MESSAGE carries again (From, To, Date,
    Content-Type, body: RFC 3428 §4, RFC 3261 §20.17), who sent it if the proxy authenticated them, and
    when it arrived and stops being worth delivering."""

    aor: str  # canonical AOR of the recipient (RFC 3261 §10.3 step 5), as the location service keys it
    from_: str  # the From header field value, without its tag (each delivery is a new request, §8.1.1.3)
    to: str  # the To header field value (no tag: a MESSAGE outside a dialog has none)
    date: str  # the Date header field value (RFC 3261 §20.17), the sender's or the one added on arrival
    content_type: str | None
    body: bytes
    sender: str | None  # the user the proxy authenticated (RFC 3261 §22.3), None when nobody was
    received: float  # POSIX seconds
    expires: float  # POSIX seconds: after it the message is not delivered (RFC 3428 §7, local policy)
    id: int = 0  # given by the store


class MessageStore(Protocol):
    """Where accepted MESSAGEs wait for their recipient."""

    def add(self, message: StoredMessage) -> StoredMessage:
        """Keep ``message`` (committed when this returns); the message with its id."""
        ...

    def waiting(self, aor: str, now: float) -> list[StoredMessage]:
        """The unexpired messages of ``aor``, oldest first."""
        ...

    def count(self, aor: str, now: float) -> int:
        """How many unexpired messages ``aor`` has waiting."""
        ...

    def remove(self, message_id: int) -> int:
        """Delete one message (delivered, or dropped); how many went (0 or 1)."""
        ...

    def purge(self, now: float) -> int:
        """Delete every expired message; how many."""
        ...

    def all(self, now: float) -> list[StoredMessage]:
        """Every unexpired message, by AOR then oldest first (``sipactors messages list``)."""
        ...


def _order(message: StoredMessage) -> tuple[float, int]:
    return message.received, message.id


class MemoryMessageStore:
    def __init__(self) -> None:
        self._messages: dict[int, StoredMessage] = {}
        self._ids = itertools.count(1)

    def add(self, message: StoredMessage) -> StoredMessage:
        stored = replace(message, id=next(self._ids))
        self._messages[stored.id] = stored
        return stored

    def waiting(self, aor: str, now: float) -> list[StoredMessage]:
        return sorted((m for m in self._messages.values() if m.aor == aor and m.expires > now), key=_order)

    def count(self, aor: str, now: float) -> int:
        return sum(1 for m in self._messages.values() if m.aor == aor and m.expires > now)

    def remove(self, message_id: int) -> int:
        return 1 if self._messages.pop(message_id, None) is not None else 0

    def purge(self, now: float) -> int:
        gone = [key for key, m in self._messages.items() if m.expires <= now]
        for key in gone:
            del self._messages[key]
        return len(gone)

    def all(self, now: float) -> list[StoredMessage]:
        return sorted((m for m in self._messages.values() if m.expires > now), key=lambda m: (m.aor, *_order(m)))


#: The table of stored messages; its own, beside the location store's schema (version 1).
MESSAGES_SCHEMA = """
CREATE TABLE IF NOT EXISTS messages (
    id           INTEGER PRIMARY KEY,
    aor          TEXT    NOT NULL,      -- canonical AOR of the recipient, RFC 3261 §10.3 step 5
    from_header  TEXT    NOT NULL,      -- From, without its tag
    to_header    TEXT    NOT NULL,
    date         TEXT    NOT NULL,      -- Date header field value, RFC 3261 §20.17
    content_type TEXT,
    body         BLOB    NOT NULL,
    sender       TEXT,                  -- authenticated user, RFC 3261 §22.3 (NULL: none)
    received     REAL    NOT NULL,      -- POSIX seconds
    expires      REAL    NOT NULL       -- POSIX seconds
);
CREATE INDEX IF NOT EXISTS messages_by_aor ON messages (aor, received);
CREATE INDEX IF NOT EXISTS messages_by_expiry ON messages (expires)
"""

_COLUMNS = "id, aor, from_header, to_header, date, content_type, body, sender, received, expires"


def _message(row: Sequence[object]) -> StoredMessage:
    (id_, aor, from_, to, date, content_type, body, sender, received, expires) = row
    return StoredMessage(
        aor=str(aor), from_=str(from_), to=str(to), date=str(date),
        content_type=None if content_type is None else str(content_type), body=bytes(body),  # type: ignore[call-overload]
        sender=None if sender is None else str(sender), received=float(received), expires=float(expires),  # type: ignore[arg-type]
        id=int(id_),  # type: ignore[call-overload]
    )


class SqliteMessageStore:
    """The ``messages`` table of a ``SqliteStore``'s file, on that store's connection and lock."""

    def __init__(self, database: _Database) -> None:
        self._db = database
        with database.transaction() as cursor:
            for statement in MESSAGES_SCHEMA.split(";"):
                if statement.strip():
                    cursor.execute(statement)

    def add(self, message: StoredMessage) -> StoredMessage:
        with self._db.transaction() as cursor:
            cursor.execute(
                "INSERT INTO messages (aor, from_header, to_header, date, content_type, body, sender, received, expires)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (message.aor, message.from_, message.to, message.date, message.content_type, message.body,
                 message.sender, message.received, message.expires),
            )
            message_id = cursor.lastrowid
        assert message_id is not None
        return replace(message, id=message_id)

    def waiting(self, aor: str, now: float) -> list[StoredMessage]:
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM messages WHERE aor = ? AND expires > ? ORDER BY received, id", (aor, now),
        )
        return [_message(row) for row in rows]

    def count(self, aor: str, now: float) -> int:
        ((count,),) = self._db.query("SELECT count(*) FROM messages WHERE aor = ? AND expires > ?", (aor, now))
        return int(count)  # type: ignore[call-overload]

    def remove(self, message_id: int) -> int:
        with self._db.transaction() as cursor:
            return cursor.execute("DELETE FROM messages WHERE id = ?", (message_id,)).rowcount

    def purge(self, now: float) -> int:
        with self._db.transaction() as cursor:
            return cursor.execute("DELETE FROM messages WHERE expires <= ?", (now,)).rowcount

    def all(self, now: float) -> list[StoredMessage]:
        rows = self._db.query(f"SELECT {_COLUMNS} FROM messages WHERE expires > ? ORDER BY aor, received, id", (now,))
        return [_message(row) for row in rows]
