"""Resource List Meta-Information and the multipart/related body of a list NOTIFY (RFC 4662 §5, RFC 2387).

A NOTIFY of a list subscription carries ``multipart/related`` (RFC 2387) whose root part, named by the
``start`` parameter, is an RLMI document (``application/rlmi+xml``, RFC 4662 §5.1): the list's URI, a
``version`` that is 0 in the subscription's first NOTIFY and one more in each later one (§5.2), whether the
document is ``fullState`` (every resource) or names only some, and per resource its ``<instance>`` elements,
one per virtual subscription, whose ``cid`` names the part holding that resource's state (§5.5). Every part
carries ``Content-Transfer-Encoding: binary``, a ``Content-ID`` and a ``Content-Type`` (RFC 4662 §6 step 3).

This module is pure: it renders documents and bodies from values and parses them back (the parser serves the
tests and any list subscriber written later; it reads with the standard library's XML parser, which expands
no external entity). Identifiers (Content-IDs, boundaries) are arguments, never drawn at random here.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field

from sipactors.message import unquote
from sipactors.message.headers import parse_header_params
from sipactors.message.params import quote

__all__ = [
    "RLMI_NS", "RLMI_TYPE", "RELATED_TYPE", "Instance", "Name", "Part", "Resource", "Rlmi", "parse_related",
    "parse_rlmi", "related_content_type", "render_related", "render_rlmi",
]

RLMI_NS = "urn:ietf:params:xml:ns:rlmi"  # RFC 4662 §8.3
RLMI_TYPE = "application/rlmi+xml"  # RFC 4662 §8.2
RELATED_TYPE = "multipart/related"  # RFC 2387 §3
_XML_NS = "http://www.w3.org/XML/1998/namespace"  # xml:lang (RFC 4662 §5.4)
_STATES = ("active", "pending", "terminated")  # RFC 4662 §5.5, as Subscription-State (RFC 6665 §4.1.3)
_MAX_VERSION = 2**32 - 1  # RFC 4662 §5.2: xs:unsignedInt
# XML 1.0 §2.2 Char: what a document may hold at all (anything else cannot be written, escaped or not)
_NOT_XML_CHAR = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
# RFC 2046 §5.1.1: bchars, at most 70, not ending in a space
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


@dataclass(frozen=True, slots=True)
class Name:
    """A human-readable name of a list or resource, optionally in a language (RFC 4662 §5.4)."""

    text: str
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class Instance:
    """One virtual subscription to a resource (RFC 4662 §5.5): ``reason`` MUST be present when ``state`` is
    terminated, ``cid`` (the Content-ID of the part with the resource's state) MUST be when it is active."""

    id: str
    state: str
    reason: str | None = None
    cid: str | None = None

    def __post_init__(self) -> None:
        if self.state not in _STATES:
            raise ValueError(f"instance state {self.state!r}: active, pending or terminated (RFC 4662 §5.5)")
        if self.state == "terminated" and not self.reason:
            raise ValueError("a terminated instance needs a reason (RFC 4662 §5.5)")
        if self.state == "active" and not self.cid:
            raise ValueError("an active instance needs a cid (RFC 4662 §5.5)")


@dataclass(frozen=True, slots=True)
class Resource:
    """One ``<resource>`` (RFC 4662 §5.3): its URI, names and instances (none: its state is not known yet)."""

    uri: str
    names: tuple[Name, ...] = ()
    instances: tuple[Instance, ...] = ()


@dataclass(frozen=True, slots=True)
class Rlmi:
    """An RLMI document: the ``<list>`` element (RFC 4662 §5.1, §5.2)."""

    uri: str
    version: int
    full_state: bool
    names: tuple[Name, ...] = ()
    resources: tuple[Resource, ...] = ()
    cid: str | None = None  # aggregate state of the list, per package (§5.2); unused by presence

    def __post_init__(self) -> None:
        if not 0 <= self.version <= _MAX_VERSION:
            raise ValueError(f"RLMI version {self.version} outside 0..2^32-1 (RFC 4662 §5.2)")


@dataclass(frozen=True, slots=True)
class Part:
    """One body part of multipart/related: its Content-ID (without angle brackets), type and octets."""

    content_id: str
    content_type: str
    data: bytes = field(repr=False)


# --- RLMI documents ---------------------------------------------------------------------------------------


def _text(value: str) -> str:
    if _NOT_XML_CHAR.search(value):
        raise ValueError(f"{value!r} holds a character XML cannot carry")
    # \r would be read back as \n (XML 1.0 §2.11): a character reference keeps it
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")


def _attr(value: str) -> str:
    # attribute-value normalisation (XML 1.0 §3.3.3) turns raw whitespace into spaces: references keep it
    return (_text(value).replace('"', "&quot;").replace("\t", "&#9;").replace("\n", "&#10;"))


def _names(names: Sequence[Name], indent: str) -> list[str]:
    lines = []
    for name in names:
        lang = f' xml:lang="{_attr(name.lang)}"' if name.lang is not None else ""
        lines.append(f"{indent}<name{lang}>{_text(name.text)}</name>")
    return lines


def render_rlmi(document: Rlmi) -> bytes:
    """The document as UTF-8 XML (RFC 4662 §5.1)."""
    cid = f' cid="{_attr(document.cid)}"' if document.cid is not None else ""
    lines = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        f'<list xmlns="{RLMI_NS}" uri="{_attr(document.uri)}" version="{document.version}" '
        f'fullState="{"true" if document.full_state else "false"}"{cid}>',
        *_names(document.names, "  "),
    ]
    for resource in document.resources:
        lines.append(f'  <resource uri="{_attr(resource.uri)}">')
        lines.extend(_names(resource.names, "    "))
        for instance in resource.instances:
            extra = "".join(
                f' {attribute}="{_attr(value)}"'
                for attribute, value in (("reason", instance.reason), ("cid", instance.cid)) if value is not None
            )
            lines.append(f'    <instance id="{_attr(instance.id)}" state="{instance.state}"{extra}/>')
        lines.append("  </resource>")
    lines.append("</list>")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _parsed_names(element: ET.Element) -> tuple[Name, ...]:
    return tuple(
        Name(name.text or "", name.get(f"{{{_XML_NS}}}lang")) for name in element.findall(f"{{{RLMI_NS}}}name")
    )


