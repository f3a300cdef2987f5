"""The stateful proxy of ``sipactors serve`` over real UDP sockets on 127.0.0.1 (RFC 3261 §16): a callee
registers, a caller INVITEs the callee's AOR through the proxy, the callee rings and answers, the ACK and
the BYE follow the Record-Route, and every message of the call passes through the real server."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

from sipactors.message import Request, Response, parse
from sipactors.roles.digest import ha1, request_digest
from tests.e2e.test_serve import REPO, start_server, stop_server


class Peer:
    """A UDP socket speaking just enough SIP for one call."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(5)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]

    def send(self, text: str, port: int) -> None:
        self.sock.sendto(text.replace("\n", "\r\n").encode(), ("127.0.0.1", port))

    def receive(self) -> Request | Response:
        data, _ = self.sock.recvfrom(65535)
        return parse(data)

    def response(self, skip_100: bool = True) -> Response:
        while True:
            message = self.receive()
            assert isinstance(message, Response), message
            if not (skip_100 and message.status == 100):
                return message

    def close(self) -> None:
        self.sock.close()


def _head(method: str, uri: str, via_port: int, branch: str, cseq: int, *, to: str, tag: str, call_id: str,
          extra: str = "") -> str:
    return (
        f"{method} {uri} SIP/2.0\nVia: SIP/2.0/UDP 127.0.0.1:{via_port};branch=z9hG4bK{branch};rport\n"
        f"Max-Forwards: 70\nTo: {to}\nFrom: <sip:alice@127.0.0.1>;tag={tag}\nCall-ID: {call_id}\n"
        f"CSeq: {cseq} {method}\n{extra}Content-Length: 0\n\n"
    )


def _answer(request: Request, status: int, reason: str, tag: str, contact: str) -> str:
    """A UAS response (§8.2.6.2): the Vias, From, Call-ID, CSeq, the To with our tag, and the
    Record-Route copied (§12.1.1)."""
    lines = [f"SIP/2.0 {status} {reason}"]
    lines += [f"Via: {f.value}" for f in request.get_fields("Via")]
    lines += [f"Record-Route: {f.value}" for f in request.get_fields("Record-Route")]
    to = request.header_text("To") or ""
    lines += [f"To: {to}" + ("" if ";tag=" in to else f";tag={tag}"), f"From: {request.header_text('From')}",
              f"Call-ID: {request.call_id}", f"CSeq: {request.header_text('CSeq')}", f"Contact: <{contact}>",
              "Content-Length: 0", "", ""]
    return "\n".join(lines)


def test_register_invite_ring_answer_ack_bye_through_the_real_proxy_rfc3261_16(tmp_path: Path) -> None:
    port, process, banner = start_server(tmp_path / "sipactors.db")
    caller, callee = Peer(), Peer()
    try:
        assert any("proxy" in line for line in banner), banner
        contact = f"sip:bob@127.0.0.1:{callee.port}"
        callee.send(_head("REGISTER", "sip:127.0.0.1", callee.port, "r1", 1, to="<sip:bob@127.0.0.1>", tag="r",
                          call_id="reg1", extra=f"Contact: <{contact}>\nExpires: 600\n")
                    .replace("<sip:alice@127.0.0.1>", "<sip:bob@127.0.0.1>"), port)
        assert callee.response().status == 200

        caller.send(_head("INVITE", "sip:bob@127.0.0.1", caller.port, "i1", 1, to="<sip:bob@127.0.0.1>", tag="a1",
                          call_id="call1", extra=f"Contact: <sip:alice@127.0.0.1:{caller.port}>\n"), port)
        invite = callee.receive()
        assert isinstance(invite, Request) and invite.method == "INVITE"
        assert invite.uri.render() == contact  # §16.5: the binding's contact is the new Request-URI
        assert len(invite.via) == 2 and invite.via[0].port == port  # §16.6 step 8: one Via more, ours on top
        assert invite.max_forwards == 69  # §16.6 step 3
        [record_route] = invite.record_route  # §16.6 step 4
        assert record_route.uri.port == port and "lr" in record_route.uri.params

        callee.send(_answer(invite, 180, "Ringing", "b1", contact), port)
        ringing = caller.response()
        assert ringing.status == 180 and len(ringing.via) == 1  # §16.7 step 9: our Via popped
        callee.send(_answer(invite, 200, "OK", "b1", contact), port)
        ok = caller.response()
        assert ok.status == 200 and len(ok.via) == 1 and ok.to is not None and ok.to.tag == "b1"
        assert [r.uri.render() for r in ok.record_route] == [record_route.uri.render()]

        route = f"Route: <{record_route.uri.render()}>\n"
        dialog_to = "<sip:bob@127.0.0.1>;tag=b1"
        caller.send(_head("ACK", contact, caller.port, "a1", 1, to=dialog_to, tag="a1", call_id="call1", extra=route), port)
        ack = callee.receive()
        assert isinstance(ack, Request) and ack.method == "ACK" and len(ack.via) == 2  # §16.11: statelessly
        assert not ack.route  # our Route popped (§16.4)

        caller.send(_head("BYE", contact, caller.port, "b2", 2, to=dialog_to, tag="a1", call_id="call1", extra=route), port)
        bye = callee.receive()
        assert isinstance(bye, Request) and bye.method == "BYE" and bye.max_forwards == 69
        callee.send(_answer(bye, 200, "OK", "b1", contact), port)
        assert caller.response().status == 200
        assert process.poll() is None
    finally:
        caller.close()
        callee.close()
        stop_server(process)


