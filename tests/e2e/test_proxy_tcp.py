"""The proxy of ``sipactors serve`` forwarding over TCP, on real sockets on 127.0.0.1 (RFC 3261 §18, RFC 5626
§5.3, RFC 5658): a device that registered over TCP is called over the connection it registered on, a TCP
caller reaches a UDP device, and a TCP next hop that refuses the connection ends the branch at once
(transport error: 503, passed upstream as 500, §16.7 step 6) rather than after Timer B."""

from __future__ import annotations

import socket
from pathlib import Path

from sipactors.message import Request, Response, parse
from tests.e2e.test_proxy import Peer, _answer
from tests.e2e.test_serve import start_server, stop_server


class Stream:
    """A TCP connection to the server speaking just enough SIP (framed by Content-Length, §18.3)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.port = self.sock.getsockname()[1]  # the connection's own port: what the server sees
        self.buffer = b""

    def send(self, text: str) -> None:
        self.sock.sendall(text.replace("\r\n", "\n").replace("\n", "\r\n").encode())

    def receive(self) -> Request | Response:
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, rest = self.buffer.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length"))
        while len(rest) < length:
            self._read()
            head, _, rest = self.buffer.partition(b"\r\n\r\n")
        self.buffer = rest[length:]
        return parse(head + b"\r\n\r\n" + rest[:length], stream=True)

    def response(self) -> Response:
        while True:
            message = self.receive()
            assert isinstance(message, Response), message
            if message.status != 100:
                return message

    def _read(self) -> None:
        data = self.sock.recv(65535)
        assert data, "the server closed the connection"
        self.buffer += data

    def close(self) -> None:
        self.sock.close()

    def hang_up(self) -> None:
        """Close the connection and wait until the server has closed its side too (it read our FIN): a
        request sent after this cannot race the server's noticing that the flow is gone (RFC 5626 §4.4)."""
        self.sock.shutdown(socket.SHUT_WR)
        while self.sock.recv(65535):  # the socket's timeout bounds the wait; b"" is the server's FIN
            pass
        self.sock.close()


def _message(method: str, uri: str, transport: str, sent_by: int, branch: str, cseq: int, *, to: str, frm: str,
             call_id: str, extra: str = "") -> str:
    return (
        f"{method} {uri} SIP/2.0\nVia: SIP/2.0/{transport} 127.0.0.1:{sent_by};branch=z9hG4bK{branch};rport\n"
        f"Max-Forwards: 70\nTo: {to}\nFrom: {frm}\nCall-ID: {call_id}\nCSeq: {cseq} {method}\n{extra}"
        "Content-Length: 0\n\n"
    )


def _register(device: Stream | Peer, contact: str, server_port: int, user: str = "bob") -> None:
    transport = "TCP" if isinstance(device, Stream) else "UDP"
    text = _message("REGISTER", "sip:127.0.0.1", transport, device.port, "reg", 1, to=f"<sip:{user}@127.0.0.1>",
                    frm=f"<sip:{user}@127.0.0.1>;tag=r", call_id=f"reg-{device.port}",
                    extra=f"Contact: <{contact}>\nExpires: 600\n")
    if isinstance(device, Stream):
        device.send(text)
    else:
        device.send(text, server_port)
    assert device.response().status == 200


def _routes(message: Request | Response) -> list[str]:
    return [value.uri.render() for value in message.record_route]


def test_a_device_registered_over_tcp_is_called_on_its_connection_rfc5626_5_3(tmp_path: Path) -> None:
    port, process, _ = start_server(tmp_path / "sipactors.db")
    decoy, caller = Peer(), Peer()  # the contact's UDP port: the INVITE must not go there
    device = Stream(port)
    try:
        _register(device, f"sip:bob@127.0.0.1:{decoy.port}", port)  # a contact the flow overrides
        decoy.sock.settimeout(0.2)
        caller.send(_message("INVITE", "sip:bob@127.0.0.1", "UDP", caller.port, "i1", 1, to="<sip:bob@127.0.0.1>",
                             frm="<sip:alice@127.0.0.1>;tag=a1", call_id="tcp1",
                             extra=f"Contact: <sip:alice@127.0.0.1:{caller.port}>\n"), port)
        invite = device.receive()
        assert isinstance(invite, Request) and invite.method == "INVITE"
        assert invite.via[0].transport == "TCP" and invite.via[0].port == port  # §18.1.1: the Via names TCP
        tcp_route, udp_route = f"sip:127.0.0.1:{port};transport=tcp;lr", f"sip:127.0.0.1:{port};lr"
        assert _routes(invite) == [tcp_route, udp_route]  # RFC 5658 §3.2: ours twice, the device's leg on top
        try:
            decoy.sock.recvfrom(65535)
            raise AssertionError("the INVITE went over UDP to the contact as well")
        except TimeoutError:
            pass

        # the device's contact for the dialog is its connection (as TCP UAs behind NAT say it)
        contact = f"sip:bob@127.0.0.1:{device.port};transport=tcp"
        device.send(_answer(invite, 180, "Ringing", "b1", contact))
        assert caller.response().status == 180
        device.send(_answer(invite, 200, "OK", "b1", contact))
        ok = caller.response()
        assert ok.status == 200 and _routes(ok) == [tcp_route, udp_route]

        route = f"Route: <{udp_route}>, <{tcp_route}>\n"  # the caller's route set: the Record-Route reversed
        dialog = {"to": "<sip:bob@127.0.0.1>;tag=b1", "frm": "<sip:alice@127.0.0.1>;tag=a1", "call_id": "tcp1"}
        caller.send(_message("ACK", contact, "UDP", caller.port, "a1", 1, extra=route, **dialog), port)
        ack = device.receive()
        assert isinstance(ack, Request) and ack.method == "ACK" and ack.via[0].transport == "TCP" and not ack.route
        caller.send(_message("BYE", contact, "UDP", caller.port, "b2", 2, extra=route, **dialog), port)
        bye = device.receive()
        assert isinstance(bye, Request) and bye.method == "BYE" and not bye.route  # both our Routes popped
        device.send(_answer(bye, 200, "OK", "b1", contact))
        assert caller.response().status == 200
        assert process.poll() is None
    finally:
        for peer in (decoy, caller, device):
            peer.close()
        stop_server(process)