def _required(element: ET.Element, attribute: str) -> str:
    value = element.get(attribute)
    if value is None:
        raise ValueError(f"<{element.tag.rpartition('}')[2]}> without its {attribute} attribute (RFC 4662 §5.1)")
    return value


def parse_rlmi(data: bytes) -> Rlmi:
    """An RLMI document read back; ``ValueError`` if it is not one (RFC 4662 §5.1: uri, version and fullState
    are required; fullState is an xs:boolean, so "1" and "0" count as well)."""
    try:
        root = ET.fromstring(data)
    except ET.ParseError as error:
        raise ValueError(f"not XML: {error}") from None
    if root.tag != f"{{{RLMI_NS}}}list":
        raise ValueError(f"root element {root.tag!r} is not {{{RLMI_NS}}}list")
    full = _required(root, "fullState")
    if full not in ("true", "false", "1", "0"):
        raise ValueError(f"fullState={full!r} is not an xs:boolean")
    version = _required(root, "version")
    if not version.isdigit():
        raise ValueError(f"version={version!r} is not an xs:unsignedInt")
    resources = tuple(
        Resource(
            _required(resource, "uri"),
            _parsed_names(resource),
            tuple(
                Instance(_required(instance, "id"), _required(instance, "state"), instance.get("reason"),
                         instance.get("cid"))
                for instance in resource.findall(f"{{{RLMI_NS}}}instance")
            ),
        )
        for resource in root.findall(f"{{{RLMI_NS}}}resource")
    )
    return Rlmi(_required(root, "uri"), int(version), full in ("true", "1"), _parsed_names(root), resources,
                root.get("cid"))


# --- multipart/related ------------------------------------------------------------------------------------


