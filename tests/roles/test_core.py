"""The server core's dispatch (RFC 3261 §11, §10.3, §16): OPTIONS to a server is answered here, REGISTER
goes to the registrar, CANCEL and every other request to the proxy, and client-side events to the proxy."""

from __future__ import annotations

from typing import Any

from sipactors.message import Request, Response, parse
from sipactors.roles.core import PROXIED, Core
from sipactors.roles.digest import Authenticator
from sipactors.roles.registrar import Registrar
from sipactors.runtime import ManualScheduler, set_default_scheduler
from sipactors.store import MemoryStore
from sipactors.store.model import Source
from tests.roles.test_registrar import ALICE, POLICY, T0, request


class Layer:
    def __init__(self) -> None:
        self.answers: list[Response] = []

    def respond(self, key: Any, response: Response) -> None:
        self.answers.append(response)

    def new_tag(self) -> str:
        return "t"


class FakeProxy:
    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []

    def request(self, layer: Any, key: Any, request: Request, own: Any = None) -> None:
        self.calls.append(("request", request.method))

    def cancel(self, layer: Any, key: Any, cancel: Request) -> None:
        self.calls.append(("cancel", cancel.method))

    def ack(self, layer: Any, request: Request, source: Any) -> None:
        self.calls.append(("ack", request.method))

    def response(self, layer: Any, key: Any, response: Response) -> None:
        self.calls.append(("response", response.status))

    def timeout(self, layer: Any, key: Any) -> None:
        self.calls.append(("timeout", key))

    def transport_error(self, layer: Any, key: Any) -> None:
        self.calls.append(("transport_error", key))


def _request(method: str, uri: str) -> Request:
    message = parse((
        f"{method} {uri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch=z9hG4bK1\r\nMax-Forwards: 0\r\n"
        f"To: <sip:x@example.com>\r\nFrom: <sip:y@example.com>;tag=1\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n"
        "Content-Length: 0\r\n\r\n").encode())
    assert isinstance(message, Request)
    return message


def test_options_to_a_server_is_answered_here_even_with_max_forwards_0_and_the_rest_is_proxied() -> None:
    proxy, layer = FakeProxy(), Layer()
    core = Core("test", None, proxy)
    core.request(layer, "k", _request("OPTIONS", "sip:example.com"))
    assert [r.status for r in layer.answers] == [200] and "INVITE" in layer.answers[0].header_text("Allow")  # type: ignore[operator]
    for method in ("OPTIONS", "INVITE", "MESSAGE", "FROBNICATE"):
        core.request(layer, "k", _request(method, "sip:bob@example.com"))
    core.request(layer, "k", _request("CANCEL", "sip:bob@example.com"))
    core.ack(layer, _request("ACK", "sip:bob@192.0.2.7"), ("192.0.2.1", 5060))
    core.timeout(layer, "c1")
    core.transport_error(layer, "c2")
    assert proxy.calls == [("request", "OPTIONS"), ("request", "INVITE"), ("request", "MESSAGE"),
                           ("request", "FROBNICATE"), ("cancel", "CANCEL"), ("ack", "ACK"), ("timeout", "c1"),
                           ("transport_error", "c2")]
    assert set(PROXIED) <= set(core.allow)


def test_without_a_proxy_other_methods_are_refused_as_before_rfc3261_21_4_6() -> None:
    layer = Layer()
    core = Core("test")
    for method in ("INVITE", "FROBNICATE", "CANCEL"):
        core.request(layer, "k", _request(method, "sip:bob@example.com"))
    assert [r.status for r in layer.answers] == [405, 501, 481]
    assert core.allow == ("OPTIONS",)


class TcpLayer(Layer):
    """A layer whose server transaction ``k`` received its request over a TCP connection."""

    class Stream:
        name = "TCP"
        reliable = True

    def peer(self, key: Any) -> tuple[tuple[str, int], Any] | None:
        return (("192.0.2.1", 40123), self.Stream()) if key == "k" else None


def test_a_register_over_tcp_records_its_connection_as_the_bindings_source_rfc5626_6() -> None:
    set_default_scheduler(scheduler := ManualScheduler())
    try:
        registrar = Registrar(MemoryStore(), POLICY, Authenticator(b"k" * 32), lambda: T0, lambda n: b"s" * n)
        layer = TcpLayer()
        Core("test", registrar).request(layer, "k", request())
        scheduler.run_until_idle()
        assert [r.status for r in layer.answers] == [200]
        [binding] = registrar.bindings(ALICE, T0)
        assert binding.source == Source("tcp", "192.0.2.1", 40123)
    finally:
        set_default_scheduler(None)
