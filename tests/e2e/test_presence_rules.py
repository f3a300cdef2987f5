"""``sipactors serve --config`` writes the ``[[presence.rule]]`` tables into its store before it starts
listening, where ``sipactors presence rules`` (another process) finds them."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipactors.cli import main
from tests.e2e.test_serve import start_server, stop_server


def test_the_configured_rules_are_in_the_store_once_the_server_is_up(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    config = tmp_path / "sipactors.toml"
    config.write_text(
        '[[presence.rule]]\npresentity = "alice@example.com"\nwatcher = "*@example.org"\naction = "polite-block"\n'
    )
    store = tmp_path / "sipactors.db"
    _, process, banner = start_server(store, "--config", str(config))
    try:
        assert process.poll() is None, banner
        assert main(["presence", "rules", "--store", f"sqlite:///{store}"]) == 0
    finally:
        stop_server(process)
    lines = [line.split() for line in capsys.readouterr().out.splitlines()]
    assert lines == [["PRESENTITY", "WATCHER", "ACTION"], ["sip:alice@example.com", "*@example.org", "polite-block"]]
