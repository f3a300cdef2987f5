"""SIP requests and responses: framing, the hot-path parser, and the serializer (RFC 3261 §7).

* Octets are decoded as ISO-8859-1, so one character is one octet and the ABNF's %x ranges (UTF-8 lead and
  continuation bytes included) apply unchanged; see spec/rulings.md.
* Header lines are unfolded (§7.3.1: CRLF followed by SP/HTAB is LWS) and trailing whitespace is removed.
* The core headers (Via, From, To, Call-ID, CSeq, Max-Forwards, Contact, Content-Length, Route,
  Record-Route, Expires) are validated by ``parse``; every other header is validated on first access.
* A header nobody changed is serialised from the octets received, folding included (a proxy passes
  unknown headers through byte for byte); a changed or added header is rendered from its value.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sipactors.message.errors import ParseError, Refusal
from sipactors.message.fields import CSeq, NameAddr, Via
from sipactors.message.headers import canonical_name, parse_uri, parse_value, spec_for, validate_extension
from sipactors.message.syntax import syntax
from sipactors.message.uri import URI

#: Validated by ``parse`` before a message is handed on (issue 2, DESIGN §2).
CORE_HEADERS = (
    "via", "from", "to", "call-id", "cseq", "max-forwards", "contact",
    "content-length", "route", "record-route", "expires",
)

_UNSET: Any = object()


class HeaderField:
    """One header line: its name as written, its unfolded value, its original octets, its parsed value."""

    __slots__ = ("name", "key", "value", "raw", "_parsed")

    def __init__(self, name: str, value: str, raw: bytes | None = None, parsed: Any = _UNSET) -> None:
        self.name = name
        spec = spec_for(name)
        self.key = spec.name.lower() if spec is not None else canonical_name(name).lower()
        self.value = value
        self.raw = raw
        self._parsed = parsed

    @property
    def parsed(self) -> Any:
        """The value parsed by the header's grammar rule (validated on first access)."""
        parsed = self._parsed
        if parsed is _UNSET:
            spec = spec_for(self.name)
            if spec is None:
                validate_extension(self.name, self.value)
                parsed = self.value
            else:
                parsed = parse_value(spec, self.value)
            self._parsed = parsed
        return parsed

    def render(self) -> bytes:
        if self.raw is not None:
            return self.raw
        return f"{canonical_name(self.name)}: {self.value}".encode("latin-1")

    def __repr__(self) -> str:
        return f"HeaderField({self.name!r}, {self.value!r})"


