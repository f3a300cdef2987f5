"""Presence lists in the store (RFC 4662 §3: a list has its own URI): memory and SQLite alike, and the
SQLite lists survive a restart."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sipactors.store import MemoryStore, SqliteStore, open_store
from sipactors.store.lists import ListStore, Member, MemoryListStore, PresenceList, default_list_uri

LIST = "sip:alice-buddies@example.com"


@pytest.fixture(params=["memory", "sqlite"])
def lists(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ListStore]:
    store: MemoryStore | SqliteStore = MemoryStore() if request.param == "memory" else SqliteStore(tmp_path / "s.db")
    with store:
        yield store.lists


def test_a_list_keeps_its_owner_name_and_members_in_order(lists: ListStore) -> None:
    assert lists.put(LIST, "sip:alice@Example.com", "Friends") is True
    assert lists.add_member(LIST, "sip:carol@example.com", "Carol") is True
    assert lists.add_member(LIST, "sip:bob@EXAMPLE.COM;transport=tcp") is True  # canonical: no parameters
    assert lists.add_member(LIST, "sip:carol@example.com", "C.") is False  # renamed where it is
    assert lists.get(LIST) == PresenceList(LIST, "sip:alice@example.com", "Friends",
                                           (Member("sip:carol@example.com", "C."), Member("sip:bob@example.com")))
    assert lists.put(LIST, "sip:alice@example.com", "Buddies") is False  # members stay
    found = lists.get(LIST)
    assert found is not None and found.name == "Buddies" and len(found.members) == 2
    assert lists.containing("sip:bob@example.com") == [LIST]
    assert lists.remove_member(LIST, "sip:bob@example.com") and not lists.remove_member(LIST, "sip:bob@example.com")
    assert lists.containing("sip:bob@example.com") == []


def test_owners_lists_set_members_and_delete(lists: ListStore) -> None:
    lists.put(LIST, "sip:alice@example.com")
    lists.put("sip:bob-buddies@example.com", "sip:bob@example.com")
    assert [entry.uri for entry in lists.all("sip:alice@example.com")] == [LIST]
    assert [entry.uri for entry in lists.all()] == [LIST, "sip:bob-buddies@example.com"]
    lists.set_members(LIST, [Member("sip:x@example.com"), Member("sip:y@example.com", "Y"), Member("sip:x@example.com")])
    found = lists.get(LIST)
    assert found is not None and found.members == (Member("sip:x@example.com"), Member("sip:y@example.com", "Y"))
    with pytest.raises(KeyError):
        lists.add_member("sip:none@example.com", "sip:x@example.com")
    with pytest.raises(KeyError):
        lists.set_members("sip:none@example.com", [])
    assert lists.remove(LIST) and not lists.remove(LIST)
    assert lists.get(LIST) is None and lists.containing("sip:x@example.com") == []


def test_sqlite_lists_survive_a_restart(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sipactors.db'}"
    with open_store(url) as store:
        store.lists.put(LIST, "sip:alice@example.com", "Friends")
        store.lists.add_member(LIST, "sip:bob@example.com", "Bob")
        store.lists.add_member(LIST, "sip:carol@example.com")
    with open_store(url) as store:
        assert store.lists.get(LIST) == PresenceList(
            LIST, "sip:alice@example.com", "Friends", (Member("sip:bob@example.com", "Bob"), Member("sip:carol@example.com")))
        assert store.lists.containing("sip:carol@example.com") == [LIST]


def test_default_list_uri_follows_the_rfc4662_example_convention() -> None:
    assert default_list_uri("sip:Adam@Vancouver.example.com") == "sip:Adam-buddies@vancouver.example.com"
    with pytest.raises(ValueError):
        default_list_uri("sip:example.com")


_members = st.sampled_from([f"sip:{n}@example.com" for n in ("a", "b", "c", "d")])
_operations = st.lists(st.one_of(
    st.tuples(st.just("add"), _members, st.sampled_from(["", "N"])),
    st.tuples(st.just("remove"), _members, st.just("")),
    st.tuples(st.just("set"), st.lists(_members, max_size=3).map(tuple), st.just("")),
), max_size=12)


@settings(max_examples=40)
@given(_operations)
def test_sqlite_behaves_as_memory(tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[object, ...]]) -> None:
    memory = MemoryListStore()
    with SqliteStore(tmp_path_factory.mktemp("lists") / "s.db") as store:
        for lists in (memory, store.lists):
            lists.put(LIST, "sip:alice@example.com")
        for action, argument, name in operations:
            for lists in (memory, store.lists):
                if action == "add":
                    lists.add_member(LIST, str(argument), str(name))
                elif action == "remove":
                    lists.remove_member(LIST, str(argument))
                else:
                    lists.set_members(LIST, [Member(str(uri)) for uri in argument])  # type: ignore[union-attr]
            assert store.lists.get(LIST) == memory.get(LIST)
