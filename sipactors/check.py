"""``sipactors check``: show how a SIP message parses — start line, every header's fields, the body — or
exactly where and why it does not.

Meant for people exploring SIP syntax: the output names the RFC rule behind each verdict.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from sipactors.message import (
    AbsoluteURI,
    Credentials,
    CSeq,
    MediaType,
    Message,
    NameAddr,
    Params,
    ParseError,
    Request,
    SipURI,
    TelURI,
    ValueParams,
    Via,
    parse,
    parse_oracle,
    unquote,
)
from sipactors.message.headers import canonical_name, spec_for


class _Style:
    def __init__(self, color: bool) -> None:
        self.color = color

    def _wrap(self, code: str, text: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def head(self, text: str) -> str:
        return self._wrap("1", text)

    def name(self, text: str) -> str:
        return self._wrap("36", text)

    def dim(self, text: str) -> str:
        return self._wrap("2", text)

    def good(self, text: str) -> str:
        return self._wrap("32", text)

    def bad(self, text: str) -> str:
        return self._wrap("31;1", text)


def _show(text: str) -> str:
    """Octets (ISO-8859-1 text) for a terminal: UTF-8 where it decodes, escapes for control characters."""
    try:
        decoded = text.encode("latin-1").decode("utf-8")
    except UnicodeDecodeError:
        decoded = text
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" for c in decoded)


def _params(params: Params) -> str:
    return "  ".join(name if value is None else f"{name}={value}" for name, value in params) or "-"


def describe_uri(uri: Any) -> list[tuple[str, str]]:
    if isinstance(uri, SipURI):
        rows = [("scheme", uri.scheme)]
        if uri.user is not None:
            rows.append(("user", uri.user))
        if uri.password is not None:
            rows.append(("password", uri.password))
        rows.append(("host", uri.host))
        if uri.port is not None:
            rows.append(("port", str(uri.port)))
        if uri.params:
            rows.append(("uri-params", _params(uri.params)))
        if uri.headers:
            rows.append(("uri-headers", "  ".join(f"{n}={v}" for n, v in uri.headers)))
        return rows
    if isinstance(uri, TelURI):
        rows = [("scheme", "tel"), ("number", uri.number)]
        if uri.params:
            rows.append(("params", _params(uri.params)))
        return rows
    if isinstance(uri, AbsoluteURI):
        return [("scheme", uri.scheme), ("uri", uri.text)]
    return [("value", str(uri))]


def describe(value: Any) -> list[tuple[str, str]]:
    """Field rows for one parsed header value."""
    if isinstance(value, NameAddr):
        rows: list[tuple[str, str]] = []
        if value.display_name is not None:
            rows.append(("display", _show(unquote(value.display_name) or "")))
        rows.append(("uri", value.uri.render() + ("" if value.bracketed else "   (addr-spec without <>)")))
        rows += [("  " + k, v) for k, v in describe_uri(value.uri)]
        if value.params:
            rows.append(("params", _params(value.params)))
        return rows
    if isinstance(value, Via):
        rows = [
            ("protocol", f"{value.protocol}/{value.version}/{value.transport}"),
            ("sent-by", value.host + (f":{value.port}" if value.port is not None else "")),
        ]
        if value.branch is not None:
            kind = "RFC 3261 (magic cookie)" if value.rfc3261_branch else "RFC 2543 (no magic cookie)"
            rows.append(("branch", f"{value.branch}   {kind}"))
        others = value.params.without("branch")
        if others:
            rows.append(("params", _params(others)))
        return rows
    if isinstance(value, CSeq):
        return [("seq", str(value.seq)), ("method", value.method)]
    if isinstance(value, MediaType):
        rows = [("type", f"{value.type}/{value.subtype}")]
        if value.params:
            rows.append(("params", _params(value.params)))
        return rows
    if isinstance(value, ValueParams):
        rows = [("value", value.value)]
        if value.params:
            rows.append(("params", _params(value.params)))
        return rows
    if isinstance(value, Credentials):
        return [("scheme", value.scheme)] + [(name, val) for name, val in value.params]
    if isinstance(value, (list, tuple)):
        if all(isinstance(item, str) for item in value):
            return [("values", ", ".join(value) or "(empty)")]
        rows = []
        for index, item in enumerate(value, 1):
            for position, (label, text) in enumerate(describe(item)):
                rows.append((f"[{index}] {label}" if position == 0 else f"    {label}", text))
        return rows
    if isinstance(value, int):
        return [("value", str(value))]
    return [("text", str(value))]


def _to_json(value: Any) -> Any:
    if isinstance(value, Params):
        return [[n, v] for n, v in value]
    if isinstance(value, (SipURI, TelURI, AbsoluteURI, NameAddr, Via, CSeq, MediaType, ValueParams, Credentials)):
        out = {"_": type(value).__name__}
        for field in value.__dataclass_fields__:  # type: ignore[union-attr]
            out[field] = _to_json(getattr(value, field))
        return out
    if isinstance(value, (list, tuple)):
        return [_to_json(v) for v in value]
    return value


def message_json(message: Message) -> dict[str, Any]:
    start: dict[str, Any]
    if isinstance(message, Request):
        start = {"method": message.method, "uri": _to_json(message.uri), "version": message.version}
    else:
        start = {"status": message.status, "reason": message.reason, "version": message.version}  # type: ignore[attr-defined]
    return {
        "start": start,
        "headers": [{"name": canonical_name(f.name), "value": f.value, "parsed": _to_json(f.parsed)} for f in message.fields],
        "body_length": len(message.body),
        "refusal": None if message.refusal is None else {"status": message.refusal.status, "reason": message.refusal.reason, "rfc": message.refusal.rfc},
    }


def _print_message(message: Message, out: TextIO, style: _Style, parser_name: str) -> None:
    w = out.write
    if isinstance(message, Request):
        w(style.head("REQUEST") + f"   {message.method} {_show(message.uri.render())} {message.version}\n")
        for label, text in describe_uri(message.uri):
            w(f"  {style.name(f'{label:<13}')} {_show(text)}\n")
    else:
        w(style.head("RESPONSE") + f"  {message.version} {message.status} {_show(message.reason)}\n")  # type: ignore[attr-defined]
    w("\n" + style.head(f"HEADERS ({len(message.fields)})") + "\n")
    for field in message.fields:
        name = canonical_name(field.name)
        spec = spec_for(field.name)
        note = ""
        if field.name != name:
            note = style.dim(f"  (written {field.name!r})")
        kind = style.dim(spec.rfc) if spec else style.dim("extension header: text")
        w(f"  {style.name(name)}{note}   {kind}\n")
        w(f"      {style.dim('value')}  {_show(field.value) or style.dim('(empty)')}\n")
        if spec is not None:
            for label, text in describe(field.parsed):
                w(f"      {label:<14} {_show(text)}\n")
    w("\n" + style.head("BODY") + f"  {len(message.body)} octets")
    content_type = message.header("Content-Type") if message.has("Content-Type") else None
    if content_type is not None:
        w(f" of {content_type.mime}")
    w("\n")
    if message.body:
        try:
            text = message.body.decode("utf-8")
            printable = all(c.isprintable() or c in "\r\n\t" for c in text)
        except UnicodeDecodeError:
            printable = False
        if printable:
            for line in text.split("\r\n")[:40]:
                w(f"  | {line}\n")
        else:
            w(f"  {style.dim('(binary: ' + message.body[:32].hex(' ') + (' ...' if len(message.body) > 32 else '') + ')')}\n")
    w("\n" + style.head("VERDICT") + f"  ({parser_name}) ")
    if message.refusal is None:
        w(style.good("well formed") + "; a server would process it.\n")
    else:
        r = message.refusal
        verb = "answer" if isinstance(message, Request) else "drop it:"
        w(style.bad("refused") + f": parses, but a server must {verb} {r.status} {r.reason}  ({r.rfc})\n")


def _print_error(error: ParseError, data: bytes, out: TextIO, style: _Style, parser_name: str) -> None:
    w = out.write
    w(style.bad("MALFORMED") + f"  ({parser_name}) {error.reason_phrase}\n")
    if error.rule:
        w(f"  {style.name('rule'):<6}     {error.rule}\n")
    location = error
    if error.column is None:
        # The hot path knows the header and rule; the oracle also knows the column.
        try:
            parse_oracle(data)
        except ParseError as oracle_error:
            location = oracle_error
        except Exception:  # noqa: BLE001 - locating is best effort
            pass
    if location.line is not None:
        w(f"  {style.name('line'):<6}     {_show(location.line)}\n")
        if location.column is not None:
            w(" " * 13 + " " * (location.column - 1) + style.bad("^") + f" {location.problem}\n")
    elif error.line is not None:
        w(f"  {style.name('line'):<6}     {_show(error.line)}\n")
    w(f"\n  A server answers: 400 {error.reason_phrase}\n")


def run_check(
    source: str, *, oracle: bool = False, validate_all: bool = True, as_json: bool = False,
    out: TextIO = sys.stdout, color: bool | None = None,
) -> int:
    """Print the structure of the message in file ``source`` (``-`` for standard input). Exit code 0/1."""
    data = sys.stdin.buffer.read() if source == "-" else open(source, "rb").read()
    style = _Style(out.isatty() if color is None else color)
    parser: Callable[[bytes], Message] = parse_oracle if oracle else parse
    parser_name = "oracle: Lark LALR over grammar/sip.lark" if oracle else "hot path"
    try:
        message = parser(data)
        if validate_all:
            message.validate_all()
    except ParseError as error:
        if as_json:
            json.dump({"error": error.reason_phrase, "header": error.header, "rule": error.rule, "line": error.line, "column": error.column}, out, indent=2)
            out.write("\n")
        else:
            _print_error(error, data, out, style, parser_name)
        return 1
    if as_json:
        json.dump(message_json(message), out, indent=2, ensure_ascii=False)
        out.write("\n")
    else:
        _print_message(message, out, style, parser_name)
    return 0 if message.refusal is None else 2
