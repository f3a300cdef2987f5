"""Watcher authorization rules: who may see whose presence (RFC 5025 §3.1.1, §3.2.1; RFC 4745 §7.1).

A rule is (presentity, watcher, action). The presentity is a canonical AOR (``canonical_aor``); the watcher
is one of three forms, from the most specific to the least:

* a canonical AOR, ``sip:bob@example.com``: that watcher only (RFC 4745 §7.1.2 ``<one id=...>``);
* ``*@example.com``: any watcher whose SIP or SIPS URI is in that domain (RFC 4745 §7.1.3 ``<many
  domain=...>``; RFC 5025 §3.1.1.2: URIs of other schemes, such as tel, are never in a domain);
* ``*``: every watcher, the presentity's own default (RFC 4745 §7.1.3.1 ``<many/>``).

The action is one of RFC 5025 §3.2.1's sub-handling values, as ``Authorization`` (allow, confirm,
polite-block, block).

Change detection. ``sipactors presence allow ...`` writes from another process while the server runs; the
server must notice, to move the affected subscriptions at once (RFC 5025 §3.2.1: a change of sub-handling
is an event for every affected subscription). Every write bumps a single *revision* row and records that
revision against the presentity it touched, so the server's poller asks one cheap question a second
(``revision()``) and, when it moved, which presentities changed since (``changed_since``). The table of
per-presentity revisions holds one row per presentity that ever had a rule, so it does not grow with writes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sipactors.roles.events import Authorization
from sipactors.store.model import canonical_aor

if TYPE_CHECKING:
    import sqlite3

    from sipactors.store.sqlite import _Database

__all__ = [
    "ANY_WATCHER", "MemoryRuleStore", "Rule", "RuleStore", "SqliteRuleStore", "canonical_presentity",
    "canonical_watcher", "domain_rule", "parse_action",
]

#: The watcher form of a presentity's default rule (RFC 4745 §7.1.3.1: any identity).
ANY_WATCHER = "*"

SCHEMA = """
CREATE TABLE IF NOT EXISTS presence_rules (
    presentity TEXT NOT NULL,   -- canonical AOR (RFC 3261 §10.3 step 5)
    watcher    TEXT NOT NULL,   -- canonical AOR, '*@domain' or '*'
    action     TEXT NOT NULL,   -- allow, confirm, polite-block, block (RFC 5025 §3.2.1)
    PRIMARY KEY (presentity, watcher)
);
CREATE TABLE IF NOT EXISTS presence_rules_revision (
    id       INTEGER PRIMARY KEY CHECK (id = 1),   -- one row
    revision INTEGER NOT NULL                      -- bumped by every write
);
CREATE TABLE IF NOT EXISTS presence_rules_changed (
    presentity TEXT PRIMARY KEY,
    revision   INTEGER NOT NULL                    -- the revision of the last write to its rules
);
CREATE INDEX IF NOT EXISTS presence_rules_changed_by_revision ON presence_rules_changed (revision);
"""


@dataclass(frozen=True, slots=True)
class Rule:
    presentity: str
    watcher: str
    action: Authorization


def parse_action(text: str) -> Authorization:
    """``allow``, ``confirm``, ``polite-block`` or ``block`` (RFC 5025 §3.2.1 names); ``ValueError`` otherwise."""
    try:
        return Authorization(text.strip().lower())
    except ValueError:
        names = ", ".join(a.value for a in Authorization)
        raise ValueError(f"unknown action {text!r} (one of {names})") from None


def _with_domain(text: str, default_domain: str | None) -> str:
    """``text`` as a URI: a bare user name gets ``default_domain``, ``user@host`` gets ``sip:``."""
    text = text.strip()
    if ":" in text.split("@", 1)[0]:  # a scheme before any @: already a URI (sip:, sips:, tel:, ...)
        return text
    if "@" not in text:
        if not default_domain:
            raise ValueError(f"{text!r} has no domain: write USER@DOMAIN")
        text = f"{text}@{default_domain}"
    return f"sip:{text}"


def canonical_presentity(text: str, default_domain: str | None = None) -> str:
    """The canonical AOR of a presentity written as ``alice``, ``alice@example.com`` or a URI."""
    return canonical_aor(_with_domain(text, default_domain))


def domain_rule(domain: str) -> str:
    """The watcher form of a domain rule (host names compare case-insensitively, RFC 3261 §19.1.4)."""
    return f"*@{domain.strip().lower()}"


def canonical_watcher(text: str, default_domain: str | None = None) -> str:
    """The stored form of a rule's watcher: ``*``, ``*@domain`` or a canonical AOR."""
    text = text.strip()
    if text == ANY_WATCHER:
        return ANY_WATCHER
    if text.startswith("*@"):
        domain = text[2:]
        if not domain or "@" in domain or domain.rpartition("]")[2].count(":"):
            raise ValueError(f"not a domain rule: {text!r} (write *@example.com, no user, no port)")
        canonical_aor(f"sip:{domain}")  # the same host syntax as a URI's (ValueError otherwise)
        return domain_rule(domain)
    return canonical_aor(_with_domain(text, default_domain))


