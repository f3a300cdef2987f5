"""Users and their digest credentials: HA1 per algorithm (RFC 7616 §3.4.2), never a password."""

from __future__ import annotations

import pytest

from sipactors.store import MemoryStore, SqliteStore, User

Store = MemoryStore | SqliteStore
MD5 = "939e7578ed9e3c518a452acee763bce9"


def test_with_no_user_the_server_runs_open(store: Store) -> None:
    assert not store.users.any() and store.users.list() == []
    assert store.users.get("alice", "atlanta.com") is None


def test_a_user_added_is_found_by_user_and_realm(store: Store) -> None:
    assert store.users.add("alice", "atlanta.com", "atlanta.com", {"md5": MD5.upper(), "SHA-256": "ab" * 32})
    assert store.users.any()
    assert store.users.get("alice", "atlanta.com") == {"MD5": MD5, "SHA-256": "ab" * 32}
    assert store.users.get("alice", "biloxi.com") is None
    assert store.users.get("Alice", "atlanta.com") is None  # digest usernames are case-sensitive
    assert store.users.list() == [User("alice", "atlanta.com", "atlanta.com", ("MD5", "SHA-256"))]


def test_adding_again_replaces_every_ha1(store: Store) -> None:
    store.users.add("alice", "atlanta.com", "atlanta.com", {"MD5": MD5, "SHA-256": "ab" * 32})
    assert not store.users.add("alice", "atlanta.com", "atlanta.com", {"SHA-256": "cd" * 32})
    assert store.users.get("alice", "atlanta.com") == {"SHA-256": "cd" * 32}  # no old MD5 HA1 stays behind


def test_remove_from_one_realm_or_all(store: Store) -> None:
    for realm in ("atlanta.com", "biloxi.com"):
        store.users.add("alice", "atlanta.com", realm, {"MD5": MD5})
    store.users.add("bob", "biloxi.com", "biloxi.com", {"MD5": MD5})
    assert store.users.remove("alice", "biloxi.com") == 1
    assert [(u.user, u.realm) for u in store.users.list()] == [("alice", "atlanta.com"), ("bob", "biloxi.com")]
    assert store.users.remove("alice") == 1
    assert store.users.remove("alice") == 0
    assert [u.user for u in store.users.list()] == ["bob"]


@pytest.mark.parametrize("ha1s", [{}, {"MD5": "not hex"}, {"": MD5}])
def test_credentials_that_are_not_ha1s_are_refused(store: Store, ha1s: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        store.users.add("alice", "atlanta.com", "atlanta.com", ha1s)
    assert not store.users.any()
