"""The server core: OPTIONS answered, REGISTER handed to the registrar when there is one, everything else
refused with the code the RFC gives (RFC 3261 §11, §8.2.1, §21.4.6, §21.5.2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sipactors.message import Request, Response
from sipactors.message.build import response_for

if TYPE_CHECKING:
    from sipactors.roles.registrar import Registrar

__all__ = ["ALLOW", "Core", "KNOWN_METHODS"]

#: Methods always answered (RFC 3261 §20.5 Allow); REGISTER joins them when a registrar is configured.
ALLOW = ("OPTIONS",)
#: Methods this server knows from the RFCs but does not offer yet: 405 with Allow (RFC 3261 §21.4.6).
KNOWN_METHODS = (
    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER", "INFO",
    "UPDATE", "PRACK",
)
ACCEPT = ("application/sdp",)
SUPPORTED = ("path", "outbound")


class Core:
    """The transaction user of ``sipactors serve``."""

    def __init__(self, server_name: str = "sipactors", registrar: Registrar | None = None) -> None:
        self.server_name = server_name
        self.registrar = registrar
        self.allow = ALLOW + (("REGISTER",) if registrar is not None else ())

    def answer(self, request: Request, to_tag: str) -> Response:
        """The response a request other than a REGISTER to the registrar gets (the caller supplies the To
        tag); ``request`` hands a REGISTER to the registrar, which answers when its changes are committed."""
        server = [("Server", self.server_name)]
        allow = ("Allow", ", ".join(self.allow))
        if request.method == "OPTIONS":  # RFC 3261 §11.2
            return response_for(
                request, 200, to_tag=to_tag,
                headers=[allow, ("Accept", ", ".join(ACCEPT)), ("Supported", ", ".join(SUPPORTED)), *server],
            )
        if request.method == "CANCEL":  # no INVITE transaction exists to cancel (RFC 3261 §9.2)
            return response_for(request, 481, to_tag=to_tag, headers=server)
        if request.method.upper() in KNOWN_METHODS:
            return response_for(request, 405, to_tag=to_tag, headers=[allow, *server])
        return response_for(request, 501, to_tag=to_tag, headers=[allow, *server])

    # -- the TransactionUser protocol -------------------------------------------------------------
    def request(self, layer: Any, key: Any, request: Request) -> None:
        if request.method == "REGISTER" and self.registrar is not None:  # RFC 3261 §10.3
            # The registrar answers once the REGISTER's changes are committed (§10.3 step 8).
            self.registrar.handle(request, layer.new_tag(), lambda response: layer.respond(key, response))
            return
        layer.respond(key, self.answer(request, layer.new_tag()))

    def response(self, layer: Any, key: Any, response: Response) -> None:
        pass  # the core sends no requests yet

    def timeout(self, layer: Any, key: Any) -> None:
        pass

    def transport_error(self, layer: Any, key: Any) -> None:
        pass

    def ack(self, layer: Any, request: Request, source: Any) -> None:
        pass  # an ACK for a 2xx: the core sends no 2xx to INVITE
