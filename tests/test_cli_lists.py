"""``sipactors lists`` against a temporary store: a round trip, the refusals, and the server's view."""

from __future__ import annotations

from pathlib import Path

import pytest

from sipactors.cli import main
from sipactors.store import open_store
from sipactors.store.lists import Member, PresenceList

LIST = "sip:alice-buddies@example.com"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sipactors.db'}"


def test_lists_round_trip(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lists", "add", "--owner", "alice@example.com", "--name", "Friends", "--store", url]) == 0
    assert f"added {LIST} (owner sip:alice@example.com)" in capsys.readouterr().out  # the default list URI
    assert main(["lists", "member", "add", LIST, "sip:bob@example.com", "--name", "Bob", "--store", url]) == 0
    assert main(["lists", "member", "add", LIST, "carol@example.com", "--store", url]) == 0
    assert main(["lists", "member", "add", LIST, "sip:ed@dallas.example.net", "--domain", "dallas.example.net",
                 "--store", url]) == 0
    capsys.readouterr()
    assert main(["lists", "show", LIST, "--store", url]) == 0
    shown = capsys.readouterr().out.splitlines()
    assert shown[0].split() == ["LIST", "OWNER", "NAME", "MEMBER", "MEMBER", "NAME"]
    assert shown[1].split() == [LIST, "sip:alice@example.com", "Friends"]
    assert [line.split() for line in shown[2:]] == [["sip:bob@example.com", "Bob"], ["sip:carol@example.com", "-"],
                                                    ["sip:ed@dallas.example.net", "-"]]
    assert main(["lists", "member", "del", LIST, "sip:ed@dallas.example.net", "--store", url]) == 0
    with open_store(url) as store:  # what the server reads
        assert store.lists.get(LIST) == PresenceList(
            LIST, "sip:alice@example.com", "Friends", (Member("sip:bob@example.com", "Bob"), Member("sip:carol@example.com")))
    assert main(["lists", "del", LIST, "--store", url]) == 0
    assert "deleted" in capsys.readouterr().out
    assert main(["lists", "show", "--store", url]) == 0
    assert capsys.readouterr().out.strip() == "no presence lists"


def test_lists_refusals(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lists", "show", "--store", url]) == 66  # reading never creates a store
    assert main(["lists", "add", LIST, "--owner", "sip:alice@example.com", "--store", url]) == 0
    capsys.readouterr()
    assert main(["lists", "member", "add", LIST, "sip:ed@dallas.example.net", "--store", url]) == 64
    assert "not a local presentity" in capsys.readouterr().err
    assert main(["lists", "member", "add", LIST, LIST, "--store", url]) == 64
    assert "nested lists" in capsys.readouterr().err
    assert main(["lists", "member", "del", LIST, "sip:nobody@example.com", "--store", url]) == 1
    assert main(["lists", "member", "add", "sip:none@example.com", "sip:bob@example.com", "--store", url]) == 1
    assert main(["lists", "del", "sip:none@example.com", "--store", url]) == 1
    assert main(["lists", "show", "sip:none@example.com", "--store", url]) == 1
    assert main(["lists", "add", "--owner", "sip:example.com", "--store", url]) == 64  # no user: no default URI
