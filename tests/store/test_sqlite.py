"""The SQLite store: what survives a restart and a ``kill -9``, the schema, and the URL forms."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from sipactors.store import SCHEMA_VERSION, Binding, MemoryStore, SqliteStore, StoreError, open_store
from sipactors.store.sqlite import ANY_USERS_TTL

AOR = "sip:bob@biloxi.com"


def _binding(contact: str, cseq: int = 1) -> Binding:
    return Binding(aor=AOR, contact=contact, expires=1000.0, call_id="a84b4c76e66710", cseq=cseq, q=0.5,
                   path=("sip:edge.biloxi.com;lr",), updated=10.0)


def test_bindings_and_users_survive_closing_and_reopening(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sipactors.db'}"
    with open_store(url) as store:
        store.locations.put(_binding("sip:bob@192.0.2.4"))
        store.users.add("bob", "biloxi.com", "biloxi.com", {"MD5": "00" * 16})
    with open_store(url) as store:
        assert store.locations.bindings(AOR, 0.0) == [_binding("sip:bob@192.0.2.4")]
        assert store.users.get("bob", "biloxi.com") == {"MD5": "00" * 16}


def _child(database: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` in a fresh interpreter with ``store`` open on ``database``; it ends by killing itself."""
    script = textwrap.dedent("""
        import os, signal, sys
        from sipactors.store import Binding, Put, RemoveAll, open_store
        store = open_store("sqlite:///" + sys.argv[1])
        def binding(contact, cseq):
            return Binding(aor="sip:bob@biloxi.com", contact=contact, expires=1000.0, call_id="a84b4c76e66710",
                           cseq=cseq, q=0.5, path=("sip:edge.biloxi.com;lr",), updated=10.0)
    """) + textwrap.dedent(body) + "\nos.kill(os.getpid(), signal.SIGKILL)\n"
    return subprocess.run([sys.executable, "-c", script, str(database)], capture_output=True, text=True, timeout=60,
                          check=False)


def test_a_binding_written_survives_kill_9_of_the_process(tmp_path: Path) -> None:
    database = tmp_path / "sipactors.db"
    result = _child(database, """
        store.locations.put(binding("sip:bob@192.0.2.4", 1))
        store.users.add("bob", "biloxi.com", "biloxi.com", {"MD5": "00" * 16})
    """)
    assert result.returncode == -signal.SIGKILL, result.stderr
    assert (tmp_path / "sipactors.db-wal").exists()  # the process died without a checkpoint: it is all in the WAL
    with open_store(f"sqlite:///{database}") as store:
        assert store.locations.bindings(AOR, 0.0) == [_binding("sip:bob@192.0.2.4")]
        assert store.users.any()


def test_a_crash_in_the_middle_of_apply_leaves_the_previous_registration(tmp_path: Path) -> None:
    database = tmp_path / "sipactors.db"
    with open_store(f"sqlite:///{database}") as store:
        store.locations.put(_binding("sip:bob@192.0.2.4"))
    # The process dies after the RemoveAll and one Put have been written, before the commit.
    result = _child(database, """
        import sipactors.store.sqlite as module
        checked = []
        def check_then_die(aor, change):
            checked.append(change)
            if len(checked) == 3:
                os.kill(os.getpid(), signal.SIGKILL)
        module.check_change = check_then_die
        store.locations.apply("sip:bob@biloxi.com", [RemoveAll(), Put(binding("sip:bob@192.0.2.5", 2)),
                                                     Put(binding("sip:bob@192.0.2.6", 2))])
    """)
    assert result.returncode == -signal.SIGKILL, result.stderr
    with open_store(f"sqlite:///{database}") as store:
        assert store.locations.bindings(AOR, 0.0) == [_binding("sip:bob@192.0.2.4")]


def test_the_file_is_in_wal_mode_with_a_versioned_schema(tmp_path: Path) -> None:
    database = tmp_path / "sipactors.db"
    open_store(f"sqlite:///{database}").close()
    connection = sqlite3.connect(database)
    try:
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert connection.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        tables = {name for (name,) in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"schema_version", "bindings", "users", "credentials"}
    finally:
        connection.close()


def test_a_file_from_a_newer_sipactors_is_refused_untouched(tmp_path: Path) -> None:
    database = tmp_path / "sipactors.db"
    open_store(f"sqlite:///{database}").close()
    connection = sqlite3.connect(database)
    with connection:
        connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    connection.close()
    with pytest.raises(StoreError, match="schema version"):
        open_store(f"sqlite:///{database}")
    connection = sqlite3.connect(database)
    assert connection.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION + 1,)]
    connection.close()


def test_a_file_that_is_not_a_database_is_refused_untouched(tmp_path: Path) -> None:
    database = tmp_path / "notes.txt"
    database.write_bytes(b"my notes, not a database\n" * 100)
    with pytest.raises(StoreError):
        open_store(f"sqlite:///{database}")
    assert database.read_bytes() == b"my notes, not a database\n" * 100


def test_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert isinstance(open_store("memory:"), MemoryStore)
    with open_store("sqlite:///./relative.db") as relative:
        assert isinstance(relative, SqliteStore)
    assert (tmp_path / "relative.db").exists()
    with open_store(f"sqlite:///{tmp_path / 'absolute.db'}?synchronous=normal") as absolute:
        assert absolute.path == str(tmp_path / "absolute.db")
    with open_store("sqlite:///:memory:") as in_memory:
        assert in_memory.path == ":memory:"
    for bad in ("redis://localhost", "sqlite://x.db", "sqlite:///", "sqlite:///x.db?synchronous=off",
                "sqlite:///x.db?journal=delete", "/tmp/x.db"):
        with pytest.raises(ValueError):
            open_store(bad)


def test_any_user_is_cached_for_a_second_and_own_changes_are_seen_at_once(tmp_path: Path) -> None:
    """``users.any()`` (asked per request for open mode) keeps its answer for ``ANY_USERS_TTL``: a user that
    another connection (the ``sipactors users`` CLI) adds is seen once that has passed; ours at once."""
    url = f"sqlite:///{tmp_path / 'sipactors.db'}"
    now = [100.0]
    with open_store(url) as server, open_store(url) as cli:
        server.users._clock = lambda: now[0]  # type: ignore[attr-defined]
        assert not server.users.any()
        cli.users.add("bob", "biloxi.com", "biloxi.com", {"MD5": "00" * 16})
        assert not server.users.any()  # within the second: the cached answer
        now[0] += ANY_USERS_TTL
        assert server.users.any()
        server.users.remove("bob")
        assert not server.users.any()  # our own change: at once
        server.users.add("carol", "biloxi.com", "biloxi.com", {"MD5": "00" * 16})
        assert server.users.any()
        cli.users.remove("carol")
        now[0] += ANY_USERS_TTL - 0.001
        assert server.users.any()
        now[0] += 0.001
        assert not server.users.any()
