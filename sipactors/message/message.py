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
from typing import Any

from sipactors.message.errors import ParseError, Refusal
from sipactors.message.fields import CSeq, NameAddr, Via
from sipactors.message.headers import (
    Deferred,
    HeaderSpec,
    canonical_name,
    hole_in,
    hole_token,
    parse_uri,
    parse_value,
    parse_with_hole,
    spec_for,
    validate_extension,
)
from sipactors.message.memo import Memo
from sipactors.message.params import Params
from sipactors.message.syntax import Syntax, syntax
from sipactors.message.uri import URI, SipURI

#: Validated by ``parse`` before a message is handed on (issue 2, DESIGN §2).
CORE_HEADERS = (
    "via", "from", "to", "call-id", "cseq", "max-forwards", "contact",
    "content-length", "route", "record-route", "expires",
)

_UNSET: Any = object()


class HeaderField:
    """One header line: its name as written, its unfolded value, its original text, its parsed value.

    ``raw`` is the line as received (ISO-8859-1 text, folds included) and is what goes out again while
    nobody changes the field; ``None`` for a field built locally, which is rendered from its value.

    A field is never changed once built (a message changes by replacing fields), and its parsed value is a
    function of its text, so messages share the fields of lines they have in common: the parser hands out
    the memoised field of a line seen before (rulings R21). A list value is therefore kept privately and
    every access gets a copy.
    """

    __slots__ = ("name", "key", "spec", "value", "raw", "_parsed", "_line")

    def __init__(
        self, name: str, value: str, raw: str | None = None, parsed: Any = _UNSET,
        info: tuple[str, HeaderSpec | None] | None = None,
    ) -> None:
        self.name = name
        self.key, self.spec = info if info is not None else _name_info(name)
        self.value = value
        self.raw = raw
        self._parsed = parsed
        self._line = raw  # the line as it goes out (see ``line``)

    @property
    def parsed(self) -> Any:
        """The value parsed by the header's grammar rule (validated on first access)."""
        parsed = self._parsed
        if parsed is _UNSET:
            spec = self.spec
            if spec is None:
                validate_extension(self.name, self.value)
                parsed = self.value
            else:
                parsed = parse_value(spec, self.value)
            self._parsed = parsed
        elif type(parsed) is Deferred:  # validated already; built now (rulings R22)
            parsed = self._parsed = parsed.build()
        return parsed.copy() if type(parsed) is list else parsed

    def line(self) -> str:
        """The header line as it goes out: as received while nobody changed it, else rendered (once: a
        field never changes, and a built one, such as a response's Content-Length, is often shared)."""
        line = self._line
        if line is None:
            spec = self.spec  # a header with a spec is spelt as its spec spells it (``canonical_name``)
            name = spec.name if spec is not None else canonical_name(self.name)
            line = self._line = f"{name}: {self.value}"
        return line

    def render(self) -> bytes:
        return self.line().encode("latin-1")

    def __repr__(self) -> str:
        return f"HeaderField({self.name!r}, {self.value!r})"


#: name as written -> (index key, spec). Bounded: names come from the network.
_NAME_INFO: dict[str, tuple[str, HeaderSpec | None]] = {}
_NAME_INFO_LIMIT = 4096


#: The same for every name ``_name_info`` was asked about: the names the code looks up or builds fields of
#: (``get_fields("Proxy-Require")``), which need not have passed the header-name rule. Bounded.
_LOOKED_UP: dict[str, tuple[str, HeaderSpec | None]] = {}


def _name_info(name: str) -> tuple[str, HeaderSpec | None]:
    """Index key and spec of a header name. Only names that passed the header-name rule go into
    ``_NAME_INFO`` (by ``_build``): that cache doubles as the set of names already known to be valid."""
    info = _LOOKED_UP.get(name)
    if info is None:
        info = _NAME_INFO.get(name)
        if info is None:
            spec = spec_for(name)
            info = (spec.name.lower() if spec is not None else canonical_name(name).lower(), spec)
        if len(_LOOKED_UP) < _NAME_INFO_LIMIT:
            _LOOKED_UP[name] = info
    return info


