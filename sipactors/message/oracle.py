"""The oracle: Lark's LALR parser over grammar/sip.lark, building the same message objects as the hot path.

It shares only the framing with the hot path (finding the head, unfolding lines, Content-Length; rules in
spec/rulings.md), never its patterns: fields are read off Lark's parse tree, and collapsed parameters are
checked against Lark's own compiled terminals. ``parse_oracle`` is about 20 times slower than ``parse``;
tests and ``sipactors check --oracle`` use it to judge the hot path.
"""

from __future__ import annotations

import re
from functools import cache, lru_cache
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from sipactors._resources import grammar_file
from sipactors.grammar.derive import sip_grammar
from sipactors.message.errors import ParseError
from sipactors.message.fields import Credentials, CSeq, MediaType, NameAddr, ValueParams, Via
from sipactors.message.headers import spec_for
from sipactors.message.message import (
    Head,
    HeaderField,
    Message,
    Request,
    Response,
    _frame_body,
    split_head,
    unfold,
)
from sipactors.message.params import EMPTY_PARAMS, Params
from sipactors.message.uri import URI, AbsoluteURI, SipURI, TelURI, local_number_problem


@lru_cache(maxsize=1)
def oracle_parser() -> Lark:
    """Lark LALR(1) with the contextual lexer over the generated grammar (start rule ``head``)."""
    return Lark(
        grammar_file("sip.lark").read_text(encoding="utf-8"),
        parser="lalr",
        lexer="contextual",
        start="head",
        propagate_positions=True,
        maybe_placeholders=True,
    )


@cache
def _terminal(name: str) -> re.Pattern[str]:
    """Lark's own regular expression for a terminal (for the by-name parameter checks)."""
    parser = oracle_parser()
    try:
        return re.compile(parser.get_terminal(name).pattern.to_regexp(), re.DOTALL)
    except KeyError:
        # Terminals reachable only from param_value_checks may be pruned from the lexer: ask a parser that
        # starts there.
        return re.compile(_checks_parser().get_terminal(name).pattern.to_regexp(), re.DOTALL)


@lru_cache(maxsize=1)
def _checks_parser() -> Lark:
    return Lark(oracle_parser().source_grammar, parser="lalr", start="param_value_checks")


def head_text(head: Head) -> str:
    """The unfolded head the grammar's ``head`` rule describes."""
    return "\r\n".join([head.start] + [unfold(raw) for _, _, raw in head.headers])


def parse_oracle(data: bytes, *, stream: bool = False) -> Request | Response:
    """Parse with the oracle; same result and same errors (by kind) as ``sipactors.message.parse``."""
    from sipactors.message.checks import refusal_for

    head = split_head(data, stream)
    text = head_text(head)
    try:
        tree = oracle_parser().parse(text)
    except UnexpectedInput as error:
        raise _explain(error, text) from None
    except LarkError as error:  # pragma: no cover - any other Lark failure is still a syntax verdict
        raise ParseError(f"grammar rejected the message ({type(error).__name__})") from None
    message = _Builder(text).head(tree, head)
    _frame_body(message, data, head.body_offset, stream)
    message.refusal = refusal_for(message)
    return message


def _explain(error: UnexpectedInput, text: str) -> ParseError:
    line_no = getattr(error, "line", 1) or 1
    column = getattr(error, "column", 1) or 1
    lines = text.split("\r\n")
    line = lines[line_no - 1] if 0 < line_no <= len(lines) else ""
    header = None
    if line_no > 1 and ":" in line:
        header = line.split(":", 1)[0].strip(" \t") or None
    expected: set[str] = set()
    if isinstance(error, (UnexpectedToken, UnexpectedEOF)):
        expected = set(error.expected)
    elif isinstance(error, UnexpectedCharacters):
        expected = set(error.allowed or ())
    names = sorted(name for name in expected if not name.startswith("__"))
    what = "unexpected end of line" if isinstance(error, UnexpectedEOF) else f"unexpected {line[column - 1 : column] or 'end'!r}"
    rule = ", ".join(names[:6]) + (" ..." if len(names) > 6 else "") if names else None
    problem = f"{what} at column {column}" + (f", expected {rule}" if rule else "")
    where = header if header else ("start line" if line_no == 1 else None)
    return ParseError(problem, header=where, rule=rule, line=line, column=column)


def _tok(tree: Tree, kind: str) -> Token | None:
    for child in tree.children:
        if isinstance(child, Token) and child.type == kind:
            return child
    return None


def _sub(tree: Tree, data: str) -> Tree | None:
    for child in tree.children:
        if isinstance(child, Tree) and child.data == data:
            return child
    return None


def _subs(tree: Tree, data: str) -> list[Tree]:
    return [c for c in tree.children if isinstance(c, Tree) and c.data == data]


