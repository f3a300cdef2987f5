"""Published event state (RFC 3903 §6) in every store configuration: a change replaces the previous
entity-tag in one step, expiry is by the wall clock given, and an SQLite file keeps it across a reopen."""

from __future__ import annotations

from pathlib import Path

from sipactors.store import MemoryStore, SqliteStore, open_store
from sipactors.store.publications import Publication

ALICE, BOB = "sip:alice@example.com", "sip:bob@example.com"
NOW = 1_800_000_000.0


def _p(tag: str, expires: float, updated: float = NOW, who: str = ALICE, body: bytes = b"<x/>") -> Publication:
    return Publication(who, tag, body, expires, updated)


def test_put_replaces_the_previous_tag_and_lists_oldest_change_first(store: MemoryStore | SqliteStore) -> None:
    publications = store.publications
    publications.put(_p("a", NOW + 60, NOW + 2))
    publications.put(_p("b", NOW + 60, NOW + 1, body=b"\x00\xff binary"))
    publications.put(_p("c", NOW + 90, NOW + 2), replaces="a")  # §6 step 6: the new tag replaces the old
    assert [p.etag for p in publications.publications(ALICE, NOW)] == ["b", "c"]
    assert publications.publications(ALICE, NOW)[0].body == b"\x00\xff binary"
    assert publications.publications(BOB, NOW) == []


def test_expiry_remove_and_purge(store: MemoryStore | SqliteStore) -> None:
    publications = store.publications
    publications.put(_p("a", NOW + 60))
    publications.put(_p("b", NOW + 120))
    publications.put(_p("z", NOW + 30, who=BOB))
    assert [p.etag for p in publications.publications(ALICE, NOW + 60)] == ["b"]  # expires > now
    assert publications.remove_expired(ALICE, "b", NOW + 60) == 0  # b runs until NOW + 120: spared
    assert publications.remove_expired(ALICE, "a", NOW + 60) == 1
    assert publications.remove(ALICE, "b") == 1 and publications.remove(ALICE, "b") == 0
    assert [p.etag for p in publications.all(NOW)] == ["z"]
    assert publications.purge(NOW + 30) == 1 and publications.all(0.0) == []


def test_an_sqlite_file_keeps_publications_across_a_reopen(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    with open_store(url) as first:
        first.locations.purge(NOW)  # an existing store: the publications table is added on first use
        first.publications.put(_p("a", NOW + 60))
    with open_store(url) as second:
        assert second.publications.all(NOW) == [_p("a", NOW + 60)]
