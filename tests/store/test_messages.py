"""Stored MESSAGEs (RFC 3428 §7 store-and-forward), the same behaviour from every store; the SQLite file
keeps them across a restart and a ``kill -9``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

from sipactors.store import MemoryStore, SqliteStore
from sipactors.store.messages import StoredMessage

Store = MemoryStore | SqliteStore
BOB = "sip:bob@example.com"


def message(aor: str = BOB, received: float = 100.0, expires: float = 1000.0, body: bytes = b"hi") -> StoredMessage:
    return StoredMessage(aor, '"Alice" <sip:alice@example.com>', f"<{aor}>", "Fri, 15 Jan 2027 08:00:00 GMT",
                         "text/plain", body, "alice", received, expires)


def test_a_message_comes_back_with_every_field_and_an_id(store: Store) -> None:
    stored = store.messages.add(message(body=b"\x00\xffbinary"))
    assert stored.id > 0 and stored == replace(message(body=b"\x00\xffbinary"), id=stored.id)
    assert store.messages.waiting(BOB, now=0.0) == [stored]


def test_messages_come_back_oldest_first_per_aor(store: Store) -> None:
    late = store.messages.add(message(received=300.0))
    early = store.messages.add(message(received=100.0))
    same = store.messages.add(message(received=100.0))
    other = store.messages.add(message("sip:carol@example.com", received=50.0))
    assert store.messages.waiting(BOB, 0.0) == [early, same, late]
    assert store.messages.count(BOB, 0.0) == 3
    assert store.messages.all(0.0) == [early, same, late, other]


def test_an_expired_message_is_gone_for_every_reader_and_purged(store: Store) -> None:
    store.messages.add(message(expires=500.0))
    kept = store.messages.add(message(expires=900.0))
    assert store.messages.waiting(BOB, 500.0) == [kept] and store.messages.count(BOB, 500.0) == 1
    assert store.messages.purge(500.0) == 1
    assert store.messages.all(0.0) == [kept]


def test_remove_deletes_one_message(store: Store) -> None:
    first, second = store.messages.add(message()), store.messages.add(message())
    assert store.messages.remove(first.id) == 1 and store.messages.remove(first.id) == 0
    assert store.messages.waiting(BOB, 0.0) == [second]


def test_the_messages_table_leaves_the_schema_version_alone(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with SqliteStore(path) as store:
        stored = store.messages.add(message())
    with SqliteStore(path) as store:  # reopened: same version, the table found again
        assert store.messages.waiting(BOB, 0.0) == [stored]


def test_a_message_added_survives_kill_9_of_the_process(tmp_path: Path) -> None:
    database = tmp_path / "s.db"
    code = (
        "import os, signal, sys\n"
        "from sipactors.store import SqliteStore\n"
        "from sipactors.store.messages import StoredMessage\n"
        f"store = SqliteStore({str(database)!r})\n"
        f"store.messages.add(StoredMessage({BOB!r}, '<sip:a@x>', '<sip:b@x>', 'date', None, b'kept', None, 1.0, 9.0))\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env={**os.environ})
    assert done.returncode == -signal.SIGKILL
    with SqliteStore(database) as store:
        (kept,) = store.messages.waiting(BOB, 0.0)
    assert kept.body == b"kept" and kept.content_type is None