class Message:
    """What requests and responses share: version, header fields in order, body."""

    __slots__ = ("version", "fields", "body", "_index", "start_raw", "refusal")

    def __init__(self, version: str, fields: list[HeaderField], body: bytes, start_raw: bytes | None) -> None:
        self.version = version
        self.fields = fields
        self.body = body
        self.start_raw = start_raw
        self.refusal: Refusal | None = None
        self._index: dict[str, list[HeaderField]] | None = None

    # -- header access ------------------------------------------------------------------------------
    def _fields_by_key(self) -> dict[str, list[HeaderField]]:
        index = self._index
        if index is None:
            index = {}
            for field in self.fields:
                index.setdefault(field.key, []).append(field)
            self._index = index
        return index

    def get_fields(self, name: str) -> list[HeaderField]:
        spec = spec_for(name)
        key = spec.name.lower() if spec is not None else canonical_name(name).lower()
        return self._fields_by_key().get(key, [])

    def has(self, name: str) -> bool:
        return bool(self.get_fields(name))

    def header(self, name: str) -> Any:
        """Parsed value of a header: a list for comma-list headers (all lines), the first line's otherwise."""
        fields = self.get_fields(name)
        spec = spec_for(name)
        if spec is not None and spec.is_list:
            values: list[Any] = []
            for field in fields:
                parsed = field.parsed
                if isinstance(parsed, str):  # Contact: *
                    return parsed
                values.extend(parsed)
            return values
        return fields[0].parsed if fields else None

    def header_text(self, name: str) -> str | None:
        """Raw (unfolded) text of the first line of a header, or None."""
        fields = self.get_fields(name)
        return fields[0].value if fields else None

    def set_header(self, name: str, value: Any) -> None:
        """Replace every line of ``name`` by one line rendering ``value`` (a parsed value or text)."""
        self.remove_header(name)
        self.add_header(name, value)

    def add_header(self, name: str, value: Any, *, first: bool = False) -> None:
        text = _render_value(value)
        field = HeaderField(canonical_name(name), text, None, value if not isinstance(value, str) else _UNSET)
        position = 0 if first else len(self.fields)
        if first:
            for index, existing in enumerate(self.fields):
                if existing.key == field.key:
                    position = index
                    break
        self.fields.insert(position, field)
        self._index = None

    def remove_header(self, name: str) -> None:
        key = (spec_for(name).name if spec_for(name) else canonical_name(name)).lower()
        self.fields = [field for field in self.fields if field.key != key]
        self._index = None

    def validate_all(self) -> None:
        """Validate every header field (parse validates only the core ones)."""
        for field in self.fields:
            field.parsed  # noqa: B018 - parsing is the validation

    # -- core headers -------------------------------------------------------------------------------
    @property
    def via(self) -> list[Via]:
        return self.header("Via")

    @property
    def from_(self) -> NameAddr | None:
        return self.header("From")

    @property
    def to(self) -> NameAddr | None:
        return self.header("To")

    @property
    def call_id(self) -> str | None:
        return self.header("Call-ID")

    @property
    def cseq(self) -> CSeq | None:
        return self.header("CSeq")

    @property
    def max_forwards(self) -> int | None:
        return self.header("Max-Forwards")

    @property
    def contact(self) -> list[NameAddr] | str:
        return self.header("Contact")

    @property
    def route(self) -> list[NameAddr]:
        return self.header("Route")

    @property
    def record_route(self) -> list[NameAddr]:
        return self.header("Record-Route")

    @property
    def content_length(self) -> int | None:
        return self.header("Content-Length")

    @property
    def expires(self) -> int | None:
        return self.header("Expires")

    # -- serialisation ------------------------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self, *, canonical: bool = False) -> bytes:
        """The message as octets. ``canonical`` renders every header from its parsed value."""
        lines = [self.start_raw if self.start_raw is not None and not canonical else self.start_line().encode("latin-1")]
        for field in self.fields:
            if canonical:
                parsed = field.parsed
                text = field.value if isinstance(parsed, str) and spec_for(field.name) is None else _render_value(parsed)
                lines.append(f"{canonical_name(field.name)}: {text}".encode("latin-1"))
            else:
                lines.append(field.render())
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    def fields_view(self) -> list[tuple[str, Any]]:
        """``(canonical name, parsed value)`` of every header line, in order: what equality compares."""
        return [(canonical_name(field.name), field.parsed) for field in self.fields]

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Message) or type(self) is not type(other):
            return NotImplemented
        return (
            self._start_tuple() == other._start_tuple()
            and self.fields_view() == other.fields_view()
            and self.body == other.body
        )

    def __hash__(self) -> int:  # messages are mutable
        raise TypeError("Message is not hashable")

    def _start_tuple(self) -> tuple[Any, ...]:
        raise NotImplementedError


class Request(Message):
    __slots__ = ("method", "uri")

    def __init__(
        self,
        method: str,
        uri: URI,
        fields: list[HeaderField] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
        start_raw: bytes | None = None,
    ) -> None:
        super().__init__(version, fields if fields is not None else [], body, start_raw)
        self.method = method
        self.uri = uri

    def start_line(self) -> str:
        return f"{self.method} {self.uri.render()} {self.version}"

    def _start_tuple(self) -> tuple[Any, ...]:
        return (self.method, self.uri, self.version.upper())

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri}>"


class Response(Message):
    __slots__ = ("status", "reason")

    def __init__(
        self,
        status: int,
        reason: str,
        fields: list[HeaderField] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
        start_raw: bytes | None = None,
    ) -> None:
        super().__init__(version, fields if fields is not None else [], body, start_raw)
        self.status = status
        self.reason = reason

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def _start_tuple(self) -> tuple[Any, ...]:
        return (self.version.upper(), self.status, self.reason)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_render_value(item) for item in value)
    return value.render()


# -------------------------------------------------------------------------------------------- framing
@dataclass(frozen=True, slots=True)
class Head:
    """The unfolded head of a message: start line and ``(name, value, raw line octets)`` per header."""

    start: str
    start_raw: bytes
    headers: list[tuple[str, str, bytes, str]]  # name, value, raw octets, unfolded line
    body_offset: int


