"""The Presence Information Data Format, ``application/pidf+xml`` (RFC 3863): parse, validate, generate.

A PIDF document is a ``<presence entity="...">`` of the namespace ``urn:ietf:params:xml:ns:pidf`` holding
``<tuple>`` elements, then ``<note>`` elements, then extension elements of other namespaces (RFC 3863
§4.1.1); a tuple holds ``<status>`` (``<basic>`` open|closed and/or extensions), extensions, an optional
``<contact priority="q">``, notes and an optional ``<timestamp>`` (§4.1.2-§4.1.7, the schema of §4.4).

Rules of the module:

1. **No entity expansion.** A document that declares a DOCTYPE or an ENTITY is refused before any XML parser
   sees it (RFC 3863 §6 leaves security to the carrier; an internal entity is the "billion laughs" attack).
2. **The model is frozen dataclasses**; an extension element (RPID, RFC 4480; the data model of RFC 4479;
   anything of another namespace, §4.2) is kept as its serialised XML, so it travels through a presence
   server unchanged (§4.2.3: a processor ignores what it does not recognise, it does not drop it from what
   it relays).
3. **A refusal names its problem**: :class:`PidfError`'s message is short, printable and safe as a SIP
   reason phrase (RFC 3261 §25.1 Reason-Phrase), because a PUBLISH with a bad body gets ``400`` with it.
4. ``parse(generate(model)) == model`` and ``generate(parse(x))`` has the model of ``x`` (the tests prove
   both with Hypothesis).

Where the RFC leaves a choice: extension elements are accepted wherever the schema allows ``##other``
and also between the PIDF elements after ``<status>`` (devices put them after ``<contact>``); they are
generated where the schema puts them. A ``priority`` that is not a qvalue in [0, 1] is dropped, as §4.1.5
says to treat it ("as if the attribute was not present"). An extension element must be namespace-qualified
(XML Schema's ``##other`` excludes unqualified names).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

__all__ = [
    "CONTENT_TYPE", "NS", "Contact", "Note", "PidfError", "Presence", "Status", "Tuple", "generate", "parse",
]

#: The media type (RFC 3863 §5.1) and the namespace (§4.1.1).
CONTENT_TYPE = "application/pidf+xml"
NS = "urn:ietf:params:xml:ns:pidf"
_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
_Q = "{" + NS + "}"

#: §4.1.5 / §4.4 qvalue: "a decimal number between 0 and 1 inclusive with at most 3 digits after the point".
_QVALUE = re.compile(r"0(\.[0-9]{0,3})?|1(\.0{0,3})?")
#: §4.1.7: RFC 3339 date-time, 'T' and 'Z' capitalised.
_DATETIME = re.compile(
    r"[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)"
    r"(\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])"
)
#: An absolute URI (RFC 3986 §3: a scheme and a colon), for ``entity`` and ``<contact>``.
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*:\S+")
#: Declarations that would make the parser expand entities (rule 1).
_DECLARATIONS = re.compile(rb"<!\s*(DOCTYPE|ENTITY)", re.IGNORECASE)
#: What a reason phrase may carry of a name taken from the document (rule 3).
_UNSAFE = re.compile(r"[^A-Za-z0-9 ._:\-]")


class PidfError(ValueError):
    """The document is not valid PIDF; ``str(error)`` names the problem (a reason phrase)."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"Bad PIDF: {problem}")


@dataclass(frozen=True, slots=True)
class Note:
    """A ``<note>`` (§4.1.6): human-readable text, with its ``xml:lang``."""

    text: str
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class Contact:
    """A ``<contact>`` (§4.1.5): the contact address URI and its ``priority`` qvalue as written."""

    uri: str
    priority: str | None = None


