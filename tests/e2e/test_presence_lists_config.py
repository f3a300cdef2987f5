"""``[[presence.list]]`` (RFC 4662 presence lists) in the configuration: read, documented in the example file,
put in the store when ``sipactors serve`` starts, and a non-local member refused before it starts."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sipactors.server import load_config
from sipactors.store import open_store
from sipactors.store.lists import Member
from tests.e2e.test_serve import REPO, start_server, stop_server

EXAMPLE = REPO / "examples" / "sipactors.toml"


def _example_lists_block() -> str:
    """The commented [[presence.list]] example of examples/sipactors.toml, uncommented."""
    lines = EXAMPLE.read_text(encoding="utf-8").splitlines()
    start = lines.index("# [[presence.list]]")
    return "\n".join(line.removeprefix("# ").split("   #")[0] for line in lines[start:start + 5]) + "\n"


def test_the_documented_example_loads(tmp_path: Path) -> None:
    config = tmp_path / "lists.toml"
    config.write_text(_example_lists_block(), encoding="utf-8")
    (entry,) = load_config(config, None, None, None).presence_lists
    assert (entry.uri, entry.owner, entry.name) == ("sip:alice-buddies@example.com", "sip:alice@example.com", "Friends")
    assert entry.members == (Member("sip:bob@example.com"), Member("sip:carol@example.com", "Carol"))


def test_serve_puts_configured_lists_in_the_store(tmp_path: Path) -> None:
    config = tmp_path / "sipactors.toml"
    config.write_text('[registrar]\ndomains = ["example.com"]\n\n' + _example_lists_block(), encoding="utf-8")
    store = tmp_path / "sipactors.db"
    _, process, _ = start_server(store, "--config", str(config))
    stop_server(process)  # the banner came after the lists were committed: even SIGKILL finds them there
    with open_store(f"sqlite:///{store}") as opened:
        found = opened.lists.get("sip:alice-buddies@example.com")
    assert found is not None and found.owner == "sip:alice@example.com"
    assert [m.uri for m in found.members] == ["sip:bob@example.com", "sip:carol@example.com"]


def test_serve_refuses_a_non_local_member(tmp_path: Path) -> None:
    config = tmp_path / "sipactors.toml"
    config.write_text('[[presence.list]]\nuri = "sip:a-buddies@example.com"\nowner = "sip:a@example.com"\n'
                      'members = ["sip:ed@dallas.example.net"]\n', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "sipactors", "serve", "--port", "0", "--store", f"sqlite:///{tmp_path / 's.db'}",
         "--no-dns", "--config", str(config)],
        cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode != 0
    assert "not a local presentity" in result.stderr and "RFC 4662 §6" in result.stderr