class RuleStore(Protocol):
    """Where the rules live. ``set``/``forget`` each bump the revision."""

    def set(self, presentity: str, watcher: str, action: Authorization) -> bool:
        """Store the rule, replacing the one for the same (presentity, watcher); True if it is new."""
        ...

    def forget(self, presentity: str, watcher: str) -> bool:
        """Remove the rule; False if there was none."""
        ...

    def lookup(self, presentity: str, watchers: tuple[str, ...]) -> dict[str, Authorization]:
        """The actions of the rules of ``presentity`` for those of ``watchers`` that have one."""
        ...

    def rules(self, presentity: str | None = None) -> list[Rule]:
        """The rules of ``presentity`` (of every presentity if None), sorted."""
        ...

    def revision(self) -> int:
        """A number that changes whenever a rule is written (0 before any write)."""
        ...

    def changed_since(self, revision: int) -> tuple[int, list[str]]:
        """The current revision and the presentities whose rules were written after ``revision``."""
        ...


class MemoryRuleStore:
    def __init__(self) -> None:
        self._rules: dict[tuple[str, str], Authorization] = {}
        self._revision = 0
        self._changed: dict[str, int] = {}

    def _bump(self, presentity: str) -> None:
        self._revision += 1
        self._changed[presentity] = self._revision

    def set(self, presentity: str, watcher: str, action: Authorization) -> bool:
        new = (presentity, watcher) not in self._rules
        self._rules[(presentity, watcher)] = action
        self._bump(presentity)
        return new

    def forget(self, presentity: str, watcher: str) -> bool:
        if self._rules.pop((presentity, watcher), None) is None:
            return False
        self._bump(presentity)
        return True

    def lookup(self, presentity: str, watchers: tuple[str, ...]) -> dict[str, Authorization]:
        rules = self._rules
        return {w: rules[(presentity, w)] for w in watchers if (presentity, w) in rules}

    def rules(self, presentity: str | None = None) -> list[Rule]:
        return sorted(
            (Rule(p, w, a) for (p, w), a in self._rules.items() if presentity is None or p == presentity),
            key=lambda r: (r.presentity, r.watcher),
        )

    def revision(self) -> int:
        return self._revision

    def changed_since(self, revision: int) -> tuple[int, list[str]]:
        return self._revision, sorted(p for p, r in self._changed.items() if r > revision)


class SqliteRuleStore:
    """The rules in the store's SQLite file, in tables of their own (created if missing)."""

    def __init__(self, database: _Database) -> None:
        self._db = database
        with database.transaction() as cursor:
            for statement in SCHEMA.split(";"):
                if statement.strip():
                    cursor.execute(statement)
            cursor.execute("INSERT OR IGNORE INTO presence_rules_revision (id, revision) VALUES (1, 0)")

    @staticmethod
    def _bump(cursor: sqlite3.Cursor, presentity: str) -> None:
        # Inside the write's own transaction: a reader sees the rule and the new revision together.
        cursor.execute("UPDATE presence_rules_revision SET revision = revision + 1 WHERE id = 1")
        cursor.execute(
            "INSERT INTO presence_rules_changed (presentity, revision) "
            "SELECT ?, revision FROM presence_rules_revision WHERE id = 1 "
            "ON CONFLICT (presentity) DO UPDATE SET revision = excluded.revision",
            (presentity,),
        )

    def set(self, presentity: str, watcher: str, action: Authorization) -> bool:
        with self._db.transaction() as cursor:
            new = cursor.execute(
                "SELECT 1 FROM presence_rules WHERE presentity = ? AND watcher = ?", (presentity, watcher)
            ).fetchone() is None
            cursor.execute(
                "INSERT INTO presence_rules (presentity, watcher, action) VALUES (?, ?, ?) "
                "ON CONFLICT (presentity, watcher) DO UPDATE SET action = excluded.action",
                (presentity, watcher, action.value),
            )
            self._bump(cursor, presentity)
            return new

    def forget(self, presentity: str, watcher: str) -> bool:
        with self._db.transaction() as cursor:
            removed = cursor.execute(
                "DELETE FROM presence_rules WHERE presentity = ? AND watcher = ?", (presentity, watcher)
            ).rowcount
            if removed:
                self._bump(cursor, presentity)
            return bool(removed)

    def lookup(self, presentity: str, watchers: tuple[str, ...]) -> dict[str, Authorization]:
        if not watchers:
            return {}
        rows = self._db.query(
            f"SELECT watcher, action FROM presence_rules WHERE presentity = ? AND watcher IN "
            f"({', '.join('?' * len(watchers))})",
            (presentity, *watchers),
        )
        return {str(watcher): Authorization(str(action)) for watcher, action in rows}

    def rules(self, presentity: str | None = None) -> list[Rule]:
        if presentity is None:
            rows = self._db.query("SELECT presentity, watcher, action FROM presence_rules ORDER BY presentity, watcher")
        else:
            rows = self._db.query(
                "SELECT presentity, watcher, action FROM presence_rules WHERE presentity = ? ORDER BY watcher",
                (presentity,),
            )
        return [Rule(str(p), str(w), Authorization(str(a))) for p, w, a in rows]

    def revision(self) -> int:
        ((revision,),) = self._db.query("SELECT revision FROM presence_rules_revision WHERE id = 1")
        return int(revision)  # type: ignore[call-overload]

    def changed_since(self, revision: int) -> tuple[int, list[str]]:
        with self._db.lock:
            # One read transaction, so the revision and the list agree even while another process writes.
            self._db.connection.execute("BEGIN")
            try:
                current = self.revision()
                rows = self._db.query(
                    "SELECT presentity FROM presence_rules_changed WHERE revision > ? ORDER BY presentity", (revision,)
                )
            finally:
                self._db.connection.execute("COMMIT")
        return current, [str(p) for (p,) in rows]