class Message:
    """What requests and responses share: version, header fields in order, body."""

    is_request: bool  # a class attribute of Request (True) and Response (False)

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
        if index is None:  # a changed message: indexed again on first access
            index = self._index = _index_of(self.fields)
        return index

    def get_fields(self, name: str) -> list[HeaderField]:
        info = _LOOKED_UP.get(name) or _name_info(name)
        index = self._index
        return (index if index is not None else self._fields_by_key()).get(info[0], [])

    def has(self, name: str) -> bool:
        info = _LOOKED_UP.get(name) or _name_info(name)
        index = self._index  # its lists are never empty: no get_fields, no empty list made for an absent name
        return info[0] in (index if index is not None else self._fields_by_key())

    def header(self, name: str) -> Any:
        """Parsed value of a header: a list for comma-list headers (all lines), the first line's otherwise."""
        key, spec = _LOOKED_UP.get(name) or _name_info(name)
        return self._value(key, spec is not None and spec.is_list)

    def _value(self, key: str, is_list: bool) -> Any:
        index = self._index
        fields = (index if index is not None else self._fields_by_key()).get(key)
        if is_list:
            values: list[Any] = []
            for field in fields or ():
                parsed = field.parsed
                if isinstance(parsed, str):  # Contact: *
                    return parsed
                values.extend(parsed)
            return values
        return fields[0].parsed if fields else None

    def _first(self, key: str) -> Any:
        """``_value(key, False)`` of a core header, without the calls where its value is parsed already
        (every core header but a From or To read through a line template, rulings R22)."""
        index = self._index
        fields = (index if index is not None else self._fields_by_key()).get(key)
        if fields is None:
            return None
        field = fields[0]
        parsed = field._parsed
        return parsed if parsed is not _UNSET and type(parsed) is not Deferred else field.parsed

    def _list(self, key: str) -> Any:
        """``_value(key, True)`` of a core header, without the calls in the usual case: one line, parsed."""
        index = self._index
        fields = (index if index is not None else self._fields_by_key()).get(key)
        if fields is None:
            return []
        if len(fields) == 1:
            parsed = fields[0]._parsed
            if type(parsed) is list:
                return parsed.copy()  # as ``HeaderField.parsed``: the field's own list stays private
        return self._value(key, True)

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
        key = _name_info(name)[0]
        self.fields = [field for field in self.fields if field.key != key]
        self._index = None

    def validate_all(self) -> None:
        """Validate every header field (parse validates only the core ones)."""
        for field in self.fields:
            field.parsed  # noqa: B018 - parsing is the validation

    # -- core headers -------------------------------------------------------------------------------
    @property
    def via(self) -> list[Via]:
        return self._list("via")

    @property
    def top_via(self) -> Via | None:
        """``via[0]`` (the Via a response is routed by, RFC 3261 §18.2.2, and a transaction is matched
        by, §17.2.3), or None, without the list of every via-parm that ``via`` copies together."""
        index = self._index
        for field in (index if index is not None else self._fields_by_key()).get("via", ()):
            parsed = field._parsed
            if type(parsed) is not list:  # not parsed yet, or Deferred (rulings R22)
                field.parsed  # noqa: B018 - parses (or builds) and keeps the list, read without its copy
                parsed = field._parsed
            if parsed:
                return parsed[0]  # type: ignore[no-any-return]
        return None

    @property
    def from_(self) -> NameAddr | None:
        return self._first("from")

    @property
    def to(self) -> NameAddr | None:
        return self._first("to")

    @property
    def call_id(self) -> str | None:
        return self._first("call-id")

    @property
    def cseq(self) -> CSeq | None:
        return self._first("cseq")

    @property
    def max_forwards(self) -> int | None:
        return self._first("max-forwards")

    @property
    def contact(self) -> list[NameAddr] | str:
        return self._list("contact")

    @property
    def route(self) -> list[NameAddr]:
        return self._list("route")

    @property
    def record_route(self) -> list[NameAddr]:
        return self._list("record-route")

    @property
    def content_length(self) -> int | None:
        return self._first("content-length")

    @property
    def expires(self) -> int | None:
        return self._first("expires")

    # -- serialisation ------------------------------------------------------------------------------
    def start_line(self) -> str:
        raise NotImplementedError

    def to_bytes(self, *, canonical: bool = False) -> bytes:
        """The message as octets. ``canonical`` renders every header from its parsed value."""
        if not canonical:
            # Every line as text, encoded once: a field's line is its raw text, or its rendering.
            start = self.start_raw if self.start_raw is not None else self._start_octets()
            if not self.fields:
                return start + b"\r\n\r\n" + self.body
            head = "\r\n".join([field._line if field._line is not None else field.line() for field in self.fields])
            return b"%s\r\n%s\r\n\r\n%s" % (start, head.encode("latin-1"), self.body)
        lines = [self.start_line().encode("latin-1")]
        for field in self.fields:
            parsed = field.parsed
            text = field.value if isinstance(parsed, str) and spec_for(field.name) is None else _render_value(parsed)
            lines.append(f"{canonical_name(field.name)}: {text}".encode("latin-1"))
        return b"\r\n".join(lines) + b"\r\n\r\n" + self.body

    def _start_octets(self) -> bytes:
        return self.start_line().encode("latin-1")

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
    is_request = True

    def __init__(
        self,
        method: str,
        uri: URI,
        fields: list[HeaderField] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
        start_raw: bytes | None = None,
    ) -> None:
        Message.__init__(self, version, fields if fields is not None else [], body, start_raw)  # not super(): hot
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
    is_request = False

    def __init__(
        self,
        status: int,
        reason: str,
        fields: list[HeaderField] | None = None,
        body: bytes = b"",
        version: str = "SIP/2.0",
        start_raw: bytes | None = None,
    ) -> None:
        Message.__init__(self, version, fields if fields is not None else [], body, start_raw)  # not super(): hot
        self.status = status
        self.reason = reason

    def start_line(self) -> str:
        return f"{self.version} {self.status} {self.reason}"

    def _start_octets(self) -> bytes:
        # A server sends a few status lines over and over: each is encoded once (bounded: the TU may
        # word reasons of its own)
        key = (self.version, self.status, self.reason)
        octets = _STATUS_LINES.get(key)
        if octets is None:
            octets = self.start_line().encode("latin-1")
            if len(_STATUS_LINES) < 1024:
                _STATUS_LINES[key] = octets
        return octets

    def _start_tuple(self) -> tuple[Any, ...]:
        return (self.version.upper(), self.status, self.reason)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason}>"


