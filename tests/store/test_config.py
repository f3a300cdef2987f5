"""``[server] store`` in the configuration file (examples/sipactors.toml)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipactors.server import load_config
from sipactors.store import DEFAULT_STORE_URL

REPO = Path(__file__).resolve().parents[2]


def test_the_store_defaults_to_sipactors_db_in_the_current_folder() -> None:
    assert load_config(None, None, None, None).store == DEFAULT_STORE_URL == "sqlite:///./sipactors.db"


def test_the_example_configuration_names_the_default_store() -> None:
    assert load_config(REPO / "examples" / "sipactors.toml", None, None, None).store == DEFAULT_STORE_URL


def test_the_store_is_read_from_the_server_table(tmp_path: Path) -> None:
    config = tmp_path / "sipactors.toml"
    config.write_text('[server]\nstore = "sqlite:////var/lib/sipactors/registrations.db"\n')
    assert load_config(config, None, None, None).store == "sqlite:////var/lib/sipactors/registrations.db"


def test_a_store_url_of_no_known_form_stops_the_server_before_it_starts(tmp_path: Path) -> None:
    config = tmp_path / "sipactors.toml"
    config.write_text('[server]\nstore = "redis://localhost"\n')
    with pytest.raises(SystemExit, match="redis://localhost"):
        load_config(config, None, None, None)
