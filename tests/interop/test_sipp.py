"""A real client: SIPp (Debian package sip-tester, installed by .ci/run) against ``sipactors serve`` over
UDP and TCP on 127.0.0.1: OPTIONS get 200, a malformed request gets 400 with its reason, an oversized one
513, and the server answers OPTIONS afterwards."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
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
