"""``sipactors presence``: watcher authorization rules from the command line, and from the configuration."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sipactors.cli import main
from sipactors.roles.events import Authorization
from sipactors.server import apply_presence_rules, load_config, watcher_rules
from sipactors.store import open_store
from sipactors.store.rules import Rule

SCRIPT = Path(sys.executable).with_name("sipactors")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sipactors.db'}"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SCRIPT, *args], capture_output=True, text=True, timeout=60, check=False)


def test_allow_in_one_process_is_listed_by_rules_in_another(url: str) -> None:
    added = run("presence", "allow", "alice@example.com", "bob@example.org", "--store", url)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "added: sip:alice@example.com allow sip:bob@example.org"
    listed = run("presence", "rules", "--store", url)
    assert listed.returncode == 0, listed.stderr
    assert [line.split() for line in listed.stdout.splitlines()] == [
        ["PRESENTITY", "WATCHER", "ACTION"], ["sip:alice@example.com", "sip:bob@example.org", "allow"],
    ]


def test_every_action_a_domain_rule_and_forget(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    for action, watcher in (("block", "*@Evil.NET"), ("polite-block", "sip:carol@example.org"),
                            ("confirm", "*"), ("allow", "bob@example.org")):
        assert main(["presence", action, "alice@example.com", watcher, "--store", url]) == 0
    assert main(["presence", "block", "alice@example.com", "bob@example.org", "--store", url]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == "updated: sip:alice@example.com block sip:bob@example.org"
    with open_store(url) as store:
        assert store.presence_rules.rules() == [
            Rule("sip:alice@example.com", "*", Authorization.PENDING),
            Rule("sip:alice@example.com", "*@evil.net", Authorization.BLOCK),
            Rule("sip:alice@example.com", "sip:bob@example.org", Authorization.BLOCK),
            Rule("sip:alice@example.com", "sip:carol@example.org", Authorization.POLITE_BLOCK),
        ]
    assert main(["presence", "forget", "alice@example.com", "*@evil.net", "--store", url]) == 0
    assert main(["presence", "forget", "alice@example.com", "*@evil.net", "--store", url]) == 1
    assert "no rule of sip:alice@example.com for *@evil.net" in capsys.readouterr().err
    assert main(["presence", "rules", "bob@example.org", "--store", url]) == 0
    assert capsys.readouterr().out.strip() == "no rules for sip:bob@example.org"


def test_bare_names_take_the_domain_given_or_that_of_the_users(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presence", "allow", "alice", "bob", "--store", url]) == 64
    assert "write USER@DOMAIN or --domain DOMAIN" in capsys.readouterr().err
    assert main(["presence", "allow", "alice", "bob", "--domain", "example.com", "--store", url]) == 0
    assert "sip:alice@example.com allow sip:bob@example.com" in capsys.readouterr().out
    assert main(["users", "add", "carol@atlanta.com", "--password", "x", "--store", url]) == 0
    assert main(["presence", "block", "carol", "dave", "--store", url]) == 0  # the one domain of the users
    assert "sip:carol@atlanta.com block sip:dave@atlanta.com" in capsys.readouterr().out
    assert main(["users", "add", "erin@biloxi.com", "--password", "x", "--store", url]) == 0
    assert main(["presence", "block", "carol", "dave", "--store", url]) == 64  # two domains: which one?


def test_reading_and_forgetting_do_not_create_a_store(tmp_path: Path, url: str) -> None:
    assert main(["presence", "rules", "--store", url]) == 66
    assert main(["presence", "forget", "a@b.c", "d@e.f", "--store", url]) == 66
    assert not list(tmp_path.iterdir())


def test_a_bad_watcher_is_a_usage_error(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["presence", "allow", "alice@example.com", "*@", "--store", url]) == 64
    assert "not a domain rule" in capsys.readouterr().err


def test_configured_rules_are_written_into_the_store_at_start(tmp_path: Path, url: str) -> None:
    config = tmp_path / "sipactors.toml"
    config.write_text(
        '[registrar]\ndomains = ["example.com"]\n'
        '[presence]\ndefault_rule = "block"\n'
        '[[presence.rule]]\npresentity = "alice"\nwatcher = "bob"\naction = "allow"\n'
        '[[presence.rule]]\npresentity = "alice"\nwatcher = "*@example.org"\naction = "polite-block"\n'
    )
    loaded = load_config(config, None, None, None)
    assert loaded.presence_default is Authorization.BLOCK
    with open_store(url) as store:
        assert apply_presence_rules(loaded, store.presence_rules) == 2
        revision = store.presence_rules.revision()
        assert apply_presence_rules(loaded, store.presence_rules) == 0  # unchanged: the revision stays
        assert store.presence_rules.revision() == revision
        decide = watcher_rules(loaded, store.presence_rules).decide
        assert decide("sip:alice@example.com", "sip:bob@example.com") is Authorization.ALLOW
        assert decide("sip:alice@example.com", "sip:carol@example.org") is Authorization.POLITE_BLOCK
        assert decide("sip:alice@example.com", "sip:eve@evil.net") is Authorization.BLOCK


@pytest.mark.parametrize(("text", "problem"), [
    ('[presence]\ndefault_rule = "permit"\n', "unknown action 'permit'"),
    ('[[presence.rule]]\npresentity = "alice@example.com"\naction = "allow"\n', "rule 1 lacks watcher"),
    ('[[presence.rule]]\npresentity = "alice"\nwatcher = "*"\naction = "allow"\n', "rule 1: 'alice' has no domain"),
])
def test_a_bad_presence_rule_stops_the_server_before_it_starts(tmp_path: Path, text: str, problem: str) -> None:
    config = tmp_path / "sipactors.toml"
    config.write_text(text)
    with pytest.raises(SystemExit, match=f"sipactors serve: .*sipactors.toml: \\[presence\\]: {problem}"):
        load_config(config, None, None, None)


def test_the_example_configuration_documents_the_presence_keys() -> None:
    config = load_config(REPO / "examples" / "sipactors.toml", None, None, None)
    assert config.presence_default is Authorization.PENDING and config.presence_rules == []
    text = (REPO / "examples" / "sipactors.toml").read_text()
    for key in ("[presence]", "default_rule", "[[presence.rule]]", "presentity =", "watcher =", "action ="):
        assert key in text
