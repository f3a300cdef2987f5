"""Users for the real clients: added to the store with ``sipactors users add``, and a server config that
offers MD5 alone, the only digest SIPp 3.6 and baresip 1.0 compute (and SIPp reads the first challenge
only). The default offers SHA-256 first (RFC 8760 §2.4); ``tests/e2e/test_registrar.py`` checks that with
its own client."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.test_serve import REPO

PASSWORD = "secret"


def with_users(store: Path, users: list[str], tmp: Path) -> list[str]:
    """Add ``users`` (domain 127.0.0.1, password :data:`PASSWORD`) to ``store``; the ``sipactors serve``
    options for the MD5-only config (written in ``tmp``)."""
    for user in users:
        added = subprocess.run(
            [sys.executable, "-m", "sipactors", "users", "add", f"{user}@127.0.0.1", "--password", PASSWORD,
             "--store", f"sqlite:///{store}"],
            cwd=REPO, capture_output=True, text=True, timeout=60,
        )
        assert added.returncode == 0, added.stderr
    config = tmp / "sipactors.toml"
    config.write_text('[auth]\nalgorithms = ["MD5"]\n')
    return ["--config", str(config)]