_STATUS_LINES: dict[tuple[str, int, str], bytes] = {}


def _render_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join([_render_value(item) for item in value])
    return value.render()


# -------------------------------------------------------------------------------------------- framing
class Head:
    """The head of a message: the start line, and per header ``(name, value, raw line)``.

    ``raw`` is the line as received (ISO-8859-1 text, folds kept); ``value`` is unfolded and trimmed. In the
    common case (no folded line) only the lines are kept and the hot path splits them itself; ``headers``
    splits them on demand for everyone else.
    """

    __slots__ = ("start", "start_raw", "lines", "_headers", "body_offset")

    def __init__(
        self, start: str, start_raw: bytes, lines: list[str] | None, headers: list[tuple[str, str, str]] | None,
        body_offset: int,
    ) -> None:
        self.start = start
        self.start_raw = start_raw
        self.lines = lines  # header lines, when none is folded
        self._headers = headers
        self.body_offset = body_offset

    @property
    def headers(self) -> list[tuple[str, str, str]]:
        headers = self._headers
        if headers is None:
            headers = self._headers = [_plain_line(line) for line in self.lines or ()]
        return headers


def _plain_line(line: str) -> tuple[str, str, str]:
    name, colon, value = line.partition(":")
    if not colon:
        raise ParseError("header line without a colon", line=line[:80], rule="message-header")
    return name.rstrip(" \t"), value.strip(" \t"), line