def test_no_open_relay_a_foreign_domain_gets_403_in_open_mode(tmp_path: Path) -> None:
    port, process, _ = start_server(tmp_path / "sipactors.db")
    caller = Peer()
    try:
        caller.send(_head("INVITE", "sip:carol@192.0.2.77:5060", caller.port, "x1", 1, to="<sip:carol@192.0.2.77>",
                          tag="x", call_id="relay1"), port)
        answer = caller.response()
        assert answer.status == 403 and answer.reason == "Relaying Forbidden"
    finally:
        caller.close()
        stop_server(process)


def _digest(challenge: Response, header: str, user: str, method: str, uri: str, cnonce: str) -> str:
    """Credentials for the first (SHA-256) challenge of ``challenge`` (RFC 7616 §3.4)."""
    offer = challenge.get_fields(header)[0].value
    realm, nonce, opaque = (re.search(f'{name}="([^"]*)"', offer).group(1)  # type: ignore[union-attr]
                            for name in ("realm", "nonce", "opaque"))
    response = request_digest(ha1(user, realm, "secret", "SHA-256"), "SHA-256", nonce, "00000001", cnonce, method, uri)
    return (f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", response="{response}", '
            f'algorithm=SHA-256, qop=auth, nc=00000001, cnonce="{cnonce}", opaque="{opaque}"')


def test_with_users_a_local_caller_and_a_relay_need_407_credentials_rfc3261_22_3(tmp_path: Path) -> None:
    store = tmp_path / "sipactors.db"
    for user in ("alice", "bob"):
        added = subprocess.run([sys.executable, "-m", "sipactors", "users", "add", f"{user}@127.0.0.1", "--password",
                                "secret", "--store", f"sqlite:///{store}"], cwd=REPO, capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
    port, process, banner = start_server(store)
    caller, callee, carol = Peer(), Peer(), Peer("127.0.0.2")
    try:
        assert any("407" in line for line in banner if line.startswith("proxy:")), banner
        contact = f"sip:bob@127.0.0.1:{callee.port}"
        register = _head("REGISTER", "sip:127.0.0.1", callee.port, "r1", 1, to="<sip:bob@127.0.0.1>", tag="r",
                         call_id="reg1", extra=f"Contact: <{contact}>\n").replace("<sip:alice@", "<sip:bob@")
        callee.send(register, port)
        challenge = callee.response()
        assert challenge.status == 401
        authorization = _digest(challenge, "WWW-Authenticate", "bob", "REGISTER", "sip:127.0.0.1", "c1")
        callee.send(register.replace("CSeq: 1", "CSeq: 2").replace("branch=z9hG4bKr1", "branch=z9hG4bKr2")
                    .replace("Content-Length", f"Authorization: {authorization}\nContent-Length"), port)
        assert callee.response().status == 200

        invite = _head("INVITE", "sip:bob@127.0.0.1", caller.port, "i1", 1, to="<sip:bob@127.0.0.1>", tag="a1",
                       call_id="call2")
        caller.send(invite, port)
        refused = caller.response()
        assert refused.status == 407 and [f.value.split(",")[0] for f in refused.get_fields("Proxy-Authenticate")]
        caller.send(_head("ACK", "sip:bob@127.0.0.1", caller.port, "i1", 1, to=refused.header_text("To") or "",
                          tag="a1", call_id="call2"), port)  # the ACK of the 407 (§17.1.1.3)
        credentials = _digest(refused, "Proxy-Authenticate", "alice", "INVITE", "sip:bob@127.0.0.1", "c2")
        caller.send(invite.replace("CSeq: 1", "CSeq: 2").replace("branch=z9hG4bKi1", "branch=z9hG4bKi2")
                    .replace("Content-Length", f"Proxy-Authorization: {credentials}\nContent-Length"), port)
        forwarded = callee.receive()
        assert isinstance(forwarded, Request) and forwarded.method == "INVITE" and forwarded.uri.render() == contact
        assert not forwarded.has("Proxy-Authorization")  # §22.3: our realm's credentials stop here
        callee.send(_answer(forwarded, 486, "Busy Here", "b1", contact), port)
        assert caller.response().status == 486

        relay_uri = f"sip:carol@127.0.0.2:{carol.port}"  # another domain (still the loopback network)
        relay = _head("MESSAGE", relay_uri, caller.port, "m1", 1, to=f"<{relay_uri}>", tag="a2", call_id="msg1")
        caller.send(relay, port)
        refused = caller.response()
        assert refused.status == 407
        credentials = _digest(refused, "Proxy-Authenticate", "alice", "MESSAGE", relay_uri, "c3")
        caller.send(relay.replace("CSeq: 1", "CSeq: 2").replace("branch=z9hG4bKm1", "branch=z9hG4bKm2")
                    .replace("Content-Length", f"Proxy-Authorization: {credentials}\nContent-Length"), port)
        message = carol.receive()
        assert isinstance(message, Request) and message.method == "MESSAGE"
        carol.send(_answer(message, 200, "OK", "c1", relay_uri), port)
        assert caller.response().status == 200
    finally:
        for peer in (caller, callee, carol):
            peer.close()
        stop_server(process)