@dataclass(frozen=True, slots=True)
class Status:
    """A ``<status>`` (§4.1.3): ``basic`` "open", "closed" or None, and extension status values (raw XML);
    at least one of the two."""

    basic: str | None = None
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tuple:
    """A ``<tuple>`` (§4.1.2): one segment of a presentity's presence information."""

    id: str
    status: Status
    contact: Contact | None = None
    notes: tuple[Note, ...] = ()
    timestamp: str | None = None
    extensions: tuple[str, ...] = ()  # elements of other namespaces in the tuple (raw XML)


@dataclass(frozen=True, slots=True)
class Presence:
    """A ``<presence>`` document (§4.1.1): the presentity's URI, its tuples, notes and extensions."""

    entity: str
    tuples: tuple[Tuple, ...] = ()
    notes: tuple[Note, ...] = ()
    extensions: tuple[str, ...] = ()  # elements of other namespaces (RFC 4479 <person>, <device>, ...)

    def tuple(self, tuple_id: str) -> Tuple | None:
        return next((t for t in self.tuples if t.id == tuple_id), None)


# ----------------------------------------------------------------------------------------------- parse
def _safe(name: str) -> str:
    return _UNSAFE.sub("?", name)[:40]


def _local(tag: str) -> tuple[str | None, str]:
    """(namespace, local name) of an ElementTree tag."""
    if tag.startswith("{"):
        namespace, _, local = tag[1:].partition("}")
        return namespace, local
    return None, tag


def _raw(element: ET.Element) -> str:
    """An extension element as XML text, without the text that follows it (rule 2)."""
    for inner in element.iter():
        namespace, local = _local(inner.tag) if isinstance(inner.tag, str) else (NS, "")
        if namespace is None:
            raise PidfError(f"Unqualified Element {_safe(local)}")
    tail, element.tail = element.tail, None
    try:
        return ET.tostring(element, encoding="unicode")
    finally:
        element.tail = tail


def _text(element: ET.Element) -> str:
    return (element.text or "").strip()


def _note(element: ET.Element) -> Note:
    if len(element):
        raise PidfError("note Must Hold Text Only")
    return Note(element.text or "", element.get(_XML_LANG))


def _contact(element: ET.Element) -> Contact:
    uri = _text(element)
    if not _URI.fullmatch(uri):
        raise PidfError("contact Is Not a URI")
    priority = element.get("priority")
    if priority is not None and not _QVALUE.fullmatch(priority.strip()):
        priority = None  # §4.1.5: "process it as if the attribute was not present"
    return Contact(uri, priority.strip() if priority is not None else None)


def _status(element: ET.Element, tuple_id: str) -> Status:
    basic: str | None = None
    extensions: list[str] = []
    for child in element:
        namespace, local = _local(child.tag)
        if namespace == NS:
            if local != "basic" or basic is not None or extensions:
                raise PidfError(f"Unexpected {_safe(local)} In status Of tuple {_safe(tuple_id)}")
            basic = _text(child)
            if basic not in ("open", "closed"):
                raise PidfError("basic Must Be open or closed")
        else:
            extensions.append(_raw(child))
    if basic is None and not extensions:
        raise PidfError(f"Empty status In tuple {_safe(tuple_id)}")  # §4.1.3: at least one child
    return Status(basic, tuple(extensions))


#: The order of a tuple's PIDF children (§4.1.2): status, then contact, notes, timestamp.
_TUPLE_ORDER = {"status": 0, "contact": 1, "note": 2, "timestamp": 3}


def _tuple(element: ET.Element) -> Tuple:
    tuple_id = element.get("id")
    if not tuple_id:
        raise PidfError("tuple Without id")
    status: Status | None = None
    contact: Contact | None = None
    notes: list[Note] = []
    timestamp: str | None = None
    extensions: list[str] = []
    rank = -1
    for child in element:
        namespace, local = _local(child.tag)
        if namespace != NS:
            if status is None:
                raise PidfError(f"status Must Come First In tuple {_safe(tuple_id)}")
            extensions.append(_raw(child))
            continue
        order = _TUPLE_ORDER.get(local)
        if order is None:
            raise PidfError(f"Unknown Element {_safe(local)} In tuple")
        if order < rank or (order == rank and local != "note"):
            raise PidfError(f"{_safe(local)} Out of Order In tuple {_safe(tuple_id)}")
        rank = order
        if local == "status":
            status = _status(child, tuple_id)
        elif local == "contact":
            contact = _contact(child)
        elif local == "note":
            notes.append(_note(child))
        else:
            timestamp = _text(child)
            if not _DATETIME.fullmatch(timestamp):
                raise PidfError("timestamp Is Not an RFC 3339 date-time")
    if status is None:
        raise PidfError(f"tuple {_safe(tuple_id)} Without status")
    return Tuple(tuple_id, status, contact, tuple(notes), timestamp, tuple(extensions))


