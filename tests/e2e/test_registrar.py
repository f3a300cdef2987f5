"""The registrar of ``sipactors serve`` over real sockets and a real SQLite file (RFC 3261 §10.3, §22): open
when the store has no users (and the banner says so), digest-authenticated once a user exists, and its
bindings survive a ``kill -9``: after a restart a call for the AOR reaches the device."""

from __future__ import annotations

import re
import select
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from sipactors.message import parse, parse_uri
from sipactors.message.build import response_for
from sipactors.roles.digest import ha1, request_digest
from tests.e2e.test_serve import REPO, start_server, stop_server


def _register(port: int, user: str, call_id: str, cseq: int, *, contact: str | None, expires: int | None = 3600,
              authorization: str | None = None) -> bytes:
    lines = [
        "REGISTER sip:127.0.0.1 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{call_id}{cseq};rport",
        "Max-Forwards: 70",
        f"To: <sip:{user}@127.0.0.1>",
        f"From: <sip:{user}@127.0.0.1>;tag={call_id}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq} REGISTER",
    ]
    if contact is not None:
        lines.append(f"Contact: <{contact}>")
    if expires is not None:
        lines.append(f"Expires: {expires}")
    if authorization is not None:
        lines.append(f"Authorization: {authorization}")
    return ("\r\n".join([*lines, "Content-Length: 0", "", ""])).encode()