def related_content_type(start: str, boundary: str) -> str:
    """The Content-Type of a list NOTIFY (RFC 4662 §5, RFC 2387 §3.1-3.2: ``type`` is the root's type,
    ``start`` its Content-ID in angle brackets)."""
    return f'{RELATED_TYPE};type="{RLMI_TYPE}";start="<{start}>";boundary={quote(boundary)}'


def render_related(parts: Sequence[Part], boundary: str) -> tuple[str, bytes]:
    """``(content type, body)`` of a multipart/related whose root is ``parts[0]`` (RFC 2387 §3.2: the
    ``start`` parameter names it). ``ValueError`` if ``boundary`` is not an RFC 2046 §5.1.1 boundary or
    occurs in a part (the sender must choose one that does not)."""
    if not parts:
        raise ValueError("multipart/related needs at least its root part (RFC 2387 §3.1)")
    if not _BOUNDARY.fullmatch(boundary):
        raise ValueError(f"boundary {boundary!r} is not 1-70 bchars (RFC 2046 §5.1.1)")
    delimiter = b"--" + boundary.encode("ascii")
    chunks: list[bytes] = []
    for part in parts:
        if delimiter in part.data:
            raise ValueError(f"the boundary occurs in part <{part.content_id}> (RFC 2046 §5.1.1)")
        if any(c in part.content_id + part.content_type for c in "\r\n<>"):
            raise ValueError(f"part <{part.content_id}>: a header value may not break lines or hold < >")
        chunks.append(
            delimiter + b"\r\nContent-Transfer-Encoding: binary\r\n"
            + f"Content-ID: <{part.content_id}>\r\nContent-Type: {part.content_type}\r\n\r\n".encode()
            + part.data + b"\r\n"
        )
    return related_content_type(parts[0].content_id, boundary), b"".join(chunks) + delimiter + b"--\r\n"


def _media_params(content_type: str) -> tuple[str, dict[str, str]]:
    mime, semicolon, rest = content_type.partition(";")
    if not semicolon:
        return mime.strip().lower(), {}
    params = parse_header_params(semicolon + rest, "Content-Type")
    return mime.strip().lower(), {name.lower(): unquote(value) or "" for name, value in params}


def parse_related(content_type: str, data: bytes) -> list[Part]:
    """The parts of a multipart/related body, the root (named by ``start``, else the first) first; each part's
    Content-ID without its angle brackets. ``ValueError`` if the body is not such a multipart."""
    mime, params = _media_params(content_type)
    if mime != RELATED_TYPE or "boundary" not in params:
        raise ValueError(f"{content_type!r} is not multipart/related with a boundary")
    delimiter = b"--" + params["boundary"].encode("ascii")
    # RFC 2046 §5.1.1: the CRLF before a delimiter belongs to it; the first may open the body
    body = b"\r\n" + data
    _, found, rest = body.partition(b"\r\n" + delimiter)
    if not found:
        raise ValueError("no boundary delimiter in the body")
    sections = rest.split(b"\r\n" + delimiter)
    if not sections[-1].startswith(b"--"):
        raise ValueError("no close delimiter (RFC 2046 §5.1.1)")
    parts = []
    for section in sections[:-1]:
        _, _, section = section.partition(b"\r\n")  # transport padding after the delimiter line
        header_block, blank, payload = section.partition(b"\r\n\r\n")
        if not blank:
            header_block, payload = section.removesuffix(b"\r\n"), b""
        headers: dict[str, str] = {}
        for line in re.sub(rb"\r\n[ \t]+", b" ", header_block).split(b"\r\n"):
            if line:
                name, colon, value = line.decode("utf-8").partition(":")
                if not colon:
                    raise ValueError(f"malformed part header {line!r}")
                headers[name.strip().lower()] = value.strip()
        parts.append(Part(headers.get("content-id", "").strip("<>"), headers.get("content-type", "text/plain"), payload))
    start = params.get("start", "").strip("<>")
    root = next((part for part in parts if start and part.content_id == start), parts[0] if parts else None)
    if root is None:
        raise ValueError("multipart/related without parts")
    return [root, *(part for part in parts if part is not root)]
