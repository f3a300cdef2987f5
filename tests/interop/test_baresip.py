"""A real user agent: baresip (Debian baresip-core, installed by .ci/run) registers to ``sipactors serve``
over UDP on 127.0.0.1 (RFC 3261 §10), with digest authentication (§22), and unregisters when it quits.

baresip 1.0 (Debian 12) computes MD5 digests only and gives up at the first challenge it cannot answer, so
the authenticated server here offers MD5 alone (the default offers SHA-256 first, RFC 8760 §2.4). Two
baresip instances register, and one calls the other through the proxy (RFC 3261 §16): the callee answers by
itself, the caller hangs up, and both see the call end (``tests/interop/baresip.py`` drives them).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_serve import REPO, start_server, stop_server
from tests.interop.baresip import BARESIP, Baresip, config
from tests.interop.users import with_users

if BARESIP is None and os.environ.get("SIPACTORS_REQUIRE_INTEROP"):
    raise RuntimeError("baresip (Debian baresip-core) is required here: .ci/run installs it")
pytestmark = pytest.mark.skipif(BARESIP is None, reason="baresip (Debian baresip-core) is not installed; .ci/run installs it")

def _baresip(home: Path, account: str, seconds: int = 3) -> str:
    """Run baresip (configuration in ``home``) with one account for ``seconds`` (its own -t timer: it
    registers at start and unregisters as it quits); its output."""
    home.mkdir()
    (home / "config").write_text(config())
    (home / "accounts").write_text(account + "\n")
    assert BARESIP is not None
    result = subprocess.run(
        [BARESIP, "-f", str(home), "-t", str(seconds)], capture_output=True, text=True, timeout=seconds + 20,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout + result.stderr


def _bindings(store: Path) -> str:
    listed = subprocess.run(
        [sys.executable, "-m", "sipactors", "bindings", "list", "--store", f"sqlite:///{store}"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    return listed.stdout


def test_baresip_registers_to_the_open_registrar_and_unregisters_on_quit(tmp_path: Path) -> None:
    store = tmp_path / "sipactors.db"
    port, process, _ = start_server(store)
    try:
        output = _baresip(tmp_path / "alice", f"<sip:alice@127.0.0.1:{port}>;regint=60")
        assert "200 OK" in output and "[1 binding]" in output, output
        assert "no bindings" in _bindings(store)  # its REGISTER with expires 0 on quit removed it
    finally:
        stop_server(process)


def test_baresip_registers_with_digest_authentication(tmp_path: Path) -> None:
    store = tmp_path / "sipactors.db"
    port, process, _ = start_server(store, *with_users(store, ["bob"], tmp_path))
    try:
        right = _baresip(tmp_path / "right", f"<sip:bob@127.0.0.1:{port}>;auth_pass=secret;regint=60")
        assert "200 OK" in right and "[1 binding]" in right, right
        # baresip answers every 401 again with the same wrong password: the throttle stops it (roles/digest.py)
        wrong = _baresip(tmp_path / "wrong", f"<sip:bob@127.0.0.1:{port}>;auth_pass=guess;regint=60")
        assert "200 OK" not in wrong and "403 Too Many Failed Authentications" in wrong, wrong
    finally:
        stop_server(process)


@pytest.mark.parametrize("users", [False, True], ids=["open", "digest"])
def test_two_baresips_register_and_one_calls_the_other_through_the_proxy_rfc3261_16(tmp_path: Path, users: bool) -> None:
    """Bob registers with ``answermode=auto``, Alice registers and dials ``sip:bob@`` the server: the proxy
    finds Bob's binding and forwards the INVITE to his contact, his 200 comes back to Alice, the call is
    established on both sides; Alice hangs up and Bob sees the call closed by his peer (the BYE reached
    him). With users in the store both authenticate: 401 for their REGISTERs, and Alice's INVITE gets
    407 (RFC 3261 §22.3) before it is forwarded."""
    store, trace = tmp_path / "sipactors.db", tmp_path / "trace.jsonl"
    options = with_users(store, ["alice", "bob"], tmp_path) if users else []
    credentials = ";auth_pass=secret" if users else ""
    port, process, _ = start_server(store, "--trace", str(trace), *options)
    try:
        _call(tmp_path, port, f"<sip:bob@127.0.0.1:{port}>;regint=60;answermode=auto{credentials}",
              f"<sip:alice@127.0.0.1:{port}>;regint=60{credentials}")
        assert process.poll() is None
    finally:
        stop_server(process)
    records = [r for r in map(json.loads, trace.read_text().splitlines()) if r["type"] == "out" and "message" in r]
    assert any(r["message"].startswith("SIP/2.0 407") for r in records) == users
    _dialog_followed(trace)


def _dialog_followed(trace: Path) -> tuple[str, int]:
    """The INVITE went to Bob, and the ACK and BYE followed it to the same address through the proxy: it
    Record-Routes by default (§16.6 step 4), so the whole dialog passed the server. Bob's address."""
    records = [r for r in map(json.loads, trace.read_text().splitlines()) if r["type"] == "out" and "message" in r]
    sent = [(tuple(r["destination"]), r["message"].split(" ")[0]) for r in records if not r["message"].startswith("SIP/")]
    [bob_address] = {destination for destination, method in sent if method == "INVITE"}
    assert [method for destination, method in sent if destination == bob_address] == ["INVITE", "ACK", "BYE"], sent
    return bob_address  # type: ignore[return-value]