def _exchange(port: int, data: bytes) -> object:
    """One request over UDP from a fresh socket (its port goes into the Via); the final response."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        sock.bind(("127.0.0.1", 0))
        sock.sendto(data.replace(b"127.0.0.1:%d;" % port, b"127.0.0.1:%d;" % sock.getsockname()[1]), ("127.0.0.1", port))
        while True:
            reply, _ = sock.recvfrom(65535)
            if not reply.startswith(b"SIP/2.0 100"):
                return parse(reply)


def _contacts(response: object) -> list[tuple[str, str | None]]:
    return [(address.uri.render(), address.params.get("expires")) for address in response.contact]  # type: ignore[attr-defined]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sipactors", *args], cwd=REPO, capture_output=True, text=True, timeout=60)


def test_open_registrar_binds_lists_and_says_it_is_open_rfc3261_10_3(tmp_path: Path) -> None:
    store = tmp_path / "sipactors.db"
    port, process, banner = start_server(store)
    try:
        assert any("OPEN" in line for line in banner), banner
        assert any("REGISTER" in line for line in banner if line.startswith("allow:"))
        response = _exchange(port, _register(port, "alice", "c1", 1, contact="sip:alice@192.0.2.10:5060"))
        assert response.status == 200  # type: ignore[attr-defined]
        assert _contacts(response) == [("sip:alice@192.0.2.10:5060", "3600")]
        query = _exchange(port, _register(port, "alice", "c2", 1, contact=None, expires=None))  # a query (§10.2.3)
        assert query.status == 200  # type: ignore[attr-defined]
        [(uri, expires)] = _contacts(query)  # the time left, by the wall clock
        assert uri == "sip:alice@192.0.2.10:5060" and expires is not None and 3590 <= int(expires) <= 3600
        brief = _exchange(port, _register(port, "alice", "c1", 2, contact="sip:alice@192.0.2.10:5060", expires=5))
        assert brief.status == 423 and brief.header("Min-Expires") == 60  # type: ignore[attr-defined]
        listed = _cli("bindings", "list", "--store", f"sqlite:///{store}")
        assert listed.returncode == 0 and "sip:alice@192.0.2.10:5060" in listed.stdout
    finally:
        stop_server(process)


def test_a_user_in_the_store_makes_register_digest_authenticated_rfc3261_22(tmp_path: Path) -> None:
    store = tmp_path / "sipactors.db"
    added = _cli("users", "add", "bob@127.0.0.1", "--password", "secret", "--store", f"sqlite:///{store}")
    assert added.returncode == 0, added.stderr
    port, process, banner = start_server(store)
    try:
        assert not any("OPEN" in line for line in banner) and any("digest" in line for line in banner), banner
        challenge = _exchange(port, _register(port, "bob", "c3", 1, contact="sip:bob@192.0.2.20"))
        assert challenge.status == 401  # type: ignore[attr-defined]
        offers = [field.value for field in challenge.get_fields("WWW-Authenticate")]  # type: ignore[attr-defined]
        assert "algorithm=SHA-256" in offers[0] and "algorithm=MD5" in offers[1]  # RFC 8760 §2.4: SHA-256 first
        realm = re.search(r'realm="([^"]*)"', offers[0]).group(1)  # type: ignore[union-attr]
        nonce = re.search(r'nonce="([^"]*)"', offers[0]).group(1)  # type: ignore[union-attr]
        opaque = re.search(r'opaque="([^"]*)"', offers[0]).group(1)  # type: ignore[union-attr]

        def credentials(password: str) -> str:
            digest = request_digest(ha1("bob", realm, password, "SHA-256"), "SHA-256", nonce, "00000001", "0a4f113b",
                                    "REGISTER", "sip:127.0.0.1")
            return (f'Digest username="bob", realm="{realm}", nonce="{nonce}", uri="sip:127.0.0.1", '
                    f'response="{digest}", algorithm=SHA-256, qop=auth, nc=00000001, cnonce="0a4f113b", opaque="{opaque}"')

        wrong = _exchange(port, _register(port, "bob", "c3", 2, contact="sip:bob@192.0.2.20", authorization=credentials("guess")))
        assert wrong.status == 401  # type: ignore[attr-defined]
        right = _exchange(port, _register(port, "bob", "c3", 3, contact="sip:bob@192.0.2.20", authorization=credentials("secret")))
        assert right.status == 200 and _contacts(right) == [("sip:bob@192.0.2.20", "3600")]  # type: ignore[attr-defined]
    finally:
        stop_server(process)


def _invite(caller: int, aor: str, call_id: str) -> bytes:
    """An INVITE for ``aor`` from a caller on UDP port ``caller`` of 127.0.0.1."""
    return (
        f"INVITE {aor} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{caller};branch=z9hG4bK{call_id};rport\r\n"
        f"Max-Forwards: 70\r\nTo: <{aor}>\r\nFrom: <sip:erin@127.0.0.1>;tag={call_id}\r\n"
        f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nContact: <sip:erin@127.0.0.1:{caller}>\r\nContent-Length: 0\r\n\r\n"
    ).encode()


def _call_reaches(device: socket.socket, port: int, aor: str, call_id: str) -> tuple[list[bytes], object]:
    """A caller sends an INVITE for ``aor`` to the server at ``port``; ``device`` (the bound contact) answers
    every INVITE it receives with 200 (RFC 3261 §13.3.1.4). The caller takes the 200, acknowledges it along
    the Record-Route set or to the Contact (§13.2.2.4) and returns what the device received and the 200."""
    received: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
        caller.bind(("127.0.0.1", 0))
        own = caller.getsockname()[1]
        caller.sendto(_invite(own, aor, call_id), ("127.0.0.1", port))
        deadline = time.monotonic() + 10
        final: object = None
        while time.monotonic() < deadline:
            ready, _, _ = select.select([device, caller], [], [], max(0.0, deadline - time.monotonic()))
            if device in ready:
                data, source = device.recvfrom(65535)
                received.append(data)
                request = parse(data)
                if request.is_request and request.method == "INVITE":  # type: ignore[union-attr]
                    contact = f"<sip:dave@127.0.0.1:{device.getsockname()[1]}>"
                    answer = response_for(request, 200, to_tag="dev1", headers=[("Contact", contact)])  # type: ignore[arg-type]
                    for route in request.get_fields("Record-Route"):
                        answer.add_header("Record-Route", route.value)  # §12.1.1: copied into the 2xx
                    device.sendto(answer.to_bytes(), source)
                elif request.is_request and request.method == "ACK":  # type: ignore[union-attr]
                    return received, final
            if caller in ready:
                response = parse(caller.recvfrom(65535)[0])
                if response.is_request or response.status < 200:  # type: ignore[union-attr]
                    continue
                final = response
                if response.status >= 300:  # type: ignore[union-attr]
                    return received, final
                routes = [field.value for field in reversed(response.get_fields("Record-Route"))]
                target = response.contact[0].uri  # type: ignore[union-attr,index]
                ack = (
                    f"ACK {target.render()} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:{own};branch=z9hG4bK{call_id}a;rport\r\n"
                    + "".join(f"Route: {route}\r\n" for route in routes)
                    + f"Max-Forwards: 70\r\nTo: {response.header_text('To')}\r\nFrom: <sip:erin@127.0.0.1>;tag={call_id}\r\n"
                    f"Call-ID: {call_id}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n"
                ).encode()
                next_hop = parse_uri(routes[0].strip("<>").split(">")[0]) if routes else target
                caller.sendto(ack, (next_hop.host, next_hop.port or 5060))  # type: ignore[union-attr]
        return received, final


def test_a_binding_survives_kill_9_and_a_restart_and_a_call_reaches_the_device(tmp_path: Path) -> None:
    """Registrations survive a restart (the brief's standard): the 200 is sent after the binding is
    committed to SQLite, so killing the server outright loses nothing it acknowledged. After the restart
    the binding is listed, and an INVITE for the AOR is proxied to the device (RFC 3261 §16.5): the device
    answers 200, the caller gets it, and the ACK reaches the device."""
    store = tmp_path / "sipactors.db"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as device:
        device.bind(("127.0.0.1", 0))
        device.settimeout(5)
        contact = f"sip:dave@127.0.0.1:{device.getsockname()[1]}"
        port, process, _ = start_server(store)
        try:
            response = _exchange(port, _register(port, "dave", "c4", 1, contact=contact))
            assert response.status == 200  # type: ignore[attr-defined]
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        finally:
            stop_server(process)
        listed = _cli("bindings", "list", "--store", f"sqlite:///{store}")
        assert listed.returncode == 0 and contact in listed.stdout, listed.stdout
        port, process, _ = start_server(store)
        try:
            query = _exchange(port, _register(port, "dave", "c5", 1, contact=None, expires=None))
            assert query.status == 200  # type: ignore[attr-defined]
            [(uri, expires)] = _contacts(query)
            assert uri == contact and expires is not None and 3500 < int(expires) <= 3600
            received, final = _call_reaches(device, port, "sip:dave@127.0.0.1", "c6")
        finally:
            stop_server(process)
    invites = [parse(data) for data in received if data.startswith(b"INVITE ")]
    assert invites, f"the device received no INVITE; the caller got {final!r}"
    assert invites[0].uri.render() == contact  # type: ignore[union-attr]  # §16.5: the Request-URI is the contact
    assert len(invites[0].via) == 2  # the proxy's Via on top of the caller's (§16.6 step 8)
    assert final is not None and final.status == 200, final  # type: ignore[attr-defined]
    assert any(data.startswith(b"ACK ") for data in received), received


def test_registers_already_received_when_sigterm_comes_are_handled_and_committed_before_the_stop(tmp_path: Path) -> None:
    """A burst of REGISTERs sits in the server's UDP buffer (loopback delivers on ``sendto``) when SIGTERM
    comes: the server handles what already arrived before it stops (``ThreadScheduler.drain``), so every one
    of them is a binding in the store afterwards, none lost to the stop."""
    store = tmp_path / "sipactors.db"
    port, process, _ = start_server(store)
    users = [f"burst{n}" for n in range(40)]
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            for user in users:
                sock.sendto(_register(port, user, f"{user}-call", 1, contact=f"sip:{user}@127.0.0.1:5999"),
                            ("127.0.0.1", port))
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=30)
        assert process.returncode == 0, errors[-3000:]
    finally:
        stop_server(process)
    listed = _cli("bindings", "list", "--store", f"sqlite:///{store}").stdout
    assert [user for user in users if f"sip:{user}@127.0.0.1" not in listed] == []
