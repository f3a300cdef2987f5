"""A real client: SIPp (Debian package sip-tester, installed by .ci/run) against ``sipactors serve`` over
UDP and TCP on 127.0.0.1: OPTIONS get 200, a malformed request gets 400 with its reason, an oversized one
513, and the server answers OPTIONS afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.test_serve import _options, _udp, server  # noqa: F401 - the server fixture

HERE = Path(__file__).resolve().parent / "sipp"
SIPP = shutil.which("sipp")

if SIPP is None and os.environ.get("SIPACTORS_REQUIRE_INTEROP"):
    raise RuntimeError("sipp (Debian sip-tester) is required here: .ci/run installs it")
pytestmark = pytest.mark.skipif(SIPP is None, reason="sipp (Debian sip-tester) is not installed; .ci/run installs it")


def _sipp(scenario: str, port: int, transport: str = "u1", calls: int = 20, tmp: Path | None = None) -> subprocess.CompletedProcess[str]:
    assert SIPP is not None
    command = [
        SIPP, f"127.0.0.1:{port}", "-sf", str(HERE / scenario), "-m", str(calls), "-r", "50", "-t", transport,
        "-i", "127.0.0.1", "-p", "0", "-timeout", "20s", "-timeout_error", "-nostdin", "-trace_err",
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


def _register_run(scenario: str, port: int, users: list[str], tmp: Path, calls: int) -> subprocess.CompletedProcess[str]:
    """The shared bench's REGISTER scenario (one user of the injection file per call) against ``port``."""
    assert SIPP is not None
    injection = tmp / "users.csv"
    injection.write_text("SEQUENTIAL\n" + "".join(f"{user};[authentication username={user} password=secret]\n" for user in users))
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
    """``register_auth.xml``: 401 with a digest challenge, then the REGISTER with credentials gets 200.
    SIPp 3.6 reads the first challenge only and computes MD5 only, so this server offers MD5 alone (the
    default offers SHA-256 first, RFC 8760 §2.4; ``test_registrar.py`` checks that with its own client)."""
    from tests.e2e.test_serve import start_server, stop_server

    store = tmp_path / "sipactors.db"
    users = [f"u{n}" for n in range(1, 4)]
    for user in users:
        added = subprocess.run(
            [sys.executable, "-m", "sipactors", "users", "add", f"{user}@127.0.0.1", "--password", "secret",
             "--store", f"sqlite:///{store}"],
            capture_output=True, text=True, timeout=60,
        )
        assert added.returncode == 0, added.stderr
    config = tmp_path / "sipactors.toml"
    config.write_text('[auth]\nalgorithms = ["MD5"]\n')
    port, process, _ = start_server(store, "--config", str(config))
    try:
        result = _register_run("register_auth.xml", port, users, tmp_path, calls=9)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    finally:
        stop_server(process)


def test_sipp_calls_through_the_proxy_to_a_registered_sipp_uas_rfc3261_16(tmp_path: Path) -> None:
    """The shared bench's call scenario: a SIPp UAS (``uas.xml``) registers as user "uas"
    (``reg_contact.xml``), then ``uac_call.xml`` calls sip:uas@ through ``sipactors serve``: INVITE, 180,
    200, ACK and BYE along the Record-Route. Every call succeeds, and so does a MESSAGE run."""
    from tests.e2e.test_serve import start_server, stop_server

    assert SIPP is not None
    port, process, _ = start_server(tmp_path / "sipactors.db")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:  # a free port for the UAS
        probe.bind(("127.0.0.1", 0))
        uas_port = probe.getsockname()[1]
    uas = subprocess.Popen(
        [SIPP, "-sf", str(SCENARIOS / "uas.xml"), "-i", "127.0.0.1", "-p", str(uas_port), "-nostdin"],
        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        common = ["-i", "127.0.0.1", "-p", "0", "-nostdin", "-timeout", "30s", "-timeout_error", "-recv_timeout", "5000"]
        registered = subprocess.run(
            [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / "reg_contact.xml"), "-s", "uas", "-key", "uas_addr",
             f"127.0.0.1:{uas_port}", "-m", "1", *common],
            capture_output=True, text=True, timeout=60, cwd=tmp_path,
        )
        assert registered.returncode == 0, registered.stdout[-2000:] + registered.stderr[-2000:]
        for scenario in ("uac_call.xml", "message.xml"):
            result = subprocess.run(
                [SIPP, f"127.0.0.1:{port}", "-sf", str(SCENARIOS / scenario), "-s", "uas", "-m", "20", "-r", "20",
                 *common, "-trace_err"],
                capture_output=True, text=True, timeout=90, cwd=tmp_path,
            )
            assert result.returncode == 0, scenario + result.stdout[-2000:] + result.stderr[-2000:]
        assert process.poll() is None
    finally:
        stop_server(process)
        if uas.poll() is None:
            uas.kill()
        uas.wait(timeout=10)