def test_a_udp_baresip_calls_a_baresip_registered_over_tcp_rfc3261_18(tmp_path: Path) -> None:
    """Bob's account says ``;transport=tcp``: he registers over TCP and keeps the connection; Alice calls
    him over UDP. The proxy forwards the INVITE over TCP (on his connection, or to his TCP contact:
    RFC 5626 §5.3, RFC 3263 §4.1), with a double Record-Route (RFC 5658), so Bob's ACK-to-BYE dialog
    reaches him over TCP and Alice's over UDP; Alice hangs up and Bob sees the BYE."""
    trace = tmp_path / "trace.jsonl"
    port, process, _ = start_server(tmp_path / "sipactors.db", "--trace", str(trace))
    try:
        _call(tmp_path, port, f"<sip:bob@127.0.0.1:{port};transport=tcp>;regint=60;answermode=auto",
              f"<sip:alice@127.0.0.1:{port}>;regint=60")
        assert process.poll() is None
    finally:
        stop_server(process)
    # the whole dialog went on the connection Bob registered over (his REGISTER was the first message in)
    first = next(r for r in map(json.loads, trace.read_text().splitlines()) if r["type"] == "in")
    assert _dialog_followed(trace) == tuple(first["source"])


def _call(tmp_path: Path, port: int, bob_account: str, alice_account: str) -> None:
    """Bob (answering by himself) and Alice register; Alice calls ``sip:bob@`` the server and hangs up;
    both see the call established, then closed (Bob by the BYE that reached him)."""
    with Baresip(tmp_path / "bob", bob_account) as bob:
        assert bob.wait_for("REGISTER_OK")["param"].startswith("200")
        with Baresip(tmp_path / "alice", alice_account) as alice:
            assert alice.wait_for("REGISTER_OK")["param"].startswith("200")
            alice.command("dial", f"sip:bob@127.0.0.1:{port}")
            outgoing = alice.wait_for("CALL_ESTABLISHED", unless="CALL_CLOSED")
            incoming = bob.wait_for("CALL_ESTABLISHED", unless="CALL_CLOSED")
            assert outgoing["direction"] == "outgoing" and incoming["direction"] == "incoming"
            assert incoming["peeruri"].startswith("sip:alice@127.0.0.1") and incoming["id"] == outgoing["id"]
            alice.command("hangup")
            assert alice.wait_for("CALL_CLOSED")["id"] == outgoing["id"]
            closed = bob.wait_for("CALL_CLOSED")
            assert closed["param"] == "Connection reset by peer", closed  # Bob received Alice's BYE
        assert "Call established" in alice.output() and "Call established" in bob.output()
