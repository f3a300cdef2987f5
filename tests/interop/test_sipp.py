"""A real client: SIPp (Debian package sip-tester, installed by .ci/run) against ``sipactors serve`` over
UDP and TCP on 127.0.0.1: OPTIONS get 200, a malformed request gets 400 with its reason, an oversized one
513, and the server answers OPTIONS afterwards; SIPp registers (with and without digest authentication), and
SIPp callers call a registered SIPp UAS through the proxy (../shared/bench's scenarios)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.e2e.test_serve import _options, _udp, server  # noqa: F401 - the server fixture
from tests.interop.users import with_users

HERE = Path(__file__).resolve().parent / "sipp"
SIPP = shutil.which("sipp")

if SIPP is None and os.environ.get("SIPACTORS_REQUIRE_INTEROP"):
    raise RuntimeError("sipp (Debian sip-tester) is required here: .ci/run installs it")
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed; .ci/run installs it")


def _sipp(scenario: str, port: int, transport: str = "u1", calls: int = 20, tmp: Path | None = None,
          options: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    """SIPp running ``scenario`` of tests/interop/sipp against the server on ``port`` (more command-line
    ``options`` after the usual ones: ``-s USER``, ``-nr``)."""
    assert SIPP is not None
    command = [
        SIPP, f"127.0.0.1:{port}", "-sf", str(HERE / scenario), "-m", str(calls), "-r", "50", "-t", transport,
        "-i", "127.0.0.1", "-p", "0", "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_err", *options,
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp)


def test_sipp_options_over_udp_and_tcp_malformed_oversized_and_still_answering(server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    port, _, process = server
    for transport in ("u1", "t1"):
        result = _sipp("options.xml", port, transport, tmp=tmp_path)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    result = _sipp("malformed.xml", port, "u1", calls=5, tmp=tmp_path)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    big = _options("s1", port).replace(b"Content-Length: 0\r\n\r\n", b"X-Big: " + b"x" * 20_000 + b"\r\nContent-Length: 0\r\n\r\n")
    assert _udp(port, big).startswith(b"SIP/2.0 513")
    result = _sipp("options.xml", port, "u1", calls=5, tmp=tmp_path)
    assert result.returncode == 0 and process.poll() is None
    with socket.create_connection(("127.0.0.1", port), timeout=5):
        pass  # the TCP listener is up too


SCENARIOS = Path(__file__).resolve().parents[3] / "shared" / "bench" / "scenarios"  # ../shared, as CI has it


def _injection(path: Path, users: list[str]) -> Path:
    """A SIPp injection file: per call the next user ([field0]) and the keyword that makes its credentials
    ([field1]), password "secret", as ../shared/bench/run.sh writes it."""
    path.write_text("SEQUENTIAL\n" + "".join(f"{user};[authentication username={user} password=secret]\n" for user in users))
    return path


def _register_run(scenario: str, port: int, users: list[str], tmp: Path, calls: int) -> subprocess.CompletedProcess[str]:
    """The shared bench's REGISTER scenario (one user of the injection file per call) against ``port``."""
    assert SIPP is not None
    injection = _injection(tmp / "users.csv", users)
    command = [
        SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-inf", str(injection), "-m", str(calls),
        "-r", "50", "-i", "127.0.0.1", "-p", "0", "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_err",
    ]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=tmp)


def test_sipp_registers_without_authentication_rfc3261_10(tmp_path: Path) -> None:
    """``register.xml`` of ../shared/bench against an open registrar: every REGISTER gets 200, and the
    bindings are in the store afterwards."""
    from tests.e2e.test_serve import start_server, stop_server

    store = tmp_path / "sipactors.db"
    port, process, _ = start_server(store)
    try:
        result = _register_run("register.xml", port, [f"u{n}" for n in range(1, 6)], tmp_path, calls=20)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    finally:
        stop_server(process)
    listed = subprocess.run(
        [sys.executable, "-m", "sipactors", "bindings", "list", "--store", f"sqlite:///{store}"],
        capture_output=True, text=True, timeout=60,
    )
    assert all(f"sip:u{n}@127.0.0.1" in listed.stdout for n in range(1, 6)), listed.stdout


def test_sipp_registers_with_digest_authentication_rfc3261_22(tmp_path: Path) -> None:
    """``register_auth.xml``: 401 with a digest challenge, then the REGISTER with credentials gets 200
    (MD5 only, see ``tests/interop/users.py``)."""
    from tests.e2e.test_serve import start_server, stop_server

    store = tmp_path / "sipactors.db"
    users = [f"u{n}" for n in range(1, 4)]
    port, process, _ = start_server(store, *with_users(store, users, tmp_path))
    try:
        result = _register_run("register_auth.xml", port, users, tmp_path, calls=9)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    finally:
        stop_server(process)


