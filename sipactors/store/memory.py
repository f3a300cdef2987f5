"""The store in memory: the unit tests' store, and the model the SQLite store is tested against.

It behaves exactly as ``SqliteStore`` does, but nothing survives the process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import cached_property

from sipactors.store.lists import MemoryListStore
from sipactors.store.messages import MemoryMessageStore
from sipactors.store.model import (
    Binding,
    Change,
    Put,
    Remove,
    RemoveAll,
    User,
    check_change,
    check_user,
    checked_ha1s,
    same_contact,
)
from sipactors.store.publications import MemoryPublicationStore
from sipactors.store.rules import MemoryRuleStore
from sipactors.store.subscriptions import MemorySubscriptionStore

__all__ = ["MemoryLocationStore", "MemoryStore", "MemoryUserStore"]


class MemoryLocationStore:
    def __init__(self) -> None:
        self._by_aor: dict[str, list[Binding]] = {}

    def bindings(self, aor: str, now: float) -> list[Binding]:
        return sorted((b for b in self._by_aor.get(aor, ()) if b.expires > now), key=Binding.order_key)

    def apply_batch(self, batch: Sequence[tuple[str, Sequence[Change]]]) -> list[Exception | None]:
        results: list[Exception | None] = []
        for aor, changes in batch:
            try:
                self.apply(aor, changes)
            except Exception as error:  # as SQLite's savepoints: this REGISTER alone is undone
                results.append(error)
            else:
                results.append(None)
        return results

    def apply(self, aor: str, changes: Sequence[Change]) -> None:
        # Work on a copy and swap it in at the end: a change that raises leaves the AOR as it was.
        current = list(self._by_aor.get(aor, ()))
        for change in changes:
            check_change(aor, change)
            if isinstance(change, Put):
                current = [b for b in current if not same_contact(b.contact, change.binding.contact)]
                current.append(change.binding)
            elif isinstance(change, Remove):
                current = [b for b in current if not same_contact(b.contact, change.contact)]
            elif isinstance(change, RemoveAll):
                current = []
        if current:
            self._by_aor[aor] = current
        else:
            self._by_aor.pop(aor, None)

    def put(self, binding: Binding) -> None:
        self.apply(binding.aor, [Put(binding)])

    def remove(self, aor: str, contact: str) -> int:
        before = len(self._by_aor.get(aor, ()))
        self.apply(aor, [Remove(contact)])
        return before - len(self._by_aor.get(aor, ()))

    def remove_all(self, aor: str) -> int:
        return len(self._by_aor.pop(aor, ()))

    def remove_expired(self, aor: str, contact: str, expires: float) -> int:
        current = self._by_aor.get(aor, [])
        kept = [b for b in current if b.expires > expires or not same_contact(b.contact, contact)]
        if kept:
            self._by_aor[aor] = kept
        else:
            self._by_aor.pop(aor, None)
        return len(current) - len(kept)

    def purge(self, now: float) -> int:
        purged = 0
        for aor in list(self._by_aor):
            kept = [b for b in self._by_aor[aor] if b.expires > now]
            purged += len(self._by_aor[aor]) - len(kept)
            if kept:
                self._by_aor[aor] = kept
            else:
                del self._by_aor[aor]
        return purged

    def all_aors(self, now: float) -> list[str]:
        return sorted(aor for aor, bindings in self._by_aor.items() if any(b.expires > now for b in bindings))


class MemoryUserStore:
    def __init__(self) -> None:
        self._users: dict[tuple[str, str], tuple[str, dict[str, str]]] = {}  # (user, realm) -> (domain, HA1s)

    def add(self, user: str, domain: str, realm: str, ha1_by_algorithm: Mapping[str, str]) -> bool:
        check_user(user, domain, realm)
        ha1s = checked_ha1s(ha1_by_algorithm)
        new = (user, realm) not in self._users
        self._users[(user, realm)] = (domain, ha1s)
        return new

    def remove(self, user: str, realm: str | None = None) -> int:
        keys = [key for key in self._users if key[0] == user and (realm is None or key[1] == realm)]
        for key in keys:
            del self._users[key]
        return len(keys)

    def get(self, user: str, realm: str) -> dict[str, str] | None:
        entry = self._users.get((user, realm))
        return dict(entry[1]) if entry is not None else None

    def list(self) -> list[User]:
        return sorted(
            (User(user, domain, realm, tuple(sorted(ha1s))) for (user, realm), (domain, ha1s) in self._users.items()),
            key=lambda u: (u.user, u.realm),
        )

    def any(self) -> bool:
        return bool(self._users)


class MemoryStore:
    """``memory:``: both stores, gone when the process ends."""

    def __init__(self) -> None:
        self._locations = MemoryLocationStore()
        self._users = MemoryUserStore()
        self._publications = MemoryPublicationStore()
        self._lists = MemoryListStore()
        self._subscriptions = MemorySubscriptionStore()
        self._messages = MemoryMessageStore()

    @property
    def locations(self) -> MemoryLocationStore:
        return self._locations

    @property
    def users(self) -> MemoryUserStore:
        return self._users

    @property
    def publications(self) -> MemoryPublicationStore:
        return self._publications

    @cached_property
    def presence_rules(self) -> MemoryRuleStore:
        """Watcher authorization rules (``sipactors.store.rules``)."""
        return MemoryRuleStore()

    @property
    def lists(self) -> MemoryListStore:
        """Presence lists (RFC 4662; ``sipactors.store.lists``)."""
        return self._lists

    @property
    def subscriptions(self) -> MemorySubscriptionStore:
        """The notifier's subscriptions (``sipactors.store.subscriptions``)."""
        return self._subscriptions

    @property
    def messages(self) -> MemoryMessageStore:
        return self._messages

    def close(self) -> None:
        """Nothing to release; the data stays readable until the object goes."""

    def __enter__(self) -> MemoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
