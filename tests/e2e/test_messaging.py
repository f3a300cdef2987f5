"""Store-and-forward of ``sipactors serve`` over real sockets and a real SQLite file (RFC 3428 §7): a MESSAGE
for a user with no device is answered 202 only once it is committed, so it survives a ``kill -9``; after
the restart the user's device registers and receives it with its original Date, answers 200, and a later
registration brings nothing more."""

from __future__ import annotations

import signal
import socket
import time
from pathlib import Path

from sipactors.message import Request, Response, parse
from sipactors.message.build import response_for
from tests.e2e.test_registrar import _cli, _exchange, _register
from tests.e2e.test_serve import start_server, stop_server

DATE = "Fri, 27 Nov 2026 20:00:00 GMT"


def _message(port: int, user: str, call_id: str, body: bytes, date: str | None = DATE) -> bytes:
    lines = [
        f"MESSAGE sip:{user}@127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id};rport",
        "Max-Forwards: 70",
        f"To: <sip:{user}@127.0.0.1>",
        f"From: \"Erin\" <sip:erin@example.org>;tag={call_id}",
        f"Call-ID: {call_id}",
        "CSeq: 1 MESSAGE",
        "Content-Type: text/plain",
        *([f"Date: {date}"] if date is not None else []),
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join([*lines, "", ""])).encode() + body


def _device_registers(device: socket.socket, port: int, user: str, call_id: str, cseq: int, quiet: float) -> list[Request]:
    """``device`` sends a REGISTER for ``user`` binding itself, takes its 200, answers every MESSAGE it
    receives with 200 and returns them, once ``quiet`` seconds passed without one."""
    contact = f"sip:{user}@127.0.0.1:{device.getsockname()[1]}"
    data = _register(port, user, call_id, cseq, contact=contact)
    device.sendto(data.replace(b"127.0.0.1:%d;" % port, b"127.0.0.1:%d;" % device.getsockname()[1]), ("127.0.0.1", port))
    received: list[Request] = []
    registered = False
    deadline = time.monotonic() + quiet
    while time.monotonic() < deadline or not registered:
        device.settimeout(max(0.05, deadline - time.monotonic()))
        try:
            packet, source = device.recvfrom(65535)
        except TimeoutError:
            if not registered:
                raise AssertionError("no 200 for the REGISTER") from None
            break
        message = parse(packet)
        if isinstance(message, Response):
            registered = registered or (message.status == 200 and message.cseq is not None and message.cseq.method == "REGISTER")
        elif isinstance(message, Request) and message.method == "MESSAGE":
            received.append(message)
            device.sendto(response_for(message, 200, to_tag="dev").to_bytes(), source)
            deadline = time.monotonic() + quiet
    return received


def test_a_stored_message_survives_kill_9_and_reaches_the_device_that_registers_rfc3428_7(tmp_path: Path) -> None:
    store = tmp_path / "sipactors.db"
    config = tmp_path / "sipactors.toml"
    config.write_text("[messaging]\nmax_size = 1000\n", encoding="utf-8")
    port, process, banner = start_server(store, "--config", str(config))
    try:
        assert any(line.startswith("messaging:") and "1000 bytes" in line for line in banner), banner
        accepted = _exchange(port, _message(port, "fiona", "m1", b"see you at noon"))
        assert accepted.status == 202  # type: ignore[attr-defined]
        undated = _exchange(port, _message(port, "fiona", "m2", b"second", date=None))
        assert undated.status == 202  # type: ignore[attr-defined]
        too_big = _exchange(port, _message(port, "fiona", "m3", b"x" * 1001))
        assert too_big.status == 413  # type: ignore[attr-defined]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    finally:
        stop_server(process)
    listed = _cli("messages", "list", "--store", f"sqlite:///{store}")
    assert listed.returncode == 0 and listed.stdout.count("sip:fiona@127.0.0.1") == 2, listed.stdout
    port, process, _ = start_server(store)
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as device:
            device.bind(("127.0.0.1", 0))
            delivered = _device_registers(device, port, "fiona", "r1", 1, quiet=1.5)
            later = _device_registers(device, port, "fiona", "r1", 2, quiet=1.0)
    finally:
        stop_server(process)
    assert [m.body for m in delivered] == [b"see you at noon", b"second"]  # oldest first
    assert delivered[0].header_text("Date") == DATE  # the original Date (RFC 3261 §20.17, RFC 3428 §11.4)
    assert delivered[1].header_text("Date") is not None
    assert delivered[0].from_ is not None and delivered[0].from_.uri.render() == "sip:erin@example.org"
    assert delivered[0].call_id != "m1" and not delivered[0].has("Contact")
    assert later == []  # the 200s deleted them
    listed = _cli("messages", "list", "--store", f"sqlite:///{store}")
    assert listed.returncode == 0 and "no messages" in listed.stdout, listed.stdout