def test_a_tcp_caller_reaches_a_udp_device_rfc5658(tmp_path: Path) -> None:
    port, process, _ = start_server(tmp_path / "sipactors.db")
    callee = Peer()
    caller = Stream(port)
    try:
        contact = f"sip:bob@127.0.0.1:{callee.port}"
        _register(callee, contact, port)
        caller.send(_message("INVITE", "sip:bob@127.0.0.1", "TCP", caller.port, "i1", 1, to="<sip:bob@127.0.0.1>",
                             frm="<sip:alice@127.0.0.1>;tag=a1", call_id="tcp2",
                             extra=f"Contact: <sip:alice@127.0.0.1:{caller.port};transport=tcp>\n"))
        invite = callee.receive()
        assert isinstance(invite, Request) and invite.method == "INVITE" and invite.via[0].transport == "UDP"
        tcp_route, udp_route = f"sip:127.0.0.1:{port};transport=tcp;lr", f"sip:127.0.0.1:{port};lr"
        assert _routes(invite) == [udp_route, tcp_route]
        callee.send(_answer(invite, 200, "OK", "b1", contact), port)
        ok = caller.response()
        assert ok.status == 200 and _routes(ok) == [udp_route, tcp_route]

        route = f"Route: <{tcp_route}>, <{udp_route}>\n"
        dialog = {"to": "<sip:bob@127.0.0.1>;tag=b1", "frm": "<sip:alice@127.0.0.1>;tag=a1", "call_id": "tcp2"}
        caller.send(_message("ACK", contact, "TCP", caller.port, "a1", 1, extra=route, **dialog))
        ack = callee.receive()
        assert isinstance(ack, Request) and ack.method == "ACK" and ack.via[0].transport == "UDP"
        caller.send(_message("BYE", contact, "TCP", caller.port, "b2", 2, extra=route, **dialog))
        bye = callee.receive()
        assert isinstance(bye, Request) and bye.method == "BYE"
        callee.send(_answer(bye, 200, "OK", "b1", contact), port)
        assert caller.response().status == 200
    finally:
        caller.close()
        callee.close()
        stop_server(process)


def test_a_tcp_contact_gets_a_new_connection_and_one_that_refuses_fails_at_once_rfc3261_18_1_1(tmp_path: Path) -> None:
    """With no connection open to it, a ``transport=tcp`` contact gets one opened by the proxy (§18.1.1);
    when that is refused, the client transaction's transport error ends the branch with 503 (§16.9),
    500 upstream (§16.7 step 6), at once rather than after Timer B's 32 s."""
    port, process, _ = start_server(tmp_path / "sipactors.db")
    listening, refusing = socket.socket(), socket.socket()  # the second is bound, never listening: refused
    listening.bind(("127.0.0.1", 0))
    listening.listen(1)
    listening.settimeout(5)
    refusing.bind(("127.0.0.1", 0))
    device, caller = Stream(port), Peer()
    try:
        _register(device, f"sip:bob@127.0.0.1:{listening.getsockname()[1]};transport=tcp", port)
        device.hang_up()  # its flow is gone: the proxy must connect to the contact
        invite = _message("INVITE", "sip:bob@127.0.0.1", "UDP", caller.port, "i1", 1, to="<sip:bob@127.0.0.1>",
                          frm="<sip:alice@127.0.0.1>;tag=a1", call_id="tcp3")
        caller.send(invite, port)
        accepted, _ = listening.accept()
        opened = Stream.__new__(Stream)
        opened.sock, opened.port, opened.buffer = accepted, accepted.getsockname()[1], b""
        forwarded = opened.receive()
        assert isinstance(forwarded, Request) and forwarded.method == "INVITE" and forwarded.via[0].transport == "TCP"
        opened.send(_answer(forwarded, 486, "Busy Here", "b1", "sip:bob@127.0.0.1"))
        busy = caller.response()
        assert busy.status == 486
        caller.send(_message("ACK", "sip:bob@127.0.0.1", "UDP", caller.port, "i1", 1, to=busy.header_text("To") or "",
                             frm="<sip:alice@127.0.0.1>;tag=a1", call_id="tcp3"), port)  # §17.1.1.3
        opened.close()

        device = Stream(port)
        _register(device, f"sip:carol@127.0.0.1:{refusing.getsockname()[1]};transport=tcp", port, "carol")
        device.hang_up()
        caller.send(invite.replace("z9hG4bKi1", "z9hG4bKi2").replace("tcp3", "tcp4").replace("sip:bob@", "sip:carol@"), port)
        assert caller.response().status == 500  # within the socket's 5 s, not Timer B's 32 s
        assert process.poll() is None
    finally:
        for item in (listening, refusing, caller, device):
            item.close()
        stop_server(process)