def parse(data: bytes) -> Presence:
    """The model of a PIDF document; :class:`PidfError` naming the problem if it is not one."""
    if _DECLARATIONS.search(data):
        raise PidfError("DOCTYPE and ENTITY Declarations Refused")
    if not data.lstrip(b"\xef\xbb\xbf").startswith(b"<?xml"):
        raise PidfError("XML Declaration Missing")  # §4.1: "It MUST have the XML declaration"
    try:
        root = ET.fromstring(data)  # noqa: S314 - declarations refused above: no entity can be expanded
    except ET.ParseError as error:
        line, column = error.position
        raise PidfError(f"Not Well-Formed XML at line {line} column {column}") from None
    if root.tag != _Q + "presence":
        raise PidfError("Root Element Is Not presence Of urn:ietf:params:xml:ns:pidf")
    entity = (root.get("entity") or "").strip()
    if not entity:
        raise PidfError("presence Without entity")
    if not _URI.fullmatch(entity):
        raise PidfError("entity Is Not a URI")
    tuples: list[Tuple] = []
    notes: list[Note] = []
    extensions: list[str] = []
    for child in root:
        namespace, local = _local(child.tag)
        if namespace != NS:
            extensions.append(_raw(child))
        elif local == "tuple":
            if notes:
                raise PidfError("tuple After note In presence")
            parsed = _tuple(child)
            if any(t.id == parsed.id for t in tuples):
                raise PidfError(f"Duplicate tuple id {_safe(parsed.id)}")  # §4.1.2: unique
            tuples.append(parsed)
        elif local == "note":
            notes.append(_note(child))
        else:
            raise PidfError(f"Unknown Element {_safe(local)} In presence")
    return Presence(entity, tuple(tuples), tuple(notes), tuple(extensions))


# -------------------------------------------------------------------------------------------- generate
def _element(name: str, text: str, attributes: dict[str, str | None] | None = None) -> str:
    attrs = "".join(f" {key}={quoteattr(value)}" for key, value in (attributes or {}).items() if value is not None)
    return f"<{name}{attrs}>{escape(text)}</{name}>"


def _notes(notes: tuple[Note, ...]) -> list[str]:
    return [_element("note", note.text, {"xml:lang": note.lang}) for note in notes]


def generate(presence: Presence) -> bytes:
    """The PIDF document of ``presence``: UTF-8 with its XML declaration (§4.1), PIDF the default namespace,
    each extension element as it was kept (it declares its own namespaces)."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>', f'<presence xmlns="{NS}" entity={quoteattr(presence.entity)}>']
    for item in presence.tuples:
        out.append(f"<tuple id={quoteattr(item.id)}>")
        basic = [_element("basic", item.status.basic)] if item.status.basic is not None else []
        out.append("<status>" + "".join([*basic, *item.status.extensions]) + "</status>")
        out.extend(item.extensions)
        if item.contact is not None:
            out.append(_element("contact", item.contact.uri, {"priority": item.contact.priority}))
        out.extend(_notes(item.notes))
        if item.timestamp is not None:
            out.append(_element("timestamp", item.timestamp))
        out.append("</tuple>")
    out.extend(_notes(presence.notes))
    out.extend(presence.extensions)
    out.append("</presence>")
    return "\n".join(out).encode("utf-8")
