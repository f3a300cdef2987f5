"""``[proxy]`` in the configuration file (examples/sipactors.toml): record_route, recurse, timer_c and
auth_methods, their defaults, and the values the RFC forbids refused before the server starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipactors.roles.proxy import DEFAULT_AUTH_METHODS, TIMER_C_MS
from sipactors.server import ServerConfig, load_config

REPO = Path(__file__).resolve().parents[2]


def test_the_defaults_and_the_example_agree() -> None:
    default = load_config(None, None, None, None)
    example = load_config(REPO / "examples" / "sipactors.toml", None, None, None)
    for config in (default, example):
        assert config.record_route is True and config.recurse is False
        assert config.timer_c * 1000 == TIMER_C_MS
        assert set(config.auth_methods) == DEFAULT_AUTH_METHODS


def test_the_proxy_table_is_read(tmp_path: Path) -> None:
    path = tmp_path / "sipactors.toml"
    path.write_text('[proxy]\nrecord_route = false\nrecurse = true\ntimer_c = 200\nauth_methods = ["invite", "OPTIONS"]\n')
    config = load_config(path, None, None, None)
    assert (config.record_route, config.recurse, config.timer_c, config.auth_methods) == (False, True, 200.0, ("INVITE", "OPTIONS"))
    assert ServerConfig().timer_c > 180


@pytest.mark.parametrize(("text", "message"), [
    ("timer_c = 180", "above 180 seconds"),
    ('auth_methods = ["INVITE", "ACK"]', "never challenged"),
])
def test_values_the_rfc_forbids_stop_the_server_before_it_starts(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "sipactors.toml"
    path.write_text(f"[proxy]\n{text}\n")
    with pytest.raises(SystemExit, match=message):
        load_config(path, None, None, None)
