"""The SIP message layer (RFC 3261 §7, §19, §20, §25): parse, build and serialise requests and responses.

``parse`` is the hot path (regular expressions derived from grammar/sip.lark); ``parse_oracle`` is Lark's
LALR parser over the same grammar, used to judge the hot path.
"""

from sipactors.message.errors import ParseError, Refusal
from sipactors.message.fields import MAGIC_COOKIE, Credentials, CSeq, MediaType, NameAddr, ValueParams, Via
from sipactors.message.headers import canonical_name, parse_uri
from sipactors.message.message import CORE_HEADERS, HeaderField, Message, Request, Response, parse
from sipactors.message.params import Params, quote, unquote
from sipactors.message.uri import URI, AbsoluteURI, SipURI, TelURI, unescape

__all__ = [
    "AbsoluteURI", "CORE_HEADERS", "CSeq", "Credentials", "HeaderField", "MAGIC_COOKIE", "MediaType", "Message",
    "NameAddr", "Params", "ParseError", "Refusal", "Request", "Response", "SipURI", "TelURI", "URI",
    "ValueParams", "Via", "canonical_name", "parse", "parse_oracle", "parse_uri", "prepare", "quote", "unescape",
    "unquote",
]


def prepare(*, freeze_gc: bool = True, gc_threshold: int | None = 50_000, gc_older: int | None = 100) -> None:
    """Build the hot path's patterns now rather than on the first message, for a long-running process.

    With ``freeze_gc`` everything allocated so far (the grammar, hundreds of compiled patterns, the rest of
    the program's start-up) is moved out of the cyclic garbage collector's generations (``gc.freeze``):
    those objects live for the whole run, and traversing them on every collection costs a message parser
    about a sixth of its time. ``gc_threshold`` raises the youngest generation's threshold: a parsed
    message is some sixty small objects freed by reference counting (they hold no cycles), so collecting
    every 700 allocations only burns time. ``gc_older`` raises the middle generation's threshold (how many
    young collections between two of the middle generation) for the same reason: what survives a young
    collection is, in a server, mostly live transactions (tens of thousands, each waiting 32 s for Timer J),
    and the default 10 traverses them all again every 500,000 allocations (measured: 7 µs of a 130 µs
    transaction in benchmarks/actors.py); a cycle that outlives one young collection waits longer to be
    freed. Call it once, after start-up; a server does.
    """
    import gc

    from sipactors.message.syntax import syntax

    syntax()
    parse(
        b"OPTIONS sip:prepare@invalid SIP/2.0\r\nVia: SIP/2.0/UDP invalid;branch=z9hG4bK0\r\n"
        b"To: <sip:prepare@invalid>\r\nFrom: <sip:prepare@invalid>;tag=0\r\nCall-ID: 0\r\n"
        b"CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    if freeze_gc:
        gc.collect()
        gc.freeze()
    young, older, oldest = gc.get_threshold()
    if gc_threshold is not None:
        young = max(gc_threshold, young)
    if gc_older is not None:
        older = max(gc_older, older)
    gc.set_threshold(young, older, oldest)


def parse_oracle(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse with the Lark oracle (slow; for tests and ``sipactors check --oracle``)."""
    from sipactors.message.oracle import parse_oracle as _parse_oracle

    return _parse_oracle(data, stream=stream)
