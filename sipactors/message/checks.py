"""Messages that parse but that a server must refuse (RFC 3261 §8.2, §16.3, §20; RFC 4475 §3.1.2, §3.3).

The grammar accepts these; the rules below come from RFC prose. ``refusal_for`` returns the first rule a
message breaks, as the status code and reason phrase a server answers with (for a response: why it is
dropped).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sipactors.message.errors import ParseError, Refusal
from sipactors.message.headers import Deferred
from sipactors.message.uri import SipURI, TelURI

if TYPE_CHECKING:
    from sipactors.message.message import HeaderField, Message

#: Header fields whose grammar is not a comma list: at most one line each (RFC 3261 §7.3.1).
SINGLE_VALUED = ("To", "From", "Call-ID", "CSeq", "Max-Forwards", "Content-Type", "Expires", "Min-Expires")

#: Mandatory in every request (RFC 3261 §8.1.1); Max-Forwards is absent from RFC 2543 requests, which an
#: RFC 3261 element should still accept (RFC 4475 §3.4.1), so it is not required here.
REQUIRED = ("To", "From", "CSeq", "Call-ID", "Via")

CSEQ_LIMIT = 2**31  # RFC 3261 §8.1.1.5: "MUST be less than 2**31"
DELTA_LIMIT = 2**32 - 1  # RFC 3261 §20.19, §20.10: expires is 0 .. 2**32-1
MAX_FORWARDS_LIMIT = 255  # RFC 3261 §20.22: "an integer in the range 0-255"


#: The same, as the message index's keys.
_REQUIRED_KEYS = tuple((name, name.lower()) for name in REQUIRED)
_SINGLE_KEYS = tuple((name, name.lower()) for name in SINGLE_VALUED)
_REQUIRED_SET = frozenset(key for _, key in _REQUIRED_KEYS)


def _first_parsed(index: dict[str, list[HeaderField]], key: str) -> Any:
    # parse() has parsed every core header already: read the value without the accessor's list copy (only
    # Via, From, To, Contact, Route and Record-Route may hold a Deferred value, rulings R22, and they are not
    # read through here)
    fields = index.get(key)
    return fields[0]._parsed if fields else None


def refusal_for(message: Message) -> Refusal | None:
    """The first rule ``message`` breaks, or None. For a message from ``parse``, whose core header fields
    are parsed already."""
    version = message.version
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":  # as written, almost always
        return Refusal(505, "Version Not Supported", "RFC 3261 §8.2.2.1, §21.5.6")
    is_request = message.is_request
    if is_request and not isinstance(message.uri, (SipURI, TelURI)):  # type: ignore[attr-defined]
        return Refusal(416, "Unsupported URI Scheme", "RFC 3261 §8.2.2.1")
    index = message._fields_by_key()
    if not _REQUIRED_SET <= index.keys():
        for name, key in _REQUIRED_KEYS:
            if key not in index:
                return Refusal(400, f"Missing {name} header field", "RFC 3261 §8.1.1")
    if len(index) != len(message.fields):  # some header appears on more than one line
        for name, key in _SINGLE_KEYS:
            fields = index.get(key)
            if fields is not None and len(fields) > 1:
                return Refusal(400, f"Multiple {name} header fields", "RFC 3261 §7.3.1")
    first = _first_parsed
    for field in index["via"]:
        if not field._parsed:  # a Deferred Via (rulings R22) is one via-parm: never empty
            return Refusal(400, "Missing Via header field", "RFC 3261 §8.1.1.7")
    cseq = first(index, "cseq")
    if cseq.seq >= CSEQ_LIMIT:
        return Refusal(400, "CSeq sequence number too large", "RFC 3261 §8.1.1.5")
    if is_request and cseq.method != message.method:  # type: ignore[attr-defined]
        return Refusal(400, "CSeq method does not match the request method", "RFC 3261 §8.1.1.5")
    max_forwards = first(index, "max-forwards")
    if max_forwards is not None and max_forwards > MAX_FORWARDS_LIMIT:
        return Refusal(400, "Max-Forwards above 255", "RFC 3261 §20.22")
    expires = first(index, "expires")
    if expires is not None and expires > DELTA_LIMIT:
        return Refusal(400, "Expires above 2**32-1", "RFC 3261 §20.19")
    for field in index.get("contact", ()):
        contacts = field._parsed
        if type(contacts) is Deferred:
            # read through a line template (rulings R22): its parameters are the template's but for the
            # holes' texts, and no hole is an expires (a hole is a user, a tag or a branch)
            contacts = contacts.template.value
        if isinstance(contacts, list):
            for contact in contacts:
                if contact.params:  # the grammar made expires a delta-seconds (1*DIGIT), if present
                    value = contact.params.get("expires")
                    if value is not None and int(value) > DELTA_LIMIT:
                        return Refusal(400, "Contact expires above 2**32-1", "RFC 3261 §20.10")
    if not is_request and not 100 <= message.status <= 699:  # type: ignore[attr-defined]
        return Refusal(400, "Status-Code outside 100-699", "RFC 3261 §7.2, §21")
    return None


__all__ = ["refusal_for", "Refusal", "ParseError"]
