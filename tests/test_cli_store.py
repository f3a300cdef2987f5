"""``sipactors users``, ``sipactors bindings`` and ``sipactors messages`` against a temporary store."""

from __future__ import annotations

import hashlib
import io
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sipactors.admin import ha1, run_bindings, run_messages
from sipactors.cli import main
from sipactors.store import Binding, open_store

SCRIPT = Path(sys.executable).with_name("sipactors")


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'sipactors.db'}"


def _response(algorithm: str, stored_ha1: str) -> str:
    """RFC 7616 §3.4.1 response for the §3.9.1 example request (qop=auth), from a stored HA1."""
    h = {"MD5": hashlib.md5, "SHA-256": hashlib.sha256}[algorithm]
    ha2 = h(b"GET:/dir/index.html").hexdigest()
    nonce, cnonce = "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v", "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ"
    return h(f"{stored_ha1}:{nonce}:00000001:{cnonce}:auth:{ha2}".encode()).hexdigest()


def test_users_add_stores_the_ha1s_that_answer_the_rfc7616_example_and_not_the_password(url: str, tmp_path: Path) -> None:
    result = subprocess.run(
        [SCRIPT, "users", "add", "Mufasa", "--domain", "example.org", "--realm", "http-auth@example.org",
         "--password-stdin", "--store", url],
        input="Circle of Life\n", capture_output=True, text=True, timeout=60, check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "added Mufasa" in result.stdout
    with open_store(url) as store:
        ha1s = store.users.get("Mufasa", "http-auth@example.org")
    assert ha1s is not None and set(ha1s) == {"MD5", "SHA-256"}
    assert _response("MD5", ha1s["MD5"]) == "8ca523f5e9506fed4657c9700eebdbec"
    assert _response("SHA-256", ha1s["SHA-256"]) == "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1"
    for file in tmp_path.iterdir():
        assert b"Circle of Life" not in file.read_bytes()


def test_ha1_of_rfc2617_example() -> None:
    assert ha1("MD5", "Mufasa", "testrealm@host.com", "Circle Of Life") == "939e7578ed9e3c518a452acee763bce9"


def test_users_add_list_del(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "add", "alice@atlanta.com", "--password", "secret", "--store", url]) == 0
    assert main(["users", "add", "alice@atlanta.com", "--password", "other", "--store", url]) == 0
    assert "updated alice" in capsys.readouterr().out
    assert main(["users", "list", "--store", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["USER", "DOMAIN", "REALM", "HA1"]
    assert lines[1].split() == ["alice", "atlanta.com", "atlanta.com", "MD5,SHA-256"]
    assert main(["users", "del", "alice", "--store", url]) == 0
    assert main(["users", "del", "alice", "--store", url]) == 1
    assert "no user alice" in capsys.readouterr().err
    assert main(["users", "list", "--store", url]) == 0
    assert "no users" in capsys.readouterr().out


def test_users_add_needs_a_domain_and_a_password(url: str, capsys: pytest.CaptureFixture[str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["users", "add", "alice", "--password", "x", "--store", url]) == 64
    assert "which domain" in capsys.readouterr().err
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))  # not a terminal, nothing on it
    assert main(["users", "add", "alice@atlanta.com", "--store", url]) == 64
    assert "no password" in capsys.readouterr().err
    assert main(["users", "add", "alice@atlanta.com", "--password-stdin", "--store", url]) == 64


def test_reading_commands_do_not_create_a_store(tmp_path: Path, url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "list", "--store", url]) == 66
    assert main(["bindings", "list", "--store", url]) == 66
    assert main(["messages", "list", "--store", url]) == 66
    assert "no store at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_a_bad_store_is_reported_not_raised(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["users", "list", "--store", "redis://localhost"]) == 64
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"\x00not sqlite" * 200)
    assert main(["bindings", "list", "--store", f"sqlite:///{junk}"]) == 66
    assert "sipactors bindings" in capsys.readouterr().err


def test_bindings_list_shows_each_unexpired_binding(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with open_store(url) as store:
        store.locations.put(Binding(aor="sip:bob@biloxi.com", contact="sip:bob@192.0.2.4", expires=1000.0,
                                    call_id="c", cseq=1, q=0.5, instance='"<urn:uuid:f81d4fae>"'))
        store.locations.put(Binding(aor="sip:alice@atlanta.com", contact="sip:alice@192.0.2.5", expires=400.0,
                                    call_id="c", cseq=1))
        store.locations.put(Binding(aor="sip:carol@chicago.com", contact="sip:carol@192.0.2.6",
                                    expires=time.time() + 3600, call_id="c", cseq=1))
    out = io.StringIO()
    assert run_bindings(url, now=100.0, out=out) == 0
    assert [line.split() for line in out.getvalue().splitlines()[:3]] == [
        ["AOR", "CONTACT", "EXPIRES", "IN", "Q", "INSTANCE"],
        ["sip:alice@atlanta.com", "sip:alice@192.0.2.5", "300s", "-", "-"],
        ["sip:bob@biloxi.com", "sip:bob@192.0.2.4", "900s", "0.5", '"<urn:uuid:f81d4fae>"'],
    ]
    assert main(["bindings", "list", "SIP:carol@Chicago.COM;transport=tcp", "--store", url]) == 0  # canonical AOR
    (_, row) = capsys.readouterr().out.splitlines()
    assert row.split()[:2] == ["sip:carol@chicago.com", "sip:carol@192.0.2.6"]
    assert main(["bindings", "list", "sip:dave@example.com", "--store", url]) == 0
    assert "no bindings for sip:dave@example.com" in capsys.readouterr().out


def test_messages_list_shows_what_waits_oldest_first_rfc3428_7(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    from sipactors.store.messages import StoredMessage

    def message(aor: str, received: float, body: bytes, expires: float = 1000.0) -> StoredMessage:
        return StoredMessage(aor, "<sip:alice@atlanta.com>", f"<{aor}>", "Fri, 15 Jan 2027 08:00:00 GMT",
                             "text/plain", body, "alice", received, expires)

    with open_store(url) as store:
        store.messages.add(message("sip:bob@biloxi.com", 50.0, b"second"))
        store.messages.add(message("sip:bob@biloxi.com", 10.0, b"first!"))
        store.messages.add(message("sip:carol@chicago.com", 5.0, b"gone", expires=90.0))
    out = io.StringIO()
    assert run_messages(url, now=100.0, out=out) == 0
    rows = [line.split("  ") for line in out.getvalue().splitlines()]
    assert rows[0][0] == "AOR" and len(rows) == 3  # carol's expired
    assert ["sip:bob@biloxi.com", "2"] == [cell.strip() for cell in rows[1][:2] if cell.strip()]
    out = io.StringIO()
    assert run_messages(url, "SIP:bob@Biloxi.COM", now=100.0, out=out) == 0  # canonical AOR
    lines = out.getvalue().splitlines()
    assert len(lines) == 3 and "sip:bob@biloxi.com" in lines[1] and "900s" in lines[1] and "alice" in lines[1]
    assert main(["messages", "list", "sip:dave@example.com", "--store", url]) == 0
    assert "no messages for sip:dave@example.com" in capsys.readouterr().out