def split_head(data: bytes, stream: bool = False) -> Head:
    """Split the head of a message (RFC 3261 §7: start-line, header lines, empty line).

    The head is decoded once as ISO-8859-1 (one character per octet, rulings R13); a header line keeps its
    original text (``raw``, folds included) for byte-for-byte pass-through, and its unfolded value.
    """
    if not data:
        raise ParseError("empty message")
    start = 0
    # RFC 3261 §7.5: CRLFs before the start-line are ignored.
    if data.startswith(b"\r\n"):
        while data.startswith(b"\r\n", start):
            start += 2
    end = data.find(b"\r\n\r\n", start)
    body_offset = end + 4
    if end < 0:
        if b"\r\n" not in data and b"\n" in data:
            raise ParseError("lines must end with CRLF")
        if stream or not data.endswith(b"\r\n"):
            raise ParseError("no empty line ends the header section")
        # A datagram whose last header line ends the datagram: the empty line is implied (rulings R9).
        end = len(data) - 2
        body_offset = len(data)
    # max(): the CRLFs ignored may overlap the implied empty line (b"\r\n\r\n"); the compiled build's bytes
    # slice does not clamp an end before the start as Python's does (mypyc: SystemError).
    text = data[start : max(start, end)].decode("latin-1")
    lines = text.split("\r\n")
    start_line = lines[0]
    breaks = len(lines) - 1
    if text.count("\r") == breaks and text.count("\n") == breaks and "\r\n " not in text and "\r\n\t" not in text:
        # no bare CR or LF and no folded line: the common case; each line is split where it is used
        return Head(start_line, data[start : start + len(start_line)], lines[1:], None, body_offset)
    if "\n" in start_line or "\r" in start_line:
        raise ParseError("bare CR or LF in the start line")
    headers: list[tuple[str, str, str]] = []
    current: list[str] | None = None
    for line in lines[1:]:
        if line[:1] in (" ", "\t"):
            if current is None:
                raise ParseError("continuation line before the first header", line=line[:80])
            current.append(line)
            continue
        if current is not None:
            headers.append(_header_line(current))
        current = [line]
    if current is not None:
        headers.append(_header_line(current))
    return Head(start_line, data[start : start + len(start_line)], None, headers, body_offset)


def _header_line(pieces: list[str]) -> tuple[str, str, str]:
    raw = "\r\n".join(pieces)
    text = unfold(raw)
    name, colon, value = text.partition(":")
    if not colon:
        raise ParseError("header line without a colon", line=text[:80], rule="message-header")
    name = name.rstrip(" \t")
    if "\r" in text or "\n" in text:
        raise ParseError("bare CR or LF in a header line", header=name[:40] or None, rule="message-header")
    return name, value.strip(" \t"), raw


def unfold(raw: str) -> str:
    """A header line as the grammar reads it (RFC 3261 §7.3.1, rulings R8): each fold (whitespace, CRLF,
    whitespace) becomes one SP, and trailing whitespace, which is no part of the value, goes."""
    if "\r\n" not in raw:
        return raw.rstrip(" \t")
    pieces = raw.split("\r\n")
    text = pieces[0].rstrip(" \t")
    for piece in pieces[1:]:
        text += " " + piece.strip(" \t")
    return text.rstrip(" \t")


