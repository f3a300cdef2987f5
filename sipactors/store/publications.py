"""Published event state (RFC 3903 §6): one row per publication of a presentity, kept by its entity-tag.

RFC 3903 §6 step 5 stores "the event state delivered in the body of the PUBLISH request and identified by
the associated entity-tag" with its expiration; §6 step 6 gives each successful PUBLISH a new entity-tag
"replacing any previous entity-tag associated with that event state". So a change is one atomic
:meth:`PublicationStore.put` that writes the publication under its new tag and drops the old tag
(``replaces``). Expiry is absolute wall-clock POSIX seconds, as for bindings (a publication outlives the
process: after a restart its actor takes it up with the time it has left). No store reads a clock: time is
an argument.

The SQLite tables are created here (``CREATE TABLE IF NOT EXISTS``) on first use of the property
``SqliteStore.publications``; the memory store behaves the same.
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from sipactors.store.sqlite import _Database

__all__ = ["MemoryPublicationStore", "Publication", "PublicationStore", "SqlitePublicationStore"]


@dataclass(frozen=True, slots=True)
class Publication:
    """One publication (RFC 3903 §6 step 5): the presentity (canonical AOR of the Request-URI), its current
    entity-tag, the event package, the body as published, and when it expires and was last changed."""

    presentity: str
    etag: str
    body: bytes
    expires: float  # absolute, POSIX seconds
    updated: float
    event: str = "presence"
    content_type: str = "application/pidf+xml"


class PublicationStore(Protocol):
    def publications(self, presentity: str, now: float) -> list[Publication]:
        """The unexpired publications of ``presentity`` (``expires > now``), oldest change first."""
        ...

    def put(self, publication: Publication, replaces: str | None = None) -> None:
        """Store ``publication`` under its entity-tag and, in the same transaction, drop the one it
        ``replaces`` (its previous tag: RFC 3903 §6 step 6)."""
        ...

    def remove(self, presentity: str, etag: str) -> int:
        """Remove a publication (RFC 3903 §6 step 5, expiration 0); how many went."""
        ...

    def remove_expired(self, presentity: str, etag: str, expires: float) -> int:
        """A publication's expiry: remove it if it still has that tag and its ``expires`` is not later."""
        ...

    def all(self, now: float) -> list[Publication]:
        """Every unexpired publication (a restart restores them), by presentity, oldest change first."""
        ...

    def purge(self, now: float) -> int:
        """Delete every expired publication; how many."""
        ...


def _order(publication: Publication) -> tuple[str, float, str]:
    return publication.presentity, publication.updated, publication.etag


class MemoryPublicationStore:
    def __init__(self) -> None:
        self._rows: dict[tuple[str, str], Publication] = {}

    def publications(self, presentity: str, now: float) -> list[Publication]:
        return sorted((p for (who, _), p in self._rows.items() if who == presentity and p.expires > now), key=_order)

    def put(self, publication: Publication, replaces: str | None = None) -> None:
        if replaces is not None:
            self._rows.pop((publication.presentity, replaces), None)
        self._rows[publication.presentity, publication.etag] = publication

    def remove(self, presentity: str, etag: str) -> int:
        return 1 if self._rows.pop((presentity, etag), None) is not None else 0

    def remove_expired(self, presentity: str, etag: str, expires: float) -> int:
        current = self._rows.get((presentity, etag))
        if current is None or current.expires > expires:
            return 0
        return self.remove(presentity, etag)

    def all(self, now: float) -> list[Publication]:
        return sorted((p for p in self._rows.values() if p.expires > now), key=_order)

    def purge(self, now: float) -> int:
        expired = [key for key, p in self._rows.items() if p.expires <= now]
        for key in expired:
            del self._rows[key]
        return len(expired)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS publications (
    presentity   TEXT NOT NULL,                 -- canonical AOR of the Request-URI (RFC 3903 §6 step 1)
    etag         TEXT NOT NULL,                 -- the current entity-tag (RFC 3903 §6 step 6)
    event        TEXT NOT NULL,                 -- the event package (RFC 3903 §6 step 2)
    content_type TEXT NOT NULL,
    body         BLOB NOT NULL,                 -- the event state as published (RFC 3903 §6 step 5)
    expires      REAL NOT NULL,                 -- absolute, POSIX seconds
    updated      REAL NOT NULL,
    PRIMARY KEY (presentity, etag)
);
CREATE INDEX IF NOT EXISTS publications_by_expiry ON publications (expires)
"""

_COLUMNS = "presentity, etag, body, expires, updated, event, content_type"


def _publication(row: tuple[object, ...]) -> Publication:
    presentity, etag, body, expires, updated, event, content_type = row
    return Publication(str(presentity), str(etag), bytes(body), float(expires), float(updated), str(event),  # type: ignore[call-overload, arg-type]
                       str(content_type))


class SqlitePublicationStore:
    """Publications in the store's SQLite file, on its connection and lock."""

    def __init__(self, database: _Database) -> None:
        self._db = database
        with database.transaction() as cursor:
            for statement in _SCHEMA.split(";"):
                cursor.execute(statement)

    def publications(self, presentity: str, now: float) -> list[Publication]:
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM publications WHERE presentity = ? AND expires > ? ORDER BY updated, etag",
            (presentity, now),
        )
        return [_publication(row) for row in rows]

    def put(self, publication: Publication, replaces: str | None = None) -> None:
        p = publication
        with self._db.transaction() as cursor:
            if replaces is not None:
                cursor.execute("DELETE FROM publications WHERE presentity = ? AND etag = ?", (p.presentity, replaces))
            cursor.execute(
                f"INSERT OR REPLACE INTO publications ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (p.presentity, p.etag, sqlite3.Binary(p.body), p.expires, p.updated, p.event, p.content_type),
            )

    def remove(self, presentity: str, etag: str) -> int:
        with self._db.transaction() as cursor:
            return cursor.execute(
                "DELETE FROM publications WHERE presentity = ? AND etag = ?", (presentity, etag),
            ).rowcount

    def remove_expired(self, presentity: str, etag: str, expires: float) -> int:
        with self._db.transaction() as cursor:
            return cursor.execute(
                "DELETE FROM publications WHERE presentity = ? AND etag = ? AND expires <= ?", (presentity, etag, expires),
            ).rowcount

    def all(self, now: float) -> list[Publication]:
        rows = self._db.query(
            f"SELECT {_COLUMNS} FROM publications WHERE expires > ? ORDER BY presentity, updated, etag", (now,),
        )
        return [_publication(row) for row in rows]

    def purge(self, now: float) -> int:
        with self._db.transaction() as cursor:
            return cursor.execute("DELETE FROM publications WHERE expires <= ?", (now,)).rowcount
