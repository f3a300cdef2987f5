"""Storage (DESIGN §4): one small interface per kind of state, SQLite by default, memory for unit tests.

``open_store(url)`` opens every kind of state of a node at once:

* ``sqlite:///PATH``: an SQLite file; PATH is relative to the current folder (``sqlite:///./sipactors.db``,
  the default) and absolute with a fourth slash (``sqlite:////var/lib/sipactors.db``), as SQLAlchemy reads
  such URLs. ``?synchronous=normal`` trades power-loss durability for one fsync less per change (see
  ``sipactors.store.sqlite``). ``sqlite:///:memory:`` is an SQLite database that lives in the process.
* ``memory:``: plain Python objects (``MemoryStore``), behaving exactly as the SQLite store does.
"""

from __future__ import annotations

from urllib.parse import parse_qs

from sipactors.store.memory import MemoryLocationStore, MemoryStore, MemoryUserStore
from sipactors.store.model import (
    Binding,
    Change,
    LocationStore,
    Put,
    Remove,
    RemoveAll,
    Source,
    Store,
    User,
    UserStore,
    canonical_aor,
    same_contact,
)
from sipactors.store.sqlite import SCHEMA_VERSION, SqliteStore, StoreError

__all__ = [
    "DEFAULT_STORE_URL", "SCHEMA_VERSION", "Binding", "Change", "LocationStore", "MemoryLocationStore",
    "MemoryStore", "MemoryUserStore", "Put", "Remove", "RemoveAll", "Source", "SqliteStore", "Store",
    "StoreError", "User", "UserStore", "canonical_aor", "check_store_url", "open_store", "same_contact", "store_file",
]

DEFAULT_STORE_URL = "sqlite:///./sipactors.db"


def _parse(url: str) -> tuple[str, str, str]:
    """``(kind, path, synchronous)``; ``ValueError`` naming the accepted forms."""
    if url == "memory:":
        return "memory", "", "full"
    if url.startswith("sqlite:///"):
        path, _, query = url[len("sqlite:///"):].partition("?")
        options = parse_qs(query, keep_blank_values=True, strict_parsing=bool(query))
        synchronous = options.pop("synchronous", ["full"])[-1].lower()
        if options:
            raise ValueError(f"store URL {url!r}: unknown option {', '.join(sorted(options))} (only synchronous)")
        if synchronous not in ("full", "normal"):
            raise ValueError(f"store URL {url!r}: synchronous is full or normal")
        if not path:
            raise ValueError(f"store URL {url!r} names no file")
        return "sqlite", path, synchronous
    raise ValueError(f"store URL {url!r}: expected sqlite:///PATH, sqlite:///:memory: or memory:")


def check_store_url(url: str) -> str:
    """``url`` if ``open_store`` would understand it (the configuration checks it before anything starts)."""
    _parse(url)
    return url


def store_file(url: str) -> str | None:
    """The file ``url`` names, or None for a store without one (``memory:``, ``sqlite:///:memory:``)."""
    kind, path, _ = _parse(url)
    return path if kind == "sqlite" and path != ":memory:" else None


def open_store(url: str = DEFAULT_STORE_URL) -> MemoryStore | SqliteStore:
    """The store ``url`` names (creating an SQLite file and its schema on first use).

    ``ValueError`` for a URL of no known form; ``StoreError`` if the file cannot be used.
    """
    kind, path, synchronous = _parse(url)
    if kind == "memory":
        return MemoryStore()
    return SqliteStore(path, synchronous)
