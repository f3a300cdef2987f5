"""The server core before any role is configured: OPTIONS answered, everything else refused with the
code the RFC gives (RFC 3261 §11, §8.2.1, §21.4.6, §21.5.2)."""

from __future__ import annotations

from typing import Any

from sipactors.message import Request, Response
from sipactors.message.build import response_for

__all__ = ["ALLOW", "Core", "KNOWN_METHODS"]

#: Methods answered now (RFC 3261 §20.5 Allow).
ALLOW = ("OPTIONS",)
#: Methods this server knows from the RFCs but does not offer yet: 405 with Allow (RFC 3261 §21.4.6).
KNOWN_METHODS = (
    "INVITE", "ACK", "BYE", "CANCEL", "REGISTER", "SUBSCRIBE", "NOTIFY", "PUBLISH", "MESSAGE", "REFER", "INFO",
    "UPDATE", "PRACK",
)
ACCEPT = ("application/sdp",)
SUPPORTED = ("path", "outbound")


class Core:
    """The transaction user of ``sipactors serve`` for now."""

    def __init__(self, server_name: str = "sipactors") -> None:
        self.server_name = server_name

    def answer(self, request: Request, to_tag: str) -> Response:
        """The response a request gets (pure: the caller supplies the To tag)."""
        server = [("Server", self.server_name)]
        if request.method == "OPTIONS":  # RFC 3261 §11.2
            return response_for(
                request, 200, to_tag=to_tag,
                headers=[("Allow", ", ".join(ALLOW)), ("Accept", ", ".join(ACCEPT)),
                         ("Supported", ", ".join(SUPPORTED)), *server],
            )
        if request.method == "CANCEL":  # no INVITE transaction exists to cancel (RFC 3261 §9.2)
            return response_for(request, 481, to_tag=to_tag, headers=server)
        if request.method.upper() in KNOWN_METHODS:
            return response_for(request, 405, to_tag=to_tag, headers=[("Allow", ", ".join(ALLOW)), *server])
        return response_for(request, 501, to_tag=to_tag, headers=[("Allow", ", ".join(ALLOW)), *server])

    # -- the TransactionUser protocol -------------------------------------------------------------
    def request(self, layer: Any, key: Any, request: Request) -> None:
        layer.respond(key, self.answer(request, layer.new_tag()))

    def response(self, layer: Any, key: Any, response: Response) -> None:
        pass  # the core sends no requests yet

    def timeout(self, layer: Any, key: Any) -> None:
        pass

    def transport_error(self, layer: Any, key: Any) -> None:
        pass

    def ack(self, layer: Any, request: Request, source: Any) -> None:
        pass  # an ACK for a 2xx: the core sends no 2xx to INVITE
