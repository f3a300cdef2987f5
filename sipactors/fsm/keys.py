"""Transaction keys: which transaction a message belongs to (RFC 3261 §17.1.3, §17.2.3, §9.2).

A key is a tuple that compares equal for every message of one transaction (its retransmissions included)
and for nothing else; the runtime keeps transaction actors in a dict under these keys (DESIGN §3).

* A request whose top Via branch starts with the magic cookie ``z9hG4bK`` (RFC 3261 §8.1.1.7) is keyed by
  the branch, the top Via's sent-by, and the method, where an ACK takes the INVITE's key (§17.2.3).
* Any other request is keyed the RFC 2543 way (§17.2.3): Request-URI, From tag, Call-ID, CSeq, and the top
  Via; an ACK again takes the INVITE's key (the To tag of an ACK is checked by the transaction, against
  the response it sent).
* A CANCEL has a transaction of its own, and ``cancel_target`` is the key of the INVITE it cancels (§9.2:
  "the same rules ... except the method").
* A response is matched to a client transaction by its top Via branch and its CSeq method (§17.1.3).
"""

from __future__ import annotations

from sipactors.message import MAGIC_COOKIE, Request, Response, Via

__all__ = ["ServerKey", "ClientKey", "cancel_target", "client_key", "server_key", "server_key_for"]

ServerKey = tuple[str, ...]
ClientKey = tuple[str, str]


def server_key_for(request: Request, method: str, top: Via | None = None) -> ServerKey:
    """The server transaction key of ``request`` as if its method were ``method`` (``top``: its top Via,
    when the caller has read it already)."""
    if top is None:
        top = request.via[0]
    branch = top.branch
    if branch is not None and branch.startswith(MAGIC_COOKIE):
        # §17.2.3: "the sent-by value in the top Via ... is equal": host names compare case-insensitively
        # (RFC 3261 §19.1.4), and an absent port is the transport's default, kept apart from an explicit
        # one as the RFC compares what was written.
        port = top.port
        return ("3261", branch, f"{top.host.lower()}:{port if port is not None else ''}", method)
    cseq = request.cseq
    from_tag = request.from_.tag if request.from_ is not None else None
    return (
        "2543", request.uri.render(), from_tag or "", request.call_id or "",
        str(cseq.seq if cseq is not None else ""), method, top.render(),
    )


def server_key(request: Request, top: Via | None = None) -> ServerKey:
    """The server transaction a request belongs to (§17.2.3); an ACK belongs to its INVITE's."""
    method = "INVITE" if request.method == "ACK" else request.method
    return server_key_for(request, method, top)


def cancel_target(cancel: Request) -> ServerKey:
    """The key of the INVITE server transaction a CANCEL refers to (RFC 3261 §9.2)."""
    return server_key_for(cancel, "INVITE")


def client_key(message: Request | Response) -> ClientKey | None:
    """The client transaction of a request it sends, or of a response it receives (§17.1.3); None when
    the top Via has no branch (such a response matches no client transaction)."""
    top = message.top_via  # not ``via``: that copies every via-parm
    branch = top.branch if top is not None else None
    if branch is None:
        return None
    cseq = message.cseq
    if cseq is None:
        return None
    return (branch, cseq.method)