def _free_udp_port() -> int:
    """A UDP port on 127.0.0.1 that nothing holds now (the OS picks it; SIPp binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bound(port: int) -> bool:
    """Whether some process holds UDP ``port`` on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _stop_sipp(process: subprocess.Popen[str]) -> None:
    """Stop a SIPp this test started, by its PID: SIGINT (it ignores SIGTERM), then SIGKILL."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def start_uas(directory: Path, calls: int) -> tuple[subprocess.Popen[str], int]:
    """../shared/bench's ``uas.xml`` (answers MESSAGE with 200, INVITE with 180 + 200, then BYE) in a new
    ``directory``, on a UDP port of its own, ending by itself after ``calls`` calls; the process (stop it
    with :func:`_stop_sipp`) and its port, once it listens."""
    assert SIPP is not None
    directory.mkdir()
    port = _free_udp_port()
    uas = subprocess.Popen(
        [SIPP, "-sf", str(SCENARIOS / "uas.xml"), "-i", "127.0.0.1", "-p", str(port), "-m", str(calls),
         "-timeout", "40s", "-timeout_error", "-nostdin", "-trace_err"],
        cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.monotonic() + 10
    while not _bound(port) and uas.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)  # SIPp gives no sign that it listens but the bound port
    if not _bound(port):
        _stop_sipp(uas)
        raise AssertionError("the SIPp UAS did not start")
    return uas, port


def register_contact(port: int, user: str, address: str, directory: Path) -> None:
    """../shared/bench's ``reg_contact.xml``: register ``user`` at the server on ``port`` with the contact
    ``sip:USER@ADDRESS`` (answering a challenge with the password "secret")."""
    assert SIPP is not None
    registered = subprocess.run(
        [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / "reg_contact.xml"), "-s", user,
         "-key", "uas_addr", address, "-au", user, "-ap", "secret", "-i", "127.0.0.1",
         "-p", "0", "-m", "1", "-recv_timeout", "5000", "-timeout", "10s", "-timeout_error", "-nostdin"],
        capture_output=True, text=True, timeout=30, cwd=directory,
    )
    assert registered.returncode == 0, registered.stdout[-2000:] + registered.stderr[-2000:]


def _calls_through_the_proxy(tmp: Path, calls: int, *, users: list[str], messages: int = 0) -> None:
    """../shared/bench's call run, as ``run.sh call`` drives it: a SIPp UAS (``uas.xml``) on a port of its
    own, registered as user "uas" with ``reg_contact.xml`` (answering a 401 when users exist), then
    ``calls`` calls to ``sip:uas@`` the server: INVITE, 100/180, 200, ACK, BYE, 200, each proxied to the UAS
    (RFC 3261 §16), then ``messages`` MESSAGEs (``message.xml``, RFC 3428; open mode only: it answers no
    challenge). With ``users`` the store holds them and "uas" (password "secret"), the server offers
    MD5 (SIPp computes nothing else), and the callers are those users, answering the proxy's 407
    (``sipp/uac_call_auth.xml``). Both SIPp processes must end with every call successful."""
    assert SIPP is not None
    from tests.e2e.test_serve import start_server, stop_server

    store = tmp / "sipactors.db"
    options = with_users(store, ["uas", *users], tmp) if users else []
    trace = tmp / "trace.jsonl"
    port, proxy, _ = start_server(store, "--trace", str(trace), *options)
    uas_dir, uac_dir = tmp / "uas", tmp / "uac"
    uac_dir.mkdir()
    uas, uas_port = start_uas(uas_dir, calls + messages)
    try:
        register_contact(port, "uas", f"127.0.0.1:{uas_port}", uac_dir)
        common = [SIPP, f"127.0.0.1:{port}", "-s", "uas", "-r", "25", "-i", "127.0.0.1", "-p", "0",
                  "-recv_timeout", "5000", "-timeout", "30s", "-timeout_error", "-nostdin", "-trace_err"]
        command = [*common, "-m", str(calls)]
        if users:
            # SIPp 3.6 puts sip:HOST:PORT of the server in the digest uri unless -auth_uri says otherwise:
            # right for its REGISTERs, whose Request-URI that is, but the digest uri must be the
            # Request-URI (RFC 2617 §3.2.2.5; the server answers 400 otherwise), here sip:uas@HOST:PORT
            command += ["-sf", str(HERE / "uac_call_auth.xml"), "-inf", str(_injection(uac_dir / "users.csv", users)),
                        "-auth_uri", f"uas@127.0.0.1:{port}"]
        else:
            command += ["-sf", str(SCENARIOS / "uac_call.xml")]
        caller = subprocess.run(command, capture_output=True, text=True, timeout=60, cwd=uac_dir)
        server_errors = "" if proxy.poll() is None else proxy.communicate(timeout=5)[1]
        assert caller.returncode == 0, caller.stdout[-3000:] + caller.stderr[-2000:] + server_errors
        if messages:
            paged = subprocess.run(
                [*common, "-m", str(messages), "-sf", str(SCENARIOS / "message.xml")],
                capture_output=True, text=True, timeout=60, cwd=uac_dir,
            )
            assert paged.returncode == 0, paged.stdout[-3000:] + paged.stderr[-2000:]
        uas_output, _ = uas.communicate(timeout=20)  # it ends by itself after ``calls`` calls
        assert uas.returncode == 0, uas_output[-3000:]
    finally:
        _stop_sipp(uas)
        stop_server(proxy)
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    forwarded = [r for r in records if r["type"] == "out" and r.get("destination") == ["127.0.0.1", uas_port]]
    for method in ("INVITE", "ACK", "BYE"):  # the proxy sent them all: it Record-Routes (§16.6 step 4)
        assert sum(r["message"].startswith(method + " ") for r in forwarded) >= calls, method
    if users:
        challenges = [r for r in records if r["type"] == "out" and r.get("message", "").startswith("SIP/2.0 407")]
        assert len(challenges) >= calls  # RFC 3261 §22.3: the proxy challenged every caller


def test_sipp_calls_through_the_open_proxy_to_a_registered_sipp_uas_rfc3261_16(tmp_path: Path) -> None:
    _calls_through_the_proxy(tmp_path, 50, users=[], messages=20)


def test_sipp_calls_through_the_proxy_with_digest_authentication_rfc3261_22_3(tmp_path: Path) -> None:
    _calls_through_the_proxy(tmp_path, 30, users=[f"u{n}" for n in range(1, 6)])


def test_sipp_messages_for_an_offline_user_are_stored_then_delivered_when_a_sipp_uas_registers_rfc3428_7(tmp_path: Path) -> None:
    """A SIPp UAC sends MESSAGEs to "offline", who has no device: each gets 202 (stored, RFC 3428 §7).
    Then a SIPp UAS (``sipp/uas_message.xml``) registers as "offline" (``reg_contact.xml``) and receives
    every stored MESSAGE, with its original Date, and answers each 200: the store is empty afterwards."""
    assert SIPP is not None
    from tests.e2e.test_serve import start_server, stop_server

    messages = 5
    store = tmp_path / "sipactors.db"
    trace = tmp_path / "trace.jsonl"
    port, proxy, _ = start_server(store, "--trace", str(trace))
    uas_port = _free_udp_port()
    uas = subprocess.Popen(
        [SIPP, "-sf", str(HERE / "uas_message.xml"), "-i", "127.0.0.1", "-p", str(uas_port), "-m", str(messages),
         "-timeout", "40s", "-timeout_error", "-nostdin", "-trace_err"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        sent = subprocess.run(
            [SIPP, f"127.0.0.1:{port}", "-sf", str(HERE / "message_stored.xml"), "-s", "offline", "-m", str(messages),
             "-r", "25", "-i", "127.0.0.1", "-p", "0", "-recv_timeout", "5000", "-timeout", "30s", "-timeout_error",
             "-nostdin", "-trace_err"],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )
        assert sent.returncode == 0, sent.stdout[-3000:] + sent.stderr[-2000:]
        listed = subprocess.run(
            [sys.executable, "-m", "sipactors", "messages", "list", "--store", f"sqlite:///{store}"],
            capture_output=True, text=True, timeout=60,
        )
        assert listed.stdout.count("sip:offline@127.0.0.1") == messages, listed.stdout
        deadline = time.monotonic() + 10
        while not _bound(uas_port) and uas.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)  # SIPp gives no sign that it listens but the bound port
        assert _bound(uas_port), "the SIPp UAS did not start"
        registered = subprocess.run(
            [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / "reg_contact.xml"), "-s", "offline",
             "-key", "uas_addr", f"127.0.0.1:{uas_port}", "-i", "127.0.0.1", "-p", "0", "-m", "1",
             "-recv_timeout", "5000", "-timeout", "10s", "-timeout_error", "-nostdin"],
            capture_output=True, text=True, timeout=30, cwd=tmp_path,
        )
        assert registered.returncode == 0, registered.stdout[-2000:] + registered.stderr[-2000:]
        uas_output, _ = uas.communicate(timeout=30)  # it ends by itself after ``messages`` MESSAGEs
        assert uas.returncode == 0, uas_output[-3000:]
        # The UAS exits on sending its last 200, which the server may not have read yet; it is in the server's
        # socket buffer (loopback delivers on sendto), and a server stopped by SIGTERM handles it first.
        proxy.send_signal(signal.SIGTERM)
        _, server_log = proxy.communicate(timeout=30)
        assert proxy.returncode == 0, server_log[-3000:]
    finally:
        _stop_sipp(uas)
        stop_server(proxy)
    records = [json.loads(line) for line in trace.read_text().splitlines()]
    delivered = [r for r in records if r["type"] == "out" and r.get("destination") == ["127.0.0.1", uas_port]
                 and r["message"].startswith("MESSAGE ")]
    assert len(delivered) == messages
    steps = [r["after"] for r in records if r.get("machine") == "delivery"]
    assert steps.count("delivered") == messages
    listed = _stored_messages(store)
    assert "no messages" in listed, listed


def _stored_messages(store: Path) -> str:
    """What ``sipactors messages list`` prints for the store (it reads the SQLite file beside the server)."""
    return subprocess.run(
        [sys.executable, "-m", "sipactors", "messages", "list", "--store", f"sqlite:///{store}"],
        capture_output=True, text=True, timeout=60,
    ).stdout
