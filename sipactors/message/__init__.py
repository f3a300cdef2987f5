"""The SIP message layer (RFC 3261 §7, §19, §20, §25): parse, build and serialise requests and responses.

``parse`` is the hot path (regular expressions derived from grammar/sip.lark); ``parse_oracle`` is Lark's
LALR parser over the same grammar, used to judge the hot path.
"""

from sipactors.message.errors import ParseError, Refusal
from sipactors.message.fields import MAGIC_COOKIE, CSeq, Credentials, MediaType, NameAddr, ValueParams, Via
from sipactors.message.headers import canonical_name, parse_uri
from sipactors.message.message import CORE_HEADERS, HeaderField, Message, Request, Response, parse
from sipactors.message.params import Params, quote, unquote
from sipactors.message.uri import URI, AbsoluteURI, SipURI, TelURI, unescape

__all__ = [
    "AbsoluteURI", "CORE_HEADERS", "CSeq", "Credentials", "HeaderField", "MAGIC_COOKIE", "MediaType", "Message",
    "NameAddr", "Params", "ParseError", "Refusal", "Request", "Response", "SipURI", "TelURI", "URI",
    "ValueParams", "Via", "canonical_name", "parse", "parse_oracle", "parse_uri", "quote", "unescape", "unquote",
]


def parse_oracle(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse with the Lark oracle (slow; for tests and ``sipactors check --oracle``)."""
    from sipactors.message.oracle import parse_oracle as _parse_oracle

    return _parse_oracle(data, stream=stream)