def parse(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse one message (one UDP datagram, or a complete framed message from a stream).

    Validates the start line and the core headers; raises ``ParseError`` for any syntax error and sets
    ``message.refusal`` when a server must refuse the message with a specific status (sipactors.message.checks).
    """
    try:
        head = split_head(data, stream)
        message = _build(head, data)
        _frame_body(message, data, head.body_offset, stream)
    except ParseError:
        raise
    except (ValueError, IndexError, UnicodeError, OverflowError) as error:  # defensive: never leak others
        raise ParseError(f"unparseable message ({type(error).__name__})") from error
    message.refusal = refusal_for(message)
    return message


_CORE = frozenset(CORE_HEADERS)

def _build(head: Head, data: bytes) -> Request | Response:
    """Header fields, their index, the core headers validated (in message order), then the start line."""
    is_request, first, second, version = _start_line(head, syntax())  # the start line's errors come first
    lines = head.lines
    if lines is not None:
        young = _LINES.young
        fields = [young.get(line) or _read_line(line) for line in lines]
    else:
        fields = [_field(name, value, raw, False) for name, value, raw in head.headers]
    message: Request | Response
    if is_request:
        message = Request(first, second, fields, b"", version, head.start_raw)
    else:
        message = Response(first, second, fields, b"", version, head.start_raw)
    message._index = _index_of(fields)
    return message


def _index_of(fields: list[HeaderField]) -> dict[str, list[HeaderField]]:
    """The header fields by key, each key's in message order."""
    index = {field.key: [field] for field in fields}
    if len(index) != len(fields):  # a name on several lines (several Via, Route, ...): gather them in order
        index = {}
        for field in fields:
            group = index.get(field.key)
            if group is None:
                index[field.key] = [field]
            else:
                group.append(field)
    return index


#: Header lines seen before, by their text (RFC 3261 §7.3.1: a header's meaning is its text): the field,
#: its name looked up and a core header's value parsed. Bounded, lines of at most _MEMO_LINE characters.
#: Fields never change, so messages share them (rulings R21).
_LINES = Memo()
_MEMO_LINE = 512


def _read_line(line: str) -> HeaderField:
    """The field of a header line that is not in the memo's young generation."""
    known: HeaderField | None = _LINES.old.get(line)  # the caller looked in the young generation
    if known is not None:
        _LINES.put(line, known)  # as Memo.get does: a line that repeats stays
        return known
    cuts = _line_holes(line)
    if cuts is not None:
        holes = len(cuts)
        if holes == 3:  # inline: one or two holes are the common cases, and this is the hot path
            shape: tuple[str, ...] = (cuts[0], line[: cuts[1]], line[cuts[2] :])
            tokens: tuple[str, ...] = (line[cuts[1] : cuts[2]],)
        elif holes == 5:
            shape = (cuts[0], line[: cuts[1]], line[cuts[2] : cuts[3]], line[cuts[4] :])
            tokens = (line[cuts[1] : cuts[2]], line[cuts[3] : cuts[4]])
        else:
            shape, tokens = _shape_of(line, cuts), _hole_texts(line, cuts)
        template: _LineTemplate | None = _LINE_TEMPLATES.young.get(shape) or _LINE_TEMPLATES.get(shape)
        if template is not None:
            field = template.read(line, tokens)
            if field is not None:
                return field
    name, colon, value = line.partition(":")
    if not colon:
        raise ParseError("header line without a colon", line=line[:80], rule="message-header")
    name = name.rstrip(" \t")
    # the line's own template is learnt below: the value-level one (parse_with_hole) would be the same work
    field = _field(name, value.strip(" \t"), line, len(line) <= _MEMO_LINE, cuts is None)
    if cuts is not None and field.spec is not None and field.spec.kind in _TEMPLATE_KINDS:
        _LineTemplate.learn(field, cuts)
    return field


#: Kinds of value a line template reads (rulings R22): the via-parms of a Via line, the name-addr of a
#: From, To, Contact, Route or Record-Route line.
_TEMPLATE_KINDS = frozenset({"via", "address", "contact", "route"})

#: What a hole holds (rulings R22): a branch or a tag (TOKEN by name, RFC 3261 §25.1 via-branch, tag-param),
#: or the user part of a SIP URI (RFC 3261 §19.1.1 user).
_BRANCH, _TAG, _USER = "b", "t", "u"
_USER_TAG = _USER + _TAG


def _line_holes(line: str) -> tuple[Any, ...] | None:
    """Where the per-message parts of a whole header line would lie, as ``(kinds, start, end, start, end
    ...)``, or None (rulings R22). Found by text alone, and cheaply: ``_LineTemplate.learn`` keeps a
    template only when the line it parsed in full has exactly these parts there (its docstring says why a
    line of the same shape then has them there too), and a line read through a template has each text
    checked by the rule of its hole.

    * every ``;branch=``: the branch of each via-parm;
    * else the user of a ``<sip:`` or ``<sips:`` URI at the first ``<`` (up to the first ``@``) when no
      quoted-string precedes that ``<``, and the first ``;tag=`` after the last ``>``.

    A hole ends at the next ``;`` (or ``,`` for a branch), or where the line's trailing whitespace begins.
    """
    find = line.find
    at = find(";branch=")
    if at >= 0:
        start = at + 8
        end = find(";", start)
        if "," not in line:  # one via-parm (``learn`` refuses a line with two branch parameters)
            if end < 0:  # the line's end, before any trailing whitespace
                end = len(line) if line[-1] not in " \t" else max(len(line.rstrip(" \t")), start)
            return _BRANCH, start, end
        cuts: list[Any] = [""]
        while True:
            comma = find(",", start, end if end >= 0 else len(line))
            if comma >= 0:
                end = comma
            elif end < 0:
                end = len(line) if line[-1] not in " \t" else max(len(line.rstrip(" \t")), start)
            cuts.append(start)
            cuts.append(end)
            at = find(";branch=", end)
            if at < 0:
                cuts[0] = _BRANCH * (len(cuts) // 2)
                return tuple(cuts)
            start = at + 8
            end = find(";", start)
    lt = find("<")
    if lt < 0:
        return None
    user = user_end = -1
    if line.startswith("sip:", lt + 1):
        user = lt + 5
    elif line.startswith("sips:", lt + 1):
        user = lt + 6
    if user >= 0 and ('"' not in line or find('"', 0, lt) < 0):  # a quoted display-name may hold "<sip:"
        user_end = find("@", user)
    at = find(";tag=", line.rfind(">"))
    if at < 0:
        return (_USER, user, user_end) if user_end >= 0 else None
    start = at + 5
    end = find(";", start)
    if end < 0:
        end = len(line) if line[-1] not in " \t" else max(len(line.rstrip(" \t")), start)
    if user_end < 0:
        return _TAG, start, end
    return _USER_TAG, user, user_end, start, end


def _shape_of(line: str, cuts: tuple[Any, ...]) -> tuple[str, ...]:
    """The line with its holes cut out: the kinds of hole, then the text around them."""
    pieces = [cuts[0], line[: cuts[1]]]
    for index in range(2, len(cuts) - 1, 2):
        pieces.append(line[cuts[index] : cuts[index + 1]])
    pieces.append(line[cuts[-1] :])
    return tuple(pieces)


def _hole_texts(line: str, cuts: tuple[Any, ...]) -> tuple[str, ...]:
    return tuple([line[cuts[index] : cuts[index + 1]] for index in range(1, len(cuts), 2)])


class _LineTemplate:
    """A Via, From, To, Contact or Route line seen before, with its per-message parts cut out (rulings R22):
    what a line of the same shape with other texts in the holes reads as, without splitting it again.

    Why the holes of a line of the same shape are the same parts, once ``learn`` has checked them on the
    first line (the text around the holes being the same):

    * a branch: with no quoted-string, ``;`` only begins a via-param (sent-by and a param value hold none),
      so each ``;branch=`` begins a param named ``branch``; each via-parm has exactly one, so the n-th is the
      n-th via-parm's. A TOKEN holds no ``;``, ``,``, ``=`` or whitespace, so another TOKEN leaves the rest
      of the parse where it was.
    * a tag: the same after the name-addr's ``>``, which is the last one when no quoted-string follows it.
    * a user: with no quoted-string before it (``_line_holes`` cuts no user out otherwise), the first ``<``
      is the first name-addr's (a display-name of tokens holds none; ``learn`` checks that the first element
      is a name-addr). Neither a user nor the
      hostport, parameters and headers after it hold ``@``, so the userinfo ends at the first ``@``; another
      text that matches USER is another user of the same URI.
    """

    __slots__ = ("name", "info", "value_start", "value_cut", "value", "slots", "checks", "first", "second")

    def __init__(
        self, field: HeaderField, value_start: int, value_cut: int, value: Any,
        slots: tuple[tuple[int, int, Any, Any], ...], checks: tuple[Any, ...],
    ) -> None:
        self.name = field.name
        self.info = (field.key, field.spec)
        self.value_start = value_start  # where the value begins in the line
        self.value_cut = value_cut  # how much whitespace follows it
        self.value = value  # the parsed value of the line learnt
        # per hole: (element, parameter index or -1 for the user, parameters before, parameters after)
        self.slots = slots
        self.checks = checks  # per hole: the fullmatch of its rule
        self.first = checks[0]
        self.second = checks[1] if len(checks) == 2 else None  # the common cases, without a loop

    @staticmethod
    def learn(field: HeaderField, cuts: tuple[Any, ...]) -> None:
        """Keep the template of ``field``'s line when each hole is the part ``_line_holes`` says it is."""
        assert field.raw is not None and field.spec is not None
        line, value, parsed = field.raw, field.value, field._parsed
        kinds, at = cuts[0], cuts[1:]
        elements = parsed if type(parsed) is list else [parsed]
        if not elements:
            return
        sx = syntax()
        token = hole_token()
        slots: list[tuple[int, int, Any, Any]] = []
        checks: list[Any] = []
        if kinds[0] == _BRANCH:
            if field.spec.kind != "via" or len(elements) != len(kinds) or '"' in line:
                return
            for index, element in enumerate(elements):
                slot = _param_slot(index, element, "branch", line[at[2 * index] : at[2 * index + 1]])
                if slot is None:
                    return
                slots.append(slot)
                checks.append(token)
        else:
            first = elements[0]
            if type(first) is not NameAddr or not first.bracketed:
                return
            hole = 0
            if kinds[0] == _USER:
                uri = first.uri
                if (
                    type(uri) is not SipURI
                    or uri.password is not None
                    or uri.user != line[at[0] : at[1]]
                ):
                    return
                slots.append((0, -1, None, None))
                checks.append(sx.user.fullmatch)
                hole = 1
            if kinds[-1] == _TAG:
                if len(elements) != 1 or line.find('"', line.rfind(">")) >= 0:
                    return
                slot = _param_slot(0, first, "tag", line[at[2 * hole] : at[2 * hole + 1]])
                if slot is None:
                    return
                slots.append(slot)
                checks.append(token)
        value_start = line.index(value, len(field.name) + 1)
        value_cut = len(line) - value_start - len(value)
        template = _LineTemplate(field, value_start, value_cut, parsed, tuple(slots), tuple(checks))
        _LINE_TEMPLATES.put(_shape_of(line, cuts), template)

    def read(self, line: str, tokens: tuple[str, ...]) -> HeaderField | None:
        """The field of ``line`` (of this template's shape, with ``tokens`` in its holes), or None when a
        text does not match the rule of its hole: then the general parser decides, and words the error."""
        if self.first(tokens[0]) is None:
            return None
        second = self.second
        if second is not None:
            if second(tokens[1]) is None:
                return None
        elif len(tokens) > 1:
            checks = self.checks
            for index in range(1, len(tokens)):
                if checks[index](tokens[index]) is None:
                    return None
        value = line[self.value_start : len(line) - self.value_cut]
        return HeaderField(self.name, value, line, Deferred(self, tokens), self.info)

    def build(self, tokens: tuple[str, ...]) -> Any:
        """The parsed value of the learnt line with ``tokens`` in its holes (each element rebuilt once)."""
        value = self.value
        slots = self.slots
        if len(slots) == 1 and slots[0][1] >= 0:  # one parameter (a Via's branch, a To's tag): no loop
            at, param, before, after = slots[0]
            element = value[at] if type(value) is list else value
            element = element.with_params(Params(before + ((element.params[param][0], tokens[0]),) + after))
            if type(value) is not list:
                return element
            elements = value.copy()
            elements[at] = element
            return elements
        elements = list(value) if type(value) is list else [value]
        index = -1
        uri = params = None
        for (at, param, before, after), token in zip(self.slots, tokens, strict=True):
            if at != index:
                if index >= 0:
                    elements[index] = _rebuilt(elements[index], uri, params)
                index, uri, params = at, None, None
            if param < 0:
                old = elements[at].uri
                uri = SipURI(old.scheme, old.host, token, None, old.port, old.params, old.headers)
            else:
                params = Params(before + ((elements[at].params[param][0], token),) + after)
        elements[index] = _rebuilt(elements[index], uri, params)
        return elements if type(value) is list else elements[0]


def _rebuilt(element: Any, uri: SipURI | None, params: Params | None) -> Any:
    """``element`` (a Via or a NameAddr) with another URI and/or other parameters."""
    if uri is None:
        return element.with_params(params)
    return NameAddr(uri, element.display_name, element.params if params is None else params, element.bracketed)


def _param_slot(index: int, element: Any, name: str, text: str) -> tuple[int, int, Any, Any] | None:
    """The slot of the one parameter named exactly ``name`` of ``element``, if its value is ``text``."""
    items = tuple(element.params)
    found = [position for position, (item, _) in enumerate(items) if item == name]
    if len(found) != 1 or items[found[0]][1] != text:
        return None
    position = found[0]
    return (index, position, items[:position], items[position + 1 :])


#: (kinds of hole, the line's text around its holes) -> its _LineTemplate. Bounded.
_LINE_TEMPLATES = Memo()


def _field(name: str, value: str, raw: str, memoise: bool, holes: bool = True) -> HeaderField:
    """Name checked and looked up; a core header's value parsed (with ``holes``, a Via or From with a fresh
    branch or tag through its template, rulings R22); the field memoised when asked."""
    info = _NAME_INFO.get(name)
    if info is None:
        if syntax().header_name.fullmatch(name) is None:
            raise ParseError("header name is not a token", line=name[:80], rule="header-name")
        info = _name_info(name)
        if len(_NAME_INFO) < _NAME_INFO_LIMIT:
            _NAME_INFO[name] = info
    key, spec = info
    parsed: Any = _UNSET
    if key in _CORE:
        assert spec is not None  # every core header has a spec
        hole = hole_in(spec.kind, value) if holes else None
        if hole is not None:  # a fresh branch or tag, usually; a line that repeats whole still hits the memo
            parsed = parse_with_hole(spec, value, hole)
        else:
            parsed = parse_value(spec, value)
    field = HeaderField(name, value, raw, parsed, info)
    if memoise:
        _LINES.put(raw, field)
    return field


def clear_memos() -> None:
    """Forget every memoised parse (benchmarks measure the cold path with it; tests use it too)."""
    from sipactors.message.headers import clear_memos as clear_header_memos

    _LINES.clear()
    _LINE_TEMPLATES.clear()
    _START_LINES.clear()
    _NAME_INFO.clear()
    _LOOKED_UP.clear()
    clear_header_memos()


#: Request lines seen before, parsed (see ``_start_line``). Bounded; the values are immutable.
_START_LINES = Memo()


def _start_line(head: Head, sx: Syntax) -> tuple[bool, Any, Any, str]:
    """``(True, method, Request-URI, version)`` or ``(False, status, reason, version)``."""
    start = head.start
    known = _START_LINES.get(start)
    if known is not None:
        return known  # type: ignore[no-any-return]
    if start[:4].upper() == "SIP/":  # a Method is a token, and "/" is no token character
        match = sx.status_line.fullmatch(start)
        if match is None:
            raise ParseError("malformed Status-Line", line=start[:120], rule="Status-Line")
        return False, int(match.group("code")), match.group("reason") or "", match.group("version")
    match = sx.request_line.fullmatch(start)
    if match is None:
        raise ParseError("malformed Request-Line", line=start[:120], rule="Request-Line")
    parts = (True, match.group("method"), parse_uri(match.group("uri"), "Request-URI"), match.group("version"))
    _START_LINES.put(start, parts)
    return parts


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
    length = lengths[0]._parsed  # a core header: parsed by ``_build`` already
    if type(length) is not int:  # (should a line template ever hand it over unbuilt: build it, don't compare it)
        length = lengths[0].parsed
    if length > available:
        raise ParseError("Content-Length larger than the message", header="Content-Length", rule="Content-Length")
    # §18.3: octets beyond Content-Length in a datagram are discarded.
    message.body = data[offset : offset + length]


def iter_header_lines(message: Message) -> Iterator[tuple[str, str]]:
    for field in message.fields:
        yield canonical_name(field.name), field.value


from sipactors.message.checks import refusal_for  # noqa: E402 - checks reads Message, defined above
