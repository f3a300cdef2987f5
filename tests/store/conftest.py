"""One suite over every store configuration (DESIGN §6): memory, an SQLite file, SQLite in memory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sipactors.store import MemoryStore, SqliteStore, open_store


@pytest.fixture(params=["memory:", "sqlite-file", "sqlite:///:memory:"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MemoryStore | SqliteStore]:
    url = f"sqlite:///{tmp_path / 'store.db'}" if request.param == "sqlite-file" else request.param
    opened = open_store(url)
    yield opened
    opened.close()