class _Builder:
    def __init__(self, text: str) -> None:
        self.text = text
        self.checks = sip_grammar().param_checks

    def span(self, node: Tree | Token) -> str:
        if isinstance(node, Token):
            return str(node)
        return self.text[node.meta.start_pos : node.meta.end_pos]

    # -- start line and headers ---------------------------------------------------------------------
    def head(self, tree: Tree, head: Head) -> Request | Response:
        start, *rest = [c for c in tree.children if not (isinstance(c, Token) and c.type == "CRLF")]
        headers = [c for c in rest if isinstance(c, Tree)]
        fields = [self.header(h, raw) for h, (_, _, raw) in zip(headers, head.headers, strict=True)]
        if start.data == "request_line":
            method = _tok(start, "METHOD")
            version = _tok(start, "SIP_VERSION")
            uri_node = next(c for c in start.children if not (isinstance(c, Token) and c.type in ("METHOD", "SP", "SIP_VERSION")))
            return Request(str(method), self.uri(uri_node, "Request-URI"), fields, b"", str(version), head.start_raw)
        reason = _tok(start, "REASON_PHRASE")
        return Response(
            int(str(_tok(start, "STATUS_CODE"))), str(reason) if reason is not None else "", fields, b"",
            str(_tok(start, "SIP_VERSION")), head.start_raw,
        )

    def header(self, tree: Tree, raw: str) -> HeaderField:
        name = str(tree.children[0])
        value_node = tree.children[-1]
        value_text = "" if value_node is None else self.span(value_node)
        spec = spec_for(name)
        if spec is None:
            parsed: Any = value_text
        else:
            parsed = getattr(self, "v_" + spec.kind)(value_node, spec.name)
        return HeaderField(name, value_text.strip(" \t"), raw, parsed)

    # -- values -------------------------------------------------------------------------------------
    def v_via(self, node: Tree, header: str) -> list[Via]:
        vias = []
        for parm in _subs(node, "via_parm"):
            protocol = _sub(parm, "sent_protocol")
            sent_by = _sub(parm, "sent_by")
            assert protocol is not None and sent_by is not None
            port = _tok(sent_by, "PORT")
            params = self.params(_sub(parm, "via_params"), header, "via")
            vias.append(
                Via(
                    str(_tok(protocol, "TRANSPORT")).upper(), str(_tok(sent_by, "HOST")),
                    int(str(port)) if port is not None else None, params,
                    str(_tok(protocol, "PROTOCOL_NAME")), str(_tok(protocol, "PROTOCOL_VERSION")),
                )
            )
        return vias

    def v_address(self, node: Tree, header: str) -> NameAddr:
        return self.address(node, header)

    def address(self, node: Tree, header: str) -> NameAddr:
        """from_value / contact_param / route_param: [address, header_params]."""
        target = node.children[0]
        params = self.params(_sub(node, "header_params"), header, header.lower())
        if isinstance(target, Tree) and target.data == "name_addr":
            display = _sub(target, "display_name")
            spec = next(c for c in target.children if not (isinstance(c, Token) and c.type in ("LAQUOT", "RAQUOT")) and not (isinstance(c, Tree) and c.data == "display_name") and c is not None)
            return NameAddr(
                self.uri(spec, header), self.span(display).strip(" \t\r\n") if display is not None else None, params, True
            )
        assert isinstance(target, Tree) and target.data == "bare_addr_spec"
        first = target.children[0]
        if isinstance(first, Token) and first.type == "SIP_SCHEME":
            uri: URI = self.sip_uri(target, header)
        else:
            uri = self.uri(first, header)
        return NameAddr(uri, None, params, False)

    def v_contact(self, node: Tree, header: str) -> list[NameAddr] | str:
        if _tok(node, "STAR") is not None:
            return "*"
        return [self.address(c, header) for c in _subs(node, "contact_param")]

    def v_route(self, node: Tree, header: str) -> list[NameAddr]:
        return [self.address(c, header) for c in _subs(node, "route_param")]

    def v_text(self, node: Tree, header: str) -> str:
        return self.span(node).strip(" \t")

    def v_int(self, node: Tree, header: str) -> int:
        return int(self.span(node).strip(" \t"))

    def v_cseq(self, node: Tree, header: str) -> CSeq:
        return CSeq(int(str(_tok(node, "NUMBER"))), str(_tok(node, "METHOD")))

    def media(self, node: Tree, header: str) -> MediaType:
        return MediaType(
            str(_tok(node, "M_TYPE")), str(_tok(node, "M_SUBTYPE")),
            self.params(_sub(node, "header_params"), header, header.lower()),
        )

    def v_media(self, node: Tree, header: str) -> MediaType:
        media = _sub(node, "media_type")
        assert media is not None
        return self.media(media, header)

    def v_media_list(self, node: Tree | None, header: str) -> list[MediaType]:
        return [] if node is None else [self.media(m, header) for m in _subs(node, "media_type")]

    def v_tokens(self, node: Tree | None, header: str) -> tuple[str, ...]:
        if node is None:
            return ()
        return tuple(str(c) for c in node.children if isinstance(c, Token) and c.type != "COMMA")

    def v_value_params(self, node: Tree, header: str) -> ValueParams:
        value = next(c for c in node.children if isinstance(c, Token))
        return ValueParams(str(value), self.params(_sub(node, "header_params"), header, header.lower()))

    def v_contact_prefs(self, node: Tree, header: str) -> list[ValueParams]:
        return [
            ValueParams("*", self.params(_sub(pref, "header_params"), header, header.lower()))
            for pref in _subs(node, "contact_pref")
        ]

    def v_reasons(self, node: Tree, header: str) -> list[ValueParams]:
        return [
            ValueParams(str(_tok(item, "TOKEN")), self.params(_sub(item, "header_params"), header, header.lower()))
            for item in _subs(node, "reason_item")
        ]

    def v_auth(self, node: Tree, header: str) -> Credentials:
        value = _sub(node, "auth_value")
        assert value is not None
        params = []
        for param in _subs(value, "auth_param"):
            name, _, param_value = (c for c in param.children)
            params.append((str(name), str(param_value).strip(" \t")))
        return Credentials(str(_tok(value, "AUTH_SCHEME")), tuple(params))

    # -- URIs and parameters ------------------------------------------------------------------------
    def uri(self, node: Tree | Token, header: str) -> URI:
        if isinstance(node, Tree) and node.data == "sip_uri":
            return self.sip_uri(node, header)
        assert isinstance(node, Token)
        text = str(node)
        if node.type in ("TEL_URI", "TEL_URI_BARE"):
            problem = local_number_problem(text[4:], _terminal("DESCRIPTOR"))
            if problem is not None:
                raise ParseError(problem, header=header, rule="local-number")
            number, _, rest = text[4:].partition(";")
            items = []
            for piece in rest.split(";") if rest else ():
                name, eq, value = piece.partition("=")
                items.append((name, value if eq else None))
            return TelURI(number, Params(tuple(items)))
        return AbsoluteURI(text[: text.index(":")].lower(), text)

    def sip_uri(self, node: Tree, header: str) -> SipURI:
        userinfo = _tok(node, "USERINFO")
        user = password = None
        if userinfo is not None:
            user, colon, rest = str(userinfo)[:-1].partition(":")
            password = rest if colon else None
            if _terminal("USER").fullmatch(user) is None:
                problem = local_number_problem(user, _terminal("DESCRIPTOR"))
                if problem is not None:
                    raise ParseError(problem, header=header, rule="telephone-subscriber")
        hostport = _sub(node, "hostport")
        assert hostport is not None
        port_token = _tok(hostport, "PORT")
        port = int(str(port_token)) if port_token is not None else None
        if port is not None and port > 65535:
            raise ParseError("port out of range", header=header, rule="port")
        params: Params = EMPTY_PARAMS
        uri_parameters = _sub(node, "uri_parameters")
        if uri_parameters is not None:
            items = []
            for param in _subs(uri_parameters, "uri_parameter"):
                name = str(param.children[0])
                value = str(param.children[1]) if param.children[1] is not None else None
                self.check("uri", name, value, header)
                items.append((name, value))
            params = Params(tuple(items))
        headers: tuple[tuple[str, str], ...] = ()
        uri_headers = _sub(node, "uri_headers")
        if uri_headers is not None:
            headers = tuple(
                (str(h.children[0]), str(h.children[1]) if h.children[1] is not None else "")
                for h in _subs(uri_headers, "uri_header")
            )
        return SipURI(
            str(_tok(node, "SIP_SCHEME"))[:-1].lower(), str(_tok(hostport, "HOST")), user, password, port, params,
            headers,
        )

    def params(self, node: Tree | None, header: str, context: str) -> Params:
        if node is None:
            return EMPTY_PARAMS
        items: list[tuple[str, str | None]] = []
        item_rule, param_rule = ("via_param_item", "via_param") if context == "via" else ("header_param", "generic_param")
        for item in _subs(node, item_rule):
            param = _sub(item, param_rule)
            assert param is not None
            name = str(param.children[0])
            value_node = param.children[-1]
            value = self.span(value_node).strip(" \t") if value_node is not None else None
            self.check(context, name, value, header)
            items.append((name, value))
        return Params(tuple(items))

    def check(self, context: str, name: str, value: str | None, header: str) -> None:
        key = (context, name.lower())
        if key not in self.checks:
            return
        terminal = self.checks[key]
        if terminal is None:
            if value is not None:
                raise ParseError(f"parameter {name} takes no value", header=header, rule=f"{name}-param")
            return
        if value is None and terminal.endswith("?"):
            return
        if value is None or _terminal(terminal.rstrip("?")).fullmatch(value) is None:
            raise ParseError(f"bad value for parameter {name}", header=header, rule=f"{name}-param: {terminal}")


def oracle_verdict(data: bytes) -> tuple[bool, Message | ParseError]:
    """(True, message) or (False, error): what the differential tests compare."""
    try:
        return True, parse_oracle(data)
    except ParseError as error:
        return False, error
