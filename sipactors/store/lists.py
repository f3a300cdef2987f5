"""Presence lists: the resource lists a resource list server serves (RFC 4662 §3, §4.4).

A presence list ("buddy list") has its own URI (RFC 4662 §3: "This resource list is represented by a SIP
URI"), one owner (the user who manages it and, by the RLS's policy, the only one who may subscribe to it,
§4.4), a display name and its members in order, each a presentity URI with a display name (RFC 4662 §5.4:
the ``<name>`` elements of the RLMI document). RFC 4662 leaves how lists are made to the implementation;
here they come from ``sipactors lists`` and ``[[presence.list]]`` in the configuration.

Naming convention (see ``default_list_uri``): ``sip:USER-buddies@DOMAIN`` for the owner ``sip:USER@DOMAIN``,
as ``sip:adam-buddies@pres.vancouver.example.com`` in RFC 4662 §6. Any other URI works too.

URIs are kept in their canonical form (``canonical_aor``: RFC 3261 §10.3 step 5), the form the notifier
gives a subscription's resource and watcher, so that lookups compare like with like.

Two implementations behave alike: ``MemoryListStore`` (tests, ``memory:``) and ``SqliteListStore`` (its own
tables, created with ``CREATE TABLE IF NOT EXISTS`` beside the location service's, in the same file).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sipactors.store.model import canonical_aor

if TYPE_CHECKING:
    from sipactors.store.sqlite import _Database

__all__ = [
    "LISTS_SCHEMA", "ListStore", "Member", "MemoryListStore", "PresenceList", "SqliteListStore", "default_list_uri",
]

LISTS_SCHEMA = """
CREATE TABLE IF NOT EXISTS presence_lists (
    uri   TEXT PRIMARY KEY,                     -- the list's own URI, canonical (RFC 4662 §3)
    owner TEXT NOT NULL,                        -- the AOR allowed to subscribe (RFC 4662 §4.4)
    name  TEXT NOT NULL                         -- display name, RLMI <name> (RFC 4662 §5.4), '' for none
);
CREATE INDEX IF NOT EXISTS presence_lists_by_owner ON presence_lists (owner);
CREATE TABLE IF NOT EXISTS presence_list_members (
    list     TEXT    NOT NULL REFERENCES presence_lists (uri) ON DELETE CASCADE,
    member   TEXT    NOT NULL,                  -- the presentity's canonical URI
    name     TEXT    NOT NULL,                  -- display name, '' for none
    position INTEGER NOT NULL,                  -- order of the <resource> elements
    PRIMARY KEY (list, member)
);
CREATE INDEX IF NOT EXISTS presence_list_members_by_member ON presence_list_members (member);
"""


@dataclass(frozen=True, slots=True)
class Member:
    """One resource of a list: its URI and display name ("" for none)."""

    uri: str
    name: str = ""


@dataclass(frozen=True, slots=True)
class PresenceList:
    """A resource list (RFC 4662 §3): its URI, owner, display name and members in order."""

    uri: str
    owner: str
    name: str = ""
    members: tuple[Member, ...] = ()


def default_list_uri(owner: str) -> str:
    """``sip:USER-buddies@DOMAIN`` for the owner ``sip:USER@DOMAIN`` (the convention of RFC 4662 §6's
    ``sip:adam-buddies@...``); ``ValueError`` for an owner without a user part."""
    aor = canonical_aor(owner)
    scheme, _, rest = aor.partition(":")
    user, at, host = rest.rpartition("@")
    if scheme not in ("sip", "sips") or not at or not user:
        raise ValueError(f"{owner!r}: the owner must be a sip: or sips: URI with a user part")
    return f"{scheme}:{user}-buddies@{host}"


class ListStore(Protocol):
    """Presence lists (canonical URIs in and out; ``ValueError`` for text that is not a URI)."""

    def put(self, uri: str, owner: str, name: str = "") -> bool:
        """Create the list, or change its owner and name (its members stay); True if it is new."""
        ...

    def remove(self, uri: str) -> bool:
        """Delete the list and its members; False if there was none."""
        ...

    def get(self, uri: str) -> PresenceList | None:
        ...

    def all(self, owner: str | None = None) -> list[PresenceList]:
        """Every list (of ``owner`` only, if given), by URI."""
        ...

    def add_member(self, uri: str, member: str, name: str = "") -> bool:
        """Append ``member`` (or rename it where it is); True if it is new. ``KeyError`` if no such list."""
        ...

    def remove_member(self, uri: str, member: str) -> bool:
        ...

    def set_members(self, uri: str, members: Sequence[Member]) -> None:
        """Replace the members by exactly ``members``, in that order. ``KeyError`` if no such list."""
        ...

    def containing(self, member: str) -> list[str]:
        """The URIs of the lists that hold ``member``, sorted (a member's change reaches each of them)."""
        ...


def _canonical_members(members: Sequence[Member]) -> list[Member]:
    seen: dict[str, Member] = {}
    for member in members:
        uri = canonical_aor(member.uri)
        seen.setdefault(uri, Member(uri, member.name))  # a member listed twice keeps its first place
    return list(seen.values())


class MemoryListStore:
    def __init__(self) -> None:
        self._lists: dict[str, PresenceList] = {}

    def put(self, uri: str, owner: str, name: str = "") -> bool:
        uri, owner = canonical_aor(uri), canonical_aor(owner)
        old = self._lists.get(uri)
        self._lists[uri] = PresenceList(uri, owner, name, old.members if old else ())
        return old is None

    def remove(self, uri: str) -> bool:
        return self._lists.pop(canonical_aor(uri), None) is not None

    def get(self, uri: str) -> PresenceList | None:
        return self._lists.get(canonical_aor(uri))

    def all(self, owner: str | None = None) -> list[PresenceList]:
        wanted = canonical_aor(owner) if owner is not None else None
        return [self._lists[uri] for uri in sorted(self._lists) if wanted in (None, self._lists[uri].owner)]

    def add_member(self, uri: str, member: str, name: str = "") -> bool:
        found = self._list(uri)
        member = canonical_aor(member)
        new = all(m.uri != member for m in found.members)
        members = [Member(m.uri, name) if m.uri == member else m for m in found.members]
        self._replace(found, [*members, Member(member, name)] if new else members)
        return new

    def remove_member(self, uri: str, member: str) -> bool:
        found = self._list(uri)
        member = canonical_aor(member)
        kept = [m for m in found.members if m.uri != member]
        self._replace(found, kept)
        return len(kept) < len(found.members)

    def set_members(self, uri: str, members: Sequence[Member]) -> None:
        self._replace(self._list(uri), _canonical_members(members))

    def containing(self, member: str) -> list[str]:
        member = canonical_aor(member)
        return sorted(uri for uri, found in self._lists.items() if any(m.uri == member for m in found.members))

    def _list(self, uri: str) -> PresenceList:
        found = self._lists.get(canonical_aor(uri))
        if found is None:
            raise KeyError(f"no presence list {uri}")
        return found

    def _replace(self, found: PresenceList, members: Sequence[Member]) -> None:
        self._lists[found.uri] = PresenceList(found.uri, found.owner, found.name, tuple(members))


class SqliteListStore:
    """The lists in the store's SQLite file (tables ``presence_lists``, ``presence_list_members``)."""

    def __init__(self, database: _Database) -> None:
        self._db = database
        with database.transaction() as cursor:
            for statement in LISTS_SCHEMA.split(";"):
                if statement.strip():
                    cursor.execute(statement)

    def put(self, uri: str, owner: str, name: str = "") -> bool:
        uri, owner = canonical_aor(uri), canonical_aor(owner)
        with self._db.transaction() as cursor:
            new = cursor.execute("SELECT 1 FROM presence_lists WHERE uri = ?", (uri,)).fetchone() is None
            # an UPDATE, not INSERT OR REPLACE: a replaced row would take its members with it (CASCADE)
            if new:
                cursor.execute("INSERT INTO presence_lists (uri, owner, name) VALUES (?, ?, ?)", (uri, owner, name))
            else:
                cursor.execute("UPDATE presence_lists SET owner = ?, name = ? WHERE uri = ?", (owner, name, uri))
            return new

    def remove(self, uri: str) -> bool:
        with self._db.transaction() as cursor:
            return cursor.execute("DELETE FROM presence_lists WHERE uri = ?", (canonical_aor(uri),)).rowcount > 0

    def get(self, uri: str) -> PresenceList | None:
        uri = canonical_aor(uri)
        with self._db.lock:
            rows = self._db.query("SELECT owner, name FROM presence_lists WHERE uri = ?", (uri,))
            if not rows:
                return None
            ((owner, name),) = rows
            return PresenceList(uri, str(owner), str(name), self._members(uri))

    def all(self, owner: str | None = None) -> list[PresenceList]:
        with self._db.lock:
            if owner is None:
                rows = self._db.query("SELECT uri, owner, name FROM presence_lists ORDER BY uri")
            else:
                rows = self._db.query("SELECT uri, owner, name FROM presence_lists WHERE owner = ? ORDER BY uri",
                                      (canonical_aor(owner),))
            return [PresenceList(str(uri), str(who), str(name), self._members(str(uri))) for uri, who, name in rows]

    def add_member(self, uri: str, member: str, name: str = "") -> bool:
        uri, member = canonical_aor(uri), canonical_aor(member)
        with self._db.transaction() as cursor:
            self._check(cursor, uri)
            if cursor.execute("UPDATE presence_list_members SET name = ? WHERE list = ? AND member = ?",
                              (name, uri, member)).rowcount:
                return False
            (last,) = cursor.execute("SELECT coalesce(max(position), -1) FROM presence_list_members WHERE list = ?",
                                     (uri,)).fetchone()
            cursor.execute("INSERT INTO presence_list_members (list, member, name, position) VALUES (?, ?, ?, ?)",
                           (uri, member, name, int(last) + 1))
            return True

    def remove_member(self, uri: str, member: str) -> bool:
        with self._db.transaction() as cursor:
            return cursor.execute("DELETE FROM presence_list_members WHERE list = ? AND member = ?",
                                  (canonical_aor(uri), canonical_aor(member))).rowcount > 0

    def set_members(self, uri: str, members: Sequence[Member]) -> None:
        uri = canonical_aor(uri)
        wanted = _canonical_members(members)
        with self._db.transaction() as cursor:
            self._check(cursor, uri)
            cursor.execute("DELETE FROM presence_list_members WHERE list = ?", (uri,))
            cursor.executemany(
                "INSERT INTO presence_list_members (list, member, name, position) VALUES (?, ?, ?, ?)",
                [(uri, member.uri, member.name, position) for position, member in enumerate(wanted)],
            )

    def containing(self, member: str) -> list[str]:
        rows = self._db.query("SELECT list FROM presence_list_members WHERE member = ? ORDER BY list",
                              (canonical_aor(member),))
        return [str(uri) for (uri,) in rows]

    def _members(self, uri: str) -> tuple[Member, ...]:
        rows = self._db.query("SELECT member, name FROM presence_list_members WHERE list = ? ORDER BY position",
                              (uri,))
        return tuple(Member(str(member), str(name)) for member, name in rows)

    @staticmethod
    def _check(cursor: sqlite3.Cursor, uri: str) -> None:
        if cursor.execute("SELECT 1 FROM presence_lists WHERE uri = ?", (uri,)).fetchone() is None:
            raise KeyError(f"no presence list {uri}")
