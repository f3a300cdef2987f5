"""Real clients for presence and instant messages (issue 5) against ``sipactors serve`` on 127.0.0.1.

SIPp (``tests/interop/sipp``): a watcher subscribes to a registered presentity, refreshes and unsubscribes
(RFC 6665 §4.1, §4.2; RFC 3856), over UDP and TCP; a presentity publishes, refreshes and removes its state
(RFC 3903 §4, §6); MESSAGEs for a user with no device get 202 (RFC 3428 §7) and reach the device that
registers later.

baresip (two instances, ``tests/interop/baresip.py``): Alice's contacts hold Bob with ``presence=p2p``;
she sees him offline, online once he registers, offline when he quits; then online when he comes back
publishing, offline when he publishes ``closed``, online when he publishes ``open``. Her MESSAGE reaches
him at once; while he is away the next one gets 202 and reaches him when he registers again.

Every watcher is allowed by its presentity first (``sipactors presence allow``): an unknown watcher stays
pending (RFC 6665 §4.2.1.2, RFC 3857).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_serve import REPO, start_server, stop_server
from tests.interop.baresip import BARESIP, REGISTERED, Baresip
from tests.interop.test_sipp import SIPP, _sipp, _stop_sipp, register_contact, start_uas
from tests.interop.users import PASSWORD, with_users

if BARESIP is None and os.environ.get("SIPACTORS_REQUIRE_INTEROP"):
    raise RuntimeError("baresip (Debian baresip-core) is required here: .ci/run installs it")
needs_sipp = pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed; .ci/run installs it")
needs_baresip = pytest.mark.skipif(BARESIP is None, reason="baresip (Debian baresip-core) is not installed; .ci/run installs it")


def _allow(store: Path, presentity: str, watcher: str) -> None:
    """``sipactors presence allow``: ``watcher`` may see ``presentity``'s presence (users of 127.0.0.1)."""
    allowed = subprocess.run(
        [sys.executable, "-m", "sipactors", "presence", "allow", presentity, watcher, "--domain", "127.0.0.1",
         "--store", f"sqlite:///{store}"],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert allowed.returncode == 0, allowed.stdout + allowed.stderr


def _records(trace: Path) -> list[dict[str, Any]]:
    """The messages of a ``--trace`` file, as far as the server has written it (whole lines only: the
    server may be writing the last one)."""
    text = trace.read_text() if trace.exists() else ""
    return [r for r in map(json.loads, text[: text.rfind("\n") + 1].splitlines()) if "message" in r]


def _requests_sent(trace: Path, method: str, destination: list[Any] | None = None) -> int:
    """How many ``method`` requests the server sent (to ``destination``): one per client transaction, its
    retransmissions not counted (a trace record holds a message's first line and its transaction)."""
    return len({r.get("transaction") for r in _records(trace) if r["type"] == "out" and r["message"].startswith(method + " ")
                and destination in (None, r.get("destination"))})


def _wait_trace(trace: Path, seen: Callable[[list[dict[str, Any]]], bool], what: str, timeout: float = 15) -> None:
    """Read the trace (the server flushes every record) until ``seen`` says yes: a bounded poll."""
    deadline = time.monotonic() + timeout
    while not seen(_records(trace)):
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not send {what} within {timeout} s")
        time.sleep(0.1)


def _failed(result: subprocess.CompletedProcess[str], directory: Path) -> str:
    """What SIPp said of a failed run: the end of its screen, and its error logs (``-trace_err``)."""
    errors = "".join(log.read_text(errors="replace")[-4000:] for log in sorted(directory.glob("*_errors.log")))
    return result.stdout[-1500:] + result.stderr[-1000:] + errors


@needs_sipp
@pytest.mark.parametrize(("transport", "with_port"), [("u1", False), ("t1", False), ("u1", True)],
                         ids=["udp", "tcp", "udp-uri-with-port"])
def test_sipp_subscribes_to_presence_refreshes_and_unsubscribes_rfc6665(tmp_path: Path, transport: str,
                                                                        with_port: bool) -> None:
    """``subscribe.xml``: Bob is registered (so his presence is ``open``) and lets the watcher see it; the
    SUBSCRIBE gets 200 and a NOTIFY with his PIDF, active; the refresh gets 200 and a NOTIFY; Expires: 0
    gets 200 and the last NOTIFY, terminated. Over UDP SIPp runs with -nr (see the scenario). The
    Request-URI is ``sip:bob@127.0.0.1``, or ``sip:bob@127.0.0.1:PORT`` with the server's own port, as a
    client that knows the server by its address writes it: the same presentity (the proxy routes both to
    Bob's bindings)."""
    store, trace = tmp_path / "sipactors.db", tmp_path / "trace.jsonl"
    _allow(store, "bob", "watcher")
    port, server, _ = start_server(store, "--trace", str(trace))
    domain = f"127.0.0.1:{port}" if with_port else "127.0.0.1"
    try:
        register_contact(port, "bob", "127.0.0.1:9", tmp_path)  # nothing is sent to Bob's device here
        result = _sipp("subscribe.xml", port, transport, calls=1, tmp=tmp_path,
                       options=("-s", "bob", "-key", "domain", domain, "-nr"))
        assert result.returncode == 0, _failed(result, tmp_path)
    finally:
        stop_server(server)
    assert _requests_sent(trace, "NOTIFY") == 3  # one per SUBSCRIBE (RFC 6665 §4.2.1.2), no more


@needs_sipp
@pytest.mark.parametrize("transport", ["u1", "t1"], ids=["udp", "tcp"])
def test_sipp_publishes_refreshes_and_removes_presence_rfc3903(tmp_path: Path, transport: str) -> None:
    """``publish.xml``: 200 with SIP-ETag for the PIDF, 200 with a new SIP-ETag for the refresh, 200 for the
    removal, then 412 for the removed entity-tag."""
    port, server, _ = start_server(tmp_path / "sipactors.db")
    try:
        result = _sipp("publish.xml", port, transport, calls=1, tmp=tmp_path, options=("-s", "bob", "-key", "domain", "127.0.0.1"))
        assert result.returncode == 0, _failed(result, tmp_path)
    finally:
        stop_server(server)


@needs_sipp
def test_sipp_messages_for_an_offline_user_get_202_and_reach_the_device_that_registers_rfc3428_7(tmp_path: Path) -> None:
    """``message_offline.xml``: three MESSAGEs for Carol, who has no device, each get 202; then a SIPp UAS
    registers as Carol and receives all three (and answers 200): store and forward."""
    store, trace = tmp_path / "sipactors.db", tmp_path / "trace.jsonl"
    port, server, _ = start_server(store, "--trace", str(trace))
    try:
        result = _sipp("message_offline.xml", port, "u1", calls=3, tmp=tmp_path, options=("-s", "carol", "-key", "domain", "127.0.0.1"))
        assert result.returncode == 0, _failed(result, tmp_path)
        uas, uas_port = start_uas(tmp_path / "carol", 3)
        try:
            register_contact(port, "carol", f"127.0.0.1:{uas_port}", tmp_path)
            output, _ = uas.communicate(timeout=30)  # it ends by itself after three MESSAGEs
            assert uas.returncode == 0, output[-3000:]
        finally:
            _stop_sipp(uas)
    finally:
        stop_server(server)
    assert _requests_sent(trace, "MESSAGE", ["127.0.0.1", uas_port]) == 3  # each stored MESSAGE once


@needs_baresip
@pytest.mark.parametrize("mode", ["open", "digest", "aor-with-port"])
def test_two_baresips_see_presence_online_and_offline_and_exchange_messages_stored_while_offline(tmp_path: Path,
                                                                                                 mode: str) -> None:
    """Alice watches Bob (``;presence=p2p``, allowed by Bob) and sees him offline: he has no device. Bob
    registers (publishing nothing): Alice sees him online (a presentity with nothing published is open
    while registered); her MESSAGE is shown by Bob's baresip at once. Bob quits (unregisters): Alice sees
    him offline, and her next MESSAGE gets 202 from the server. Bob starts again, publishing
    (``;pubint``): his baresip shows the stored MESSAGE once he registers, and Alice sees him offline
    when he publishes ``closed`` (``presence_offline``) and online when he publishes ``open``.

    Bob publishes only the second time: baresip 1.0 sends two PUBLISHes without SIP-If-Match as it starts
    and keeps the entity-tag of one, so the other publication (``open``) outlives his quitting until it
    expires (RFC 3903 §4.1: each makes a publication of its own).

    The users are of the domain 127.0.0.1 and send every request to the server as their outbound proxy;
    with ``digest`` they are in the store and authenticate: REGISTER (401), SUBSCRIBE, PUBLISH and MESSAGE
    (407). With ``aor-with-port`` there is no outbound proxy: the accounts and Alice's contact name the
    server by address and port (``sip:bob@127.0.0.1:PORT``, as tests/interop/test_baresip.py's accounts
    do), the same users for the registrar and the proxy, who take the port as the server's own."""
    store, trace = tmp_path / "sipactors.db", tmp_path / "trace.jsonl"
    users = mode == "digest"
    options = with_users(store, ["alice", "bob"], tmp_path) if users else []
    _allow(store, "bob", "alice")
    port, server, _ = start_server(store, "--trace", str(trace), *options)
    domain = f"127.0.0.1:{port}" if mode == "aor-with-port" else "127.0.0.1"
    outbound = "" if mode == "aor-with-port" else f';outbound="sip:127.0.0.1:{port};lr"'
    outbound += ";regint=60" + (f";auth_pass={PASSWORD}" if users else "")
    bob_uri = f"sip:bob@{domain}"
    try:
        alice_contacts = [f'"Bob" <{bob_uri}>;presence=p2p']
        with Baresip(tmp_path / "alice", f"<sip:alice@{domain}>{outbound}", alice_contacts) as alice:
            alice.wait_output(REGISTERED)
            alice.wait_presence(bob_uri, "Offline")  # the first NOTIFY: Bob has no device
            with Baresip(tmp_path / "bob", f"<{bob_uri}>{outbound}", contacts=[]) as bob:
                bob.wait_output(REGISTERED)
                alice.wait_presence(bob_uri, "Online")
                alice.command("message", "hello bob")
                bob.wait_output(f'sip:alice@{domain}: "hello bob"')
            alice.wait_presence(bob_uri, "Offline")  # Bob unregistered as he quit
            alice.command("message", "are you there")
            _wait_trace(trace, lambda records: any(  # only a stored MESSAGE gets 202 here (RFC 6665 §8.3.1)
                r["type"] == "out" and r["message"].startswith("SIP/2.0 202") for r in records),
                "202 for the MESSAGE to Bob, who is offline")
            with Baresip(tmp_path / "bob-again", f"<{bob_uri}>{outbound};pubint=60", contacts=[]) as bob:
                bob.wait_output(f'sip:alice@{domain}: "are you there"')
                alice.wait_presence(bob_uri, "Online")
                bob.command("presence_offline")  # PUBLISH <basic>closed</basic>, SIP-If-Match
                alice.wait_presence(bob_uri, "Offline")
                bob.command("presence_online")  # PUBLISH <basic>open</basic>
                alice.wait_presence(bob_uri, "Online")
            assert '"hello bob"' not in bob.output()  # delivered once, the first time
        assert server.poll() is None
    finally:
        stop_server(server)
    challenged = {r["message"].split(" ", 2)[1] for r in _records(trace) if r["type"] == "out"
                  and r["message"].startswith(("SIP/2.0 401", "SIP/2.0 407"))}
    assert challenged == ({"401", "407"} if users else set())
