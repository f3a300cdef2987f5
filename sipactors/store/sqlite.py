"""The store in one SQLite file (stdlib ``sqlite3``): the default, so registrations survive a restart.

Durability. The file is in WAL mode and every change is one transaction (``BEGIN IMMEDIATE`` ... ``COMMIT``),
so a crash at any point leaves each REGISTER's changes all there or not there. ``synchronous`` decides what
"there" survives: with ``FULL`` (the default) SQLite fsyncs the WAL at every commit, so a binding the
registrar has acknowledged survives ``kill -9`` *and* a power loss; with ``NORMAL`` (``?synchronous=normal``
in the URL) a commit reaches the OS but the fsync waits for the next checkpoint: it survives the process
being killed, not the machine losing power, for one fsync less per REGISTER. Refreshes are rare (a UA
re-registers about once an hour), so the default pays the fsync.

Threads. The server calls the store from its one scheduler thread; the CLI from its own process (WAL lets
it read while the server writes; a writer waits up to ``busy_timeout`` for another). The connection is
opened with ``check_same_thread=False`` and every operation holds a lock, so a test or a tool may also call
it from another thread.

Schema: see ``SCHEMA`` (version ``SCHEMA_VERSION``, kept in the ``schema_version`` table); queries are
parameterized, always.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path

from sipactors.store.lists import SqliteListStore
from sipactors.store.messages import SqliteMessageStore
from sipactors.store.model import (
    Binding,
    Change,
    Put,
    Remove,
    RemoveAll,
    Source,
    User,
    check_change,
    check_user,
    checked_ha1s,
    same_contact,
)
from sipactors.store.publications import SqlitePublicationStore
from sipactors.store.rules import SqliteRuleStore
from sipactors.store.subscriptions import SqliteSubscriptionStore

__all__ = ["SCHEMA", "SCHEMA_VERSION", "SqliteLocationStore", "SqliteStore", "SqliteUserStore", "StoreError"]

SCHEMA_VERSION = 1

SCHEMA = """
CREATE TABLE schema_version (version INTEGER NOT NULL);
CREATE TABLE bindings (
    id             INTEGER PRIMARY KEY,
    aor            TEXT    NOT NULL,            -- canonical AOR, RFC 3261 §10.3 step 5
    contact        TEXT    NOT NULL,            -- the Contact URI
    contact_header TEXT    NOT NULL,            -- the whole Contact header field value
    expires        REAL    NOT NULL,            -- absolute, POSIX seconds
    q              REAL,                        -- NULL: no q parameter
    call_id        TEXT    NOT NULL,
    cseq           INTEGER NOT NULL,
    path           TEXT    NOT NULL,            -- JSON array of URIs (RFC 3327)
    instance       TEXT,                        -- +sip.instance (RFC 5626)
    reg_id         INTEGER,                     -- reg-id (RFC 5626)
    params         TEXT    NOT NULL,            -- JSON array of [name, value or null] (RFC 3840)
    transport      TEXT,                        -- source of the REGISTER (NULL: unknown)
    source_host    TEXT,
    source_port    INTEGER,
    updated        REAL    NOT NULL
);
CREATE INDEX bindings_by_aor ON bindings (aor);
CREATE INDEX bindings_by_expiry ON bindings (expires);
CREATE TABLE users (
    user   TEXT NOT NULL,
    realm  TEXT NOT NULL,
    domain TEXT NOT NULL,
    PRIMARY KEY (user, realm)
);
CREATE TABLE credentials (                      -- HA1 = H(user ":" realm ":" password), RFC 7616 §3.4.2
    user      TEXT NOT NULL,
    realm     TEXT NOT NULL,
    algorithm TEXT NOT NULL,                    -- MD5, SHA-256, ...
    ha1       TEXT NOT NULL,                    -- lower-case hex
    PRIMARY KEY (user, realm, algorithm),
    FOREIGN KEY (user, realm) REFERENCES users (user, realm) ON DELETE CASCADE
);
"""

_BINDING_COLUMNS = (
    "aor, contact, contact_header, expires, q, call_id, cseq, path, instance, reg_id, params, transport, "
    "source_host, source_port, updated"
)


class StoreError(Exception):
    """The store cannot be opened: not a database, a newer schema, an unreadable file."""


def _row(binding: Binding) -> tuple[object, ...]:
    source = binding.source
    return (
        binding.aor, binding.contact, binding.contact_header, binding.expires, binding.q, binding.call_id,
        binding.cseq, json.dumps(list(binding.path)) if binding.path else "[]", binding.instance, binding.reg_id,
        json.dumps([list(item) for item in binding.params]) if binding.params else "[]",
        source.transport if source else None, source.host if source else None, source.port if source else None,
        binding.updated,
    )


def _binding(row: Sequence[object]) -> Binding:
    (aor, contact, contact_header, expires, q, call_id, cseq, path, instance, reg_id, params, transport, host,
     port, updated) = row
    return Binding(
        aor=str(aor), contact=str(contact), contact_header=str(contact_header), expires=float(expires),  # type: ignore[arg-type]
        q=None if q is None else float(q), call_id=str(call_id), cseq=int(cseq),  # type: ignore[arg-type, call-overload]
        path=tuple(json.loads(str(path))), instance=None if instance is None else str(instance),
        reg_id=None if reg_id is None else int(reg_id),  # type: ignore[call-overload]
        params=tuple((str(name), value) for name, value in json.loads(str(params))),
        source=None if transport is None else Source(str(transport), str(host), int(port)),  # type: ignore[call-overload]
        updated=float(updated),  # type: ignore[arg-type]
    )


class _Database:
    """One connection, its lock, and the transaction helper both stores share."""

    def __init__(self, path: str, synchronous: str) -> None:
        try:
            self.connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as error:
            raise StoreError(f"cannot open {path}: {error}") from None
        self.lock = threading.RLock()
        try:
            self._prepare(synchronous)
        except sqlite3.Error as error:
            self.connection.close()
            raise StoreError(f"cannot use {path}: {error}") from None

    def _prepare(self, synchronous: str) -> None:
        run = self.connection.execute
        run("PRAGMA busy_timeout = 5000")  # the CLI and the server may write the same file
        run("PRAGMA journal_mode = WAL")  # (an in-memory database answers "memory"; nothing to make durable)
        run(f"PRAGMA synchronous = {'FULL' if synchronous == 'full' else 'NORMAL'}")  # one of two literals
        run("PRAGMA foreign_keys = ON")
        with self.transaction() as cursor:
            exists = cursor.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            ).fetchone()
            if exists is None:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        cursor.execute(statement)
                cursor.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
                return
            (version,) = cursor.execute("SELECT max(version) FROM schema_version").fetchone()
            if version != SCHEMA_VERSION:
                # Only version 1 exists; a later version adds its migration here, under this transaction.
                raise StoreError(f"schema version {version}; this sipactors knows version {SCHEMA_VERSION}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Cursor]:
        """``BEGIN IMMEDIATE`` (take the write lock now, not half-way) ... ``COMMIT``, or ``ROLLBACK`` on any error."""
        with self.lock:
            cursor = self.connection.cursor()
            cursor.execute("BEGIN IMMEDIATE")
            try:
                yield cursor
            except BaseException:
                if self.connection.in_transaction:  # (an error inside SQLite may have ended it already)
                    cursor.execute("ROLLBACK")
                raise
            cursor.execute("COMMIT")

    def query(self, sql: str, parameters: Sequence[object] = ()) -> list[tuple[object, ...]]:
        with self.lock:
            return self.connection.execute(sql, parameters).fetchall()

    def close(self) -> None:
        with self.lock:
            self.connection.close()


class SqliteLocationStore:
    def __init__(self, database: _Database) -> None:
        self._db = database

    def bindings(self, aor: str, now: float) -> list[Binding]:
        rows = self._db.query(f"SELECT {_BINDING_COLUMNS} FROM bindings WHERE aor = ? AND expires > ?", (aor, now))
        return sorted((_binding(row) for row in rows), key=Binding.order_key)

    def apply(self, aor: str, changes: Sequence[Change]) -> None:
        with self._db.transaction() as cursor:
            self._apply(cursor, aor, changes)

    def apply_batch(self, batch: Sequence[tuple[str, Sequence[Change]]]) -> list[Exception | None]:
        """Group commit: every REGISTER of ``batch`` in one transaction, so one fsync for them all, and each
        all or nothing: one whose changes fail is undone alone (its error in its place of the result).

        Optimistic: the batch goes in as it is, and only if something in it fails is the whole transaction
        rolled back and the batch done again with a savepoint per REGISTER. A savepoint and its release
        cost two statements per REGISTER (about 15 % of the writer's time) that a batch almost never needs."""
        try:
            with self._db.transaction() as cursor:
                for aor, changes in batch:
                    self._apply(cursor, aor, changes)
            return [None] * len(batch)
        except Exception:  # (undone by transaction()): find which REGISTERs fail, alone
            return self._apply_each(batch)

    def _apply_each(self, batch: Sequence[tuple[str, Sequence[Change]]]) -> list[Exception | None]:
        results: list[Exception | None] = []
        with self._db.transaction() as cursor:
            for aor, changes in batch:
                cursor.execute("SAVEPOINT register")
                try:
                    self._apply(cursor, aor, changes)
                except Exception as error:  # this REGISTER fails (§10.3 step 7), the others of the batch go on
                    cursor.execute("ROLLBACK TO register")
                    results.append(error)
                else:
                    results.append(None)
                cursor.execute("RELEASE register")
        return results

    @staticmethod
    def _apply(cursor: sqlite3.Cursor, aor: str, changes: Sequence[Change]) -> None:
        for change in changes:
            check_change(aor, change)
            if isinstance(change, RemoveAll):
                cursor.execute("DELETE FROM bindings WHERE aor = ?", (aor,))
                continue
            contact = change.binding.contact if isinstance(change, Put) else change.contact
            # URI equality is not a key SQL can compare (§19.1.4 is not even transitive): an AOR has a
            # handful of bindings, so they are compared here (the same text needs no parsing).
            for row_id, other in cursor.execute("SELECT id, contact FROM bindings WHERE aor = ?", (aor,)).fetchall():
                if other == contact or same_contact(other, contact):
                    cursor.execute("DELETE FROM bindings WHERE id = ?", (row_id,))
            if isinstance(change, Put):
                cursor.execute(
                    f"INSERT INTO bindings ({_BINDING_COLUMNS}) VALUES ({', '.join('?' * 15)})",
                    _row(change.binding),
                )

    def put(self, binding: Binding) -> None:
        self.apply(binding.aor, [Put(binding)])

    def remove(self, aor: str, contact: str) -> int:
        with self._db.lock:
            before = self._count(aor)
            self.apply(aor, [Remove(contact)])
            return before - self._count(aor)

    def remove_all(self, aor: str) -> int:
        with self._db.transaction() as cursor:
            return cursor.execute("DELETE FROM bindings WHERE aor = ?", (aor,)).rowcount

    def remove_expired(self, aor: str, contact: str, expires: float) -> int:
        with self._db.transaction() as cursor:
            removed = 0
            rows = cursor.execute("SELECT id, contact FROM bindings WHERE aor = ? AND expires <= ?", (aor, expires))
            for row_id, other in rows.fetchall():
                if other == contact or same_contact(other, contact):
                    removed += cursor.execute("DELETE FROM bindings WHERE id = ?", (row_id,)).rowcount
            return removed

    def purge(self, now: float) -> int:
        with self._db.transaction() as cursor:
            return cursor.execute("DELETE FROM bindings WHERE expires <= ?", (now,)).rowcount

    def all_aors(self, now: float) -> list[str]:
        rows = self._db.query("SELECT DISTINCT aor FROM bindings WHERE expires > ? ORDER BY aor", (now,))
        return [str(aor) for (aor,) in rows]

    def _count(self, aor: str) -> int:
        ((count,),) = self._db.query("SELECT count(*) FROM bindings WHERE aor = ?", (aor,))
        return int(count)  # type: ignore[call-overload]


#: Seconds ``SqliteUserStore.any`` trusts its last answer before it looks again (see there).
ANY_USERS_TTL = 1.0


class SqliteUserStore:
    def __init__(self, database: _Database, clock: Callable[[], float] = time.monotonic) -> None:
        self._db = database
        self._clock = clock
        self._any: tuple[float, bool] | None = None  # (until when, answer) of ``any``

    def add(self, user: str, domain: str, realm: str, ha1_by_algorithm: Mapping[str, str]) -> bool:
        check_user(user, domain, realm)
        ha1s = checked_ha1s(ha1_by_algorithm)
        try:
            return self._add(user, domain, realm, ha1s)
        finally:
            self._any = None  # after the COMMIT, so that no ``any`` in between caches the old answer

    def _add(self, user: str, domain: str, realm: str, ha1s: Mapping[str, str]) -> bool:
        with self._db.transaction() as cursor:
            new = cursor.execute("SELECT 1 FROM users WHERE user = ? AND realm = ?", (user, realm)).fetchone() is None
            # Replacing deletes the old HA1s too (ON DELETE CASCADE): no algorithm keeps an old password.
            cursor.execute("DELETE FROM users WHERE user = ? AND realm = ?", (user, realm))
            cursor.execute("INSERT INTO users (user, realm, domain) VALUES (?, ?, ?)", (user, realm, domain))
            cursor.executemany(
                "INSERT INTO credentials (user, realm, algorithm, ha1) VALUES (?, ?, ?, ?)",
                [(user, realm, algorithm, ha1) for algorithm, ha1 in ha1s.items()],
            )
            return new

    def remove(self, user: str, realm: str | None = None) -> int:
        try:
            with self._db.transaction() as cursor:
                if realm is None:
                    return cursor.execute("DELETE FROM users WHERE user = ?", (user,)).rowcount
                return cursor.execute("DELETE FROM users WHERE user = ? AND realm = ?", (user, realm)).rowcount
        finally:
            self._any = None

    def get(self, user: str, realm: str) -> dict[str, str] | None:
        with self._db.lock:
            if not self._db.query("SELECT 1 FROM users WHERE user = ? AND realm = ?", (user, realm)):
                return None
            rows = self._db.query("SELECT algorithm, ha1 FROM credentials WHERE user = ? AND realm = ?", (user, realm))
        return {str(algorithm): str(ha1) for algorithm, ha1 in rows}

    def list(self) -> list[User]:
        rows = self._db.query(
            "SELECT u.user, u.domain, u.realm, group_concat(c.algorithm, ' ') FROM users u "
            "LEFT JOIN credentials c ON c.user = u.user AND c.realm = u.realm "
            "GROUP BY u.user, u.realm ORDER BY u.user, u.realm"
        )
        return [
            User(str(user), str(domain), str(realm), tuple(sorted(str(algorithms or "").split())))
            for user, domain, realm, algorithms in rows
        ]

    def any(self) -> bool:
        """Whether any user exists: the proxy and the registrar ask it for every request (open mode), and
        one SQLite query each was ~2-3 % of the server's CPU time under load. The answer is kept for
        ``ANY_USERS_TTL``: our own ``add``/``remove`` drop it at once; a ``sipactors users add`` in another
        process is seen within that second (a check that would be exact, ``PRAGMA data_version``, is itself
        a query per request, which is what this saves)."""
        now = self._clock()
        cached = self._any
        if cached is not None and now < cached[0]:
            return cached[1]
        answer = bool(self._db.query("SELECT 1 FROM users LIMIT 1"))
        self._any = (now + ANY_USERS_TTL, answer)
        return answer


class SqliteStore:
    """``sqlite:///PATH``: both stores in one file (``:memory:`` for a throw-away database)."""

    def __init__(self, path: str | Path, synchronous: str = "full") -> None:
        if synchronous not in ("full", "normal"):
            raise ValueError(f"synchronous must be full or normal, not {synchronous!r}")
        self.path = str(path)
        self._synchronous = synchronous
        self._db = _Database(self.path, synchronous)
        self._locations = SqliteLocationStore(self._db)
        self._users = SqliteUserStore(self._db)
        self._publications: SqlitePublicationStore | None = None
        self._lists: SqliteListStore | None = None
        self._subscriptions: SqliteSubscriptionStore | None = None
        self._messages: SqliteMessageStore | None = None

    @property
    def locations(self) -> SqliteLocationStore:
        return self._locations

    def writer(self) -> SqliteStore | None:
        """A second connection to the same file, for a writer thread (``GroupCommitter``): in WAL mode the
        scheduler's connection then reads (users, credentials) while the writer commits and fsyncs. None
        for ``:memory:``, whose second connection would be another, empty, database."""
        if self.path == ":memory:":
            return None
        return SqliteStore(self.path, self._synchronous)

    @property
    def users(self) -> SqliteUserStore:
        return self._users

    @property
    def publications(self) -> SqlitePublicationStore:
        """Published event state (RFC 3903), its table made on first use (``sipactors.store.publications``)."""
        if self._publications is None:
            self._publications = SqlitePublicationStore(self._db)
        return self._publications

    @cached_property
    def presence_rules(self) -> SqliteRuleStore:
        """Watcher authorization rules (``sipactors.store.rules``), their tables made on first use."""
        return SqliteRuleStore(self._db)

    @property
    def lists(self) -> SqliteListStore:
        """Presence lists (RFC 4662), their tables made on first use (``sipactors.store.lists``)."""
        if self._lists is None:
            self._lists = SqliteListStore(self._db)
        return self._lists

    @property
    def subscriptions(self) -> SqliteSubscriptionStore:
        """The notifier's subscriptions (``sipactors.store.subscriptions``), their table made on first use."""
        if self._subscriptions is None:
            self._subscriptions = SqliteSubscriptionStore(self._db)
        return self._subscriptions

    @property
    def messages(self) -> SqliteMessageStore:
        """Stored MESSAGEs (``sipactors.store.messages``): their table is made on first use."""
        if self._messages is None:
            self._messages = SqliteMessageStore(self._db)
        return self._messages

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
