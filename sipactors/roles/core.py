"""The server core: OPTIONS answered, REGISTER handed to the registrar, MESSAGE to messaging when there is
one (RFC 3428: a size limit, store-and-forward, then the proxy), every other request handed to the
stateful proxy when there is one (RFC 3261 §16), and otherwise refused with the code the RFC gives
(RFC 3261 §11, §8.2.1, §21.4.6, §21.5.2).

Which requests are the core's own (RFC 3261 §11, §16.3 item 3): an OPTIONS whose Request-URI has no user
part (it names a server, this one or the next hop asked through us) is answered here, even with
Max-Forwards 0; an OPTIONS for a user goes to the proxy (the user's devices answer it), and is answered
here when the user has no device registered.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from sipactors.message import Request, Response, SipURI
from sipactors.message.build import response_for
from sipactors.store.model import Source

if TYPE_CHECKING:
    from sipactors.roles.presence import PresencePackage
    from sipactors.roles.registrar import Registrar
    from sipactors.runtime.subscription import Notifier

__all__ = ["ALLOW", "Core", "KNOWN_METHODS", "PROXIED"]

#: Methods always answered (RFC 3261 §20.5 Allow); REGISTER joins them when a registrar is configured.
ALLOW = ("OPTIONS",)
#: Methods this server knows from the RFCs but does not offer yet: 405 with Allow (RFC 3261 §21.4.6).
KNOWN_METHODS = (
    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER", "INFO",
    "UPDATE", "PRACK",
)
#: The methods a proxy forwards and lists in Allow (it forwards unknown methods too, RFC 3261 §16).
PROXIED = ("INVITE", "ACK", "BYE", "CANCEL", "MESSAGE", "SUBSCRIBE", "NOTIFY", "REFER", "INFO", "UPDATE", "PRACK", "PUBLISH")
ACCEPT = ("application/sdp",)
SUPPORTED = ("path", "outbound")


class ProxyTU(Protocol):
    """What the core needs of the proxy (``sipactors.runtime.proxy.Proxy``)."""

    def request(self, layer: Any, key: Any, request: Request, own: Any = None) -> None: ...

    def cancel(self, layer: Any, key: Any, cancel: Request) -> None: ...

    def ack(self, layer: Any, request: Request, source: Any) -> None: ...

    def response(self, layer: Any, key: Any, response: Response) -> None: ...

    def timeout(self, layer: Any, key: Any) -> None: ...

    def transport_error(self, layer: Any, key: Any) -> None: ...


class Core:
    """The transaction user of ``sipactors serve``."""

    def __init__(
        self, server_name: str = "sipactors", registrar: Registrar | None = None, proxy: ProxyTU | None = None,
        notifier: Notifier | None = None,
        presence: PresencePackage | None = None,
        messaging: Any = None,
    ) -> None:
        self.server_name = server_name
        self.registrar = registrar
        self.proxy = proxy
        self.notifier = notifier  # SUBSCRIBEs for local resources (RFC 6665 §4.2)
        self.presence = presence  # the event state compositor for local presentities (RFC 3903 §6)
        self.messaging = messaging  # MESSAGE: size limit and store-and-forward (sipactors.runtime.messaging)
        allow = ALLOW + (("REGISTER",) if registrar is not None else ())
        allow += ("PUBLISH",) if presence is not None else ()
        allow += tuple(m for m in (PROXIED if proxy is not None else ()) if m not in allow)
        self.allow = allow + (("SUBSCRIBE",) if notifier is not None and "SUBSCRIBE" not in allow else ())

    def answer(self, request: Request, to_tag: str) -> Response:
        """The response a request other than a REGISTER to the registrar gets (the caller supplies the To
        tag); ``request`` hands a REGISTER to the registrar, which answers when its changes are committed."""
        server = [("Server", self.server_name)]
        allow = ("Allow", ", ".join(self.allow))
        if request.method == "OPTIONS":  # RFC 3261 §11.2
            if self.notifier is not None and self.notifier.packages:
                events = [("Allow-Events", self.notifier.allow_events)]
            else:  # RFC 3903 §7: a compositor lists the package it takes PUBLISHes for
                events = [("Allow-Events", self.presence.event)] if self.presence is not None else []
            return response_for(  # RFC 6665 §4.4.4: Allow-Events names the packages hosted
                request, 200, to_tag=to_tag,
                headers=[allow, ("Accept", ", ".join(ACCEPT)), ("Supported", ", ".join(SUPPORTED)), *events, *server],
            )
        if request.method == "CANCEL":  # no INVITE transaction exists to cancel (RFC 3261 §9.2)
            return response_for(request, 481, to_tag=to_tag, headers=server)
        if request.method.upper() in KNOWN_METHODS:
            return response_for(request, 405, to_tag=to_tag, headers=[allow, *server])
        return response_for(request, 501, to_tag=to_tag, headers=[allow, *server])

    def _ours(self, request: Request) -> bool:
        """Whether the core answers ``request`` itself rather than proxy it."""
        method = request.method
        if method == "REGISTER":
            return True
        if method == "OPTIONS":  # RFC 3261 §11: OPTIONS to the server itself
            uri = request.uri
            return self.proxy is None or not isinstance(uri, SipURI) or uri.user is None
        return self.proxy is None and not (method == "SUBSCRIBE" and self.notifier is not None)

    # -- the TransactionUser protocol -------------------------------------------------------------
    def request(self, layer: Any, key: Any, request: Request) -> None:
        if request.method == "REGISTER" and self.registrar is not None:  # RFC 3261 §10.3
            # The registrar answers once the REGISTER's changes are committed (§10.3 step 8).
            self.registrar.handle(request, layer.new_tag(), lambda response: layer.respond(key, response), _source(layer, key))
        elif request.method == "SUBSCRIBE" and self.notifier is not None and self.notifier.takes(request):
            peer = layer.peer(key)  # RFC 6665 §4.2: a local resource's notifier is this server
            self.notifier.request(layer, key, request, *(peer if peer is not None else (None, None)))
        elif self.presence is not None and self.presence.serves(request):  # RFC 3903 §6: we are the ESC
            self.presence.handle(request, layer.new_tag(), lambda response: layer.respond(key, response))
        elif self._ours(request):
            layer.respond(key, self.answer(request, layer.new_tag()))
        elif request.method == "MESSAGE" and self.messaging is not None:  # RFC 3428 §7
            self.messaging.request(layer, key, request)
        elif request.method == "CANCEL":
            assert self.proxy is not None
            self.proxy.cancel(layer, key, request)
        else:
            assert self.proxy is not None
            self.proxy.request(layer, key, request, self.answer)

    def response(self, layer: Any, key: Any, response: Response) -> None:
        if self.proxy is not None:
            self.proxy.response(layer, key, response)

    def timeout(self, layer: Any, key: Any) -> None:
        if self.proxy is not None:
            self.proxy.timeout(layer, key)

    def transport_error(self, layer: Any, key: Any) -> None:
        if self.proxy is not None:
            self.proxy.transport_error(layer, key)

    def ack(self, layer: Any, request: Request, source: Any) -> None:
        if self.proxy is not None:  # the ACK for a 2xx the proxy forwarded (RFC 3261 §16.11)
            self.proxy.ack(layer, request, source)


def _source(layer: Any, key: Any) -> Source | None:
    """Where the request of the server transaction ``key`` came from, over which transport (RFC 5626 §6:
    the flow a registration arrived on), as a binding records it."""
    peer = layer.peer(key)
    if peer is None:
        return None
    (host, port), transport = peer
    return Source(getattr(transport, "name", "UDP").lower(), host, port)
