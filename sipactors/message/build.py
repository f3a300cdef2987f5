"""Building messages from others: responses to a request (RFC 3261 §8.2.6) and the ACK for a non-2xx
final response (RFC 3261 §17.1.1.3). Pure: the caller supplies the To tag (it draws it from its own
randomness, as the sans-IO core must not)."""

from __future__ import annotations

from collections.abc import Sequence

from sipactors.message.message import _UNSET, HeaderField, Request, Response

__all__ = ["REASON_PHRASES", "ack_for", "response_for"]

#: Default reason phrases (RFC 3261 §21, RFC 3265/6665 §8.3.1 for 489, RFC 3903 §11.2.1 for 412).
REASON_PHRASES = {
    100: "Trying", 180: "Ringing", 181: "Call Is Being Forwarded", 182: "Queued", 183: "Session Progress",
    200: "OK", 202: "Accepted", 300: "Multiple Choices", 301: "Moved Permanently", 302: "Moved Temporarily",
    305: "Use Proxy", 380: "Alternative Service", 400: "Bad Request", 401: "Unauthorized",
    402: "Payment Required", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
    406: "Not Acceptable", 407: "Proxy Authentication Required", 408: "Request Timeout", 410: "Gone",
    412: "Conditional Request Failed", 413: "Request Entity Too Large", 414: "Request-URI Too Long",
    415: "Unsupported Media Type", 416: "Unsupported URI Scheme", 420: "Bad Extension",
    421: "Extension Required", 423: "Interval Too Brief", 480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist", 482: "Loop Detected", 483: "Too Many Hops",
    484: "Address Incomplete", 485: "Ambiguous", 486: "Busy Here", 487: "Request Terminated",
    488: "Not Acceptable Here", 489: "Bad Event", 491: "Request Pending", 493: "Undecipherable",
    500: "Server Internal Error", 501: "Not Implemented", 502: "Bad Gateway", 503: "Service Unavailable",
    504: "Server Time-out", 505: "Version Not Supported", 513: "Message Too Large", 600: "Busy Everywhere",
    603: "Decline", 604: "Does Not Exist Anywhere", 606: "Not Acceptable",
}


def response_for(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None,
    headers: Sequence[tuple[str, object]] | None = None, body: bytes = b"",
) -> Response:
    """A response to ``request`` (RFC 3261 §8.2.6.2): its Via lines, From, To, Call-ID and CSeq copied, a
    To tag added when ``to_tag`` is given and the To has none (never for 100 Trying), then ``headers``.
    Header lines the request carried are copied as received."""
    fields: list[HeaderField] = []
    append = fields.append
    for field in request.fields:
        key = field.key
        if key in _COPIED:
            append(field)
        elif key == "to":
            to = request.to
            if to_tag is not None and status != 100 and to is not None and to.tag is None:
                # the tag goes last, where with_params would put it: the text is the value's, parsed on access
                append(HeaderField(field.name, f"{field.value};tag={to_tag}", None, _UNSET, (key, field.spec)))
            else:
                append(field)
    response = Response(status, reason or REASON_PHRASES.get(status, "Unknown"), fields, body)
    for name, value in headers or ():
        response.add_header(name, value)
    if body:
        response.add_header("Content-Length", len(body))
    else:
        fields.append(_NO_BODY)  # fields never change once built: one for every empty response
    return response


_NO_BODY = HeaderField("Content-Length", "0", None, 0)
_COPIED = frozenset({"via", "from", "call-id", "cseq"})  # the To is copied too, with a tag added


def ack_for(request: Request, response: Response) -> Request:
    """The ACK a client transaction sends for a non-2xx final response (RFC 3261 §17.1.1.3): the request's
    Request-URI, Call-ID, From, CSeq number and top Via, the response's To, and the request's Route."""
    fields: list[HeaderField] = []
    top = request.via[0]
    fields.append(HeaderField("Via", top.render(), None, [top]))
    for key in ("max-forwards", "from", "call-id"):
        fields.extend(request.get_fields(key))
    fields.extend(response.get_fields("To"))
    cseq = request.cseq
    assert cseq is not None
    fields.append(HeaderField("CSeq", f"{cseq.seq} ACK"))
    fields.extend(request.get_fields("Route"))
    fields.append(HeaderField("Content-Length", "0"))
    return Request("ACK", request.uri, fields, b"", request.version)