def split_head(data: bytes, stream: bool = False) -> Head:
    """Split the head of a message (RFC 3261 §7: start-line, header lines, empty line)."""
    if not data:
        raise ParseError("empty message")
    start = 0
    # RFC 3261 §7.5: CRLFs before the start-line are ignored.
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    body_offset = end + 4
    if end < 0:
        if b"\r\n" not in data and b"\n" in data:
            raise ParseError("lines must end with CRLF")
        if stream or not data.endswith(b"\r\n"):
            raise ParseError("no empty line ends the header section")
        # A datagram whose last header line ends the datagram: the empty line is implied (rulings.md).
        end = len(data) - 2
        body_offset = len(data)
    lines = data[start:end].split(b"\r\n")
    start_raw = lines[0]
    headers: list[tuple[str, str, bytes, str]] = []
    current: list[bytes] | None = None
    for line in lines[1:]:
        if line[:1] in (b" ", b"\t"):
            if current is None:
                raise ParseError("continuation line before the first header", line=line.decode("latin-1"))
            current.append(line)
            continue
        if current is not None:
            headers.append(_header_line(current))
        current = [line]
    if current is not None:
        headers.append(_header_line(current))
    if b"\n" in start_raw or b"\r" in start_raw:
        raise ParseError("bare CR or LF in the start line")
    return Head(start_raw.decode("latin-1"), start_raw, headers, body_offset)


def _header_line(pieces: list[bytes]) -> tuple[str, str, bytes, str]:
    raw = b"\r\n".join(pieces)
    if len(pieces) == 1:
        text = pieces[0].decode("latin-1")
    else:
        # §7.3.1: the folding LWS (whitespace, CRLF, whitespace) counts as one SP.
        text = pieces[0].decode("latin-1").rstrip(" \t")
        for piece in pieces[1:]:
            text += " " + piece.decode("latin-1").strip(" \t")
    text = text.rstrip(" \t")  # trailing whitespace of a header line is not part of its value (rulings.md)
    name, colon, value = text.partition(":")
    if not colon:
        raise ParseError("header line without a colon", line=text[:80], rule="message-header")
    name = name.rstrip(" \t")
    if "\r" in text or "\n" in text:
        raise ParseError("bare CR or LF in a header line", header=name[:40] or None, rule="message-header")
    return name, value.strip(" \t"), raw, text


def parse(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one message (one UDP datagram, or a complete framed message from a stream).

    Validates the start line and the core headers; raises ``ParseError`` for any syntax error and sets
    ``message.refusal`` when a server must refuse the message with a specific status (sipactors.message.checks).
    """
    from sipactors.message.checks import refusal_for

    try:
        head = split_head(data, stream)
        message = _build(head, data)
        for key in CORE_HEADERS:
            for field in message._fields_by_key().get(key, ()):
                field.parsed  # noqa: B018 - validation
        _frame_body(message, data, head.body_offset, stream)
    except ParseError:
        raise
    except (ValueError, IndexError, UnicodeError, OverflowError) as error:  # defensive: never leak others
        raise ParseError(f"unparseable message ({type(error).__name__})") from error
    message.refusal = refusal_for(message)
    return message


def _build(head: Head, data: bytes) -> Request | Response:
    sx = syntax()
    header_name = sx.header_name
    fields = []
    for name, value, raw, _line in head.headers:
        if header_name.fullmatch(name) is None:
            raise ParseError("header name is not a token", line=name[:80], rule="header-name")
        fields.append(HeaderField(name, value, raw))
    start = head.start
    if start[:4].upper() == "SIP/":  # a Method is a token, and "/" is no token character
        match = sx.status_line.fullmatch(start)
        if match is None:
            raise ParseError("malformed Status-Line", line=start[:120], rule="Status-Line")
        return Response(
            int(match.group("code")), match.group("reason") or "", fields, b"", match.group("version"),
            head.start_raw,
        )
    match = sx.request_line.fullmatch(start)
    if match is None:
        raise ParseError("malformed Request-Line", line=start[:120], rule="Request-Line")
    uri = parse_uri(match.group("uri"), "Request-URI")
    return Request(match.group("method"), uri, fields, b"", match.group("version"), head.start_raw)


def _frame_body(message: Message, data: bytes, offset: int, stream: bool) -> None:
    """RFC 3261 §18.3 framing: Content-Length, or (datagram only) the rest of the datagram."""
    lengths = message._fields_by_key().get("content-length", [])
    if len(lengths) > 1:
        raise ParseError("more than one Content-Length", header="Content-Length", rule="Content-Length")
    available = len(data) - offset
    if not lengths:
        if stream:
            raise ParseError("missing Content-Length on a stream transport", header="Content-Length")
        message.body = data[offset:]
        return
    length = lengths[0].parsed
    if length > available:
        raise ParseError("Content-Length larger than the message", header="Content-Length", rule="Content-Length")
    # §18.3: octets beyond Content-Length in a datagram are discarded.
    message.body = data[offset : offset + length]


def iter_header_lines(message: Message) -> Iterator[tuple[str, str]]:
    for field in message.fields:
        yield canonical_name(field.name), field.value
