"""Header fields: names, compact forms, and the hot-path parser of each structured value.

RFC 3261 §7.3: header names are case-insensitive, several comma-separated values on one line are the same
as several lines (for headers whose grammar is a comma list), and §7.3.3 gives the compact forms. The
syntax of every value is the grammar's (sipactors.message.syntax derives each pattern from grammar/sip.lark);
this module only decides which captured text becomes which field.

Each parser first matches the whole value against the derived ``*_value`` rule — that decides the verdict
exactly as the grammar does — and then walks the elements to build the field objects.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sipactors.grammar.derive import first_group
from sipactors.message.errors import ParseError
from sipactors.message.fields import Credentials, CSeq, MediaType, NameAddr, ValueParams, Via
from sipactors.message.memo import Memo
from sipactors.message.params import EMPTY_PARAMS, Params
from sipactors.message.syntax import Syntax, syntax
from sipactors.message.uri import URI, AbsoluteURI, SipURI, TelURI, local_number_problem


@dataclass(frozen=True, slots=True)
class HeaderSpec:
    """How one header field is named and parsed."""

    name: str  # canonical spelling
    compact: str | None
    rule: str  # value rule in grammar/sip-syntax.lark
    kind: str  # parser, see _PARSERS
    is_list: bool  # a comma list: may appear on several lines, values concatenate
    rfc: str


_SPECS = (
    HeaderSpec("Via", "v", "via_value", "via", True, "RFC 3261 §20.42"),
    HeaderSpec("From", "f", "from_value", "address", False, "RFC 3261 §20.20"),
    HeaderSpec("To", "t", "to_value", "address", False, "RFC 3261 §20.39"),
    HeaderSpec("Reply-To", None, "reply_to_value", "address", False, "RFC 3261 §20.31"),
    HeaderSpec("Contact", "m", "contact_value", "contact", True, "RFC 3261 §20.10"),
    HeaderSpec("Route", None, "route_value", "route", True, "RFC 3261 §20.34"),
    HeaderSpec("Record-Route", None, "record_route_value", "route", True, "RFC 3261 §20.30"),
    HeaderSpec("Path", None, "path_value", "route", True, "RFC 3327 §4"),
    HeaderSpec("Call-ID", "i", "call_id_value", "text", False, "RFC 3261 §20.8"),
    HeaderSpec("CSeq", None, "cseq_value", "cseq", False, "RFC 3261 §20.16"),
    HeaderSpec("Max-Forwards", None, "max_forwards_value", "int", False, "RFC 3261 §20.22"),
    HeaderSpec("Content-Length", "l", "content_length_value", "int", False, "RFC 3261 §20.14"),
    HeaderSpec("Expires", None, "expires_value", "int", False, "RFC 3261 §20.19"),
    HeaderSpec("Min-Expires", None, "min_expires_value", "int", False, "RFC 3261 §20.23"),
    HeaderSpec("Content-Type", "c", "content_type_value", "media", False, "RFC 3261 §20.15"),
    HeaderSpec("Accept", None, "accept_value", "media_list", True, "RFC 3261 §20.1"),
    HeaderSpec("Allow", None, "allow_value", "tokens", True, "RFC 3261 §20.5"),
    HeaderSpec("Supported", "k", "supported_value", "tokens", True, "RFC 3261 §20.37"),
    HeaderSpec("Require", None, "require_value", "tokens", True, "RFC 3261 §20.32"),
    HeaderSpec("Proxy-Require", None, "proxy_require_value", "tokens", True, "RFC 3261 §20.29"),
    HeaderSpec("Unsupported", None, "unsupported_value", "tokens", True, "RFC 3261 §20.40"),
    HeaderSpec("Content-Encoding", "e", "content_encoding_value", "tokens", True, "RFC 3261 §20.12"),
    HeaderSpec("Event", "o", "event_value", "value_params", False, "RFC 6665 §8.2.1"),
    HeaderSpec("Allow-Events", "u", "allow_events_value", "tokens", True, "RFC 6665 §8.2.2"),
    HeaderSpec("Subscription-State", None, "subscription_state_value", "value_params", False, "RFC 6665 §8.2.3"),
    HeaderSpec("SIP-ETag", None, "sip_etag_value", "text", False, "RFC 3903 §11.3.1"),
    HeaderSpec("SIP-If-Match", None, "sip_if_match_value", "text", False, "RFC 3903 §11.3.2"),
    HeaderSpec("Accept-Contact", "a", "accept_contact_value", "contact_prefs", True, "RFC 3841 §10"),
    HeaderSpec("Reject-Contact", "j", "reject_contact_value", "contact_prefs", True, "RFC 3841 §10"),
    HeaderSpec("Request-Disposition", "d", "request_disposition_value", "tokens", True, "RFC 3841 §10"),
    HeaderSpec("Reason", None, "reason_value", "reasons", True, "RFC 3326 §2"),
    HeaderSpec("Date", None, "date_value", "text", False, "RFC 3261 §20.17"),
    HeaderSpec("Authorization", None, "authorization_value", "auth", False, "RFC 3261 §20.7"),
    HeaderSpec("Proxy-Authorization", None, "proxy_authorization_value", "auth", False, "RFC 3261 §20.28"),
    HeaderSpec("WWW-Authenticate", None, "www_authenticate_value", "auth", False, "RFC 3261 §20.44"),
    HeaderSpec("Proxy-Authenticate", None, "proxy_authenticate_value", "auth", False, "RFC 3261 §20.27"),
)

#: Compact forms of headers we keep as text (RFC 3261 §7.3.3 and extensions): for display names only.
_TEXT_COMPACT = {"s": "Subject", "r": "Refer-To", "b": "Referred-By", "x": "Session-Expires", "y": "Identity"}

SPECS: dict[str, HeaderSpec] = {}
for _spec in _SPECS:
    SPECS[_spec.name.lower()] = _spec
    if _spec.compact:
        SPECS[_spec.compact] = _spec

#: Canonical spelling of header names we know only as text (extension headers keep their own spelling).
_KNOWN_TEXT = {
    name.lower(): name
    for name in (
        "Subject", "Organization", "User-Agent", "Server", "Warning", "Call-Info", "Alert-Info", "Error-Info",
        "In-Reply-To", "MIME-Version", "Priority", "Retry-After", "Timestamp", "Accept-Encoding",
        "Accept-Language", "Content-Disposition", "Content-Language", "Authentication-Info", "Refer-To",
        "Referred-By", "Session-Expires", "Min-SE", "Identity", "RSeq", "RAck", "P-Asserted-Identity",
    )
}


def canonical_name(name: str) -> str:
    """Canonical spelling of a header name; compact forms expand (RFC 3261 §7.3.3)."""
    key = name.lower()
    spec = SPECS.get(key)
    if spec is not None:
        return spec.name
    if key in _TEXT_COMPACT:
        return _TEXT_COMPACT[key]
    return _KNOWN_TEXT.get(key, name)


def spec_for(name: str) -> HeaderSpec | None:
    return SPECS.get(name.lower())


# ---------------------------------------------------------------------------------------- helpers
def _check_param(sx: Syntax, context: str, name: str, value: str | None, header: str) -> None:
    """By-name check of a collapsed parameter (the @param directives of grammar/sip-syntax.lark)."""
    key = (context, name.lower())
    if key not in sx.param_checks:
        return
    check = sx.param_checks[key]
    if check is None:
        if value is not None:
            raise ParseError(f"parameter {name} takes no value", header=header, rule=f"{name}-param")
        return
    terminal, pattern = check
    if value is None and terminal.endswith("?"):
        return  # the value is optional ("rport" alone, RFC 3581 §5)
    if value is None or not pattern.fullmatch(value):
        raise ParseError(f"bad value for parameter {name}", header=header, rule=f"{name}-param: {terminal}")


def parse_header_params(text: str | None, header: str, context: str | None = None) -> Params:
    """``;name=value`` list of a header field (SEMI generic-param, RFC 3261 §25.1). Parameters the header
    defines are checked by name; ``context`` is the header's name in lower case unless given."""
    if not text:
        return EMPTY_PARAMS
    context = context or header.lower()
    sx = syntax()
    items: list[tuple[str, str | None]] = []
    if '"' not in text:
        # token, IPv6reference and the separators hold no ";" and no "=": plain splitting is exact here.
        for piece in text.split(";")[1:]:
            name, eq, value = piece.partition("=")
            name = name.strip(" \t")
            item_value = value.strip(" \t") if eq else None
            _check_param(sx, context, name, item_value, header)
            items.append((name, item_value))
        return Params(tuple(items))
    pattern = sx.header_param if context != "via" else sx.via_param_item
    pos = 0
    while pos < len(text):
        match = pattern.match(text, pos)
        if match is None:
            raise ParseError("malformed parameter", header=header, rule="generic-param")
        found: str | None = match.group("value")  # typeshed says str; an absent group is None
        name = match.group("name")
        item_value = found.strip(" \t") if found is not None else None
        _check_param(sx, context, name, item_value, header)
        items.append((name, item_value))
        pos = match.end()
    return Params(tuple(items))


def parse_uri(text: str, header: str = "Request-URI") -> URI:
    """A URI in <> or in the Request-URI: SIP/SIPS (RFC 3261 §19.1), tel (RFC 3966) or other. URIs are
    immutable and ``header`` only words an error, so a URI read before is handed out again (rulings R21):
    a registrar compares a REGISTER's contacts with the stored ones, as text, every time."""
    known: URI | None = _URIS.get(text)
    if known is not None:
        return known
    uri = _parse_uri(text, header)
    if len(text) <= 512:
        _URIS.put(text, uri)
    return uri


#: URIs by their text (bounded).
_URIS = Memo()


def _parse_uri(text: str, header: str) -> URI:
    sx = syntax()
    if text[:4].lower() == "sip:" or text[:5].lower() == "sips:":
        match = sx.sip_uri.fullmatch(text)
        if match is None:
            raise ParseError("malformed SIP URI", header=header, rule="SIP-URI")
        return _sip_uri_from_match(match, header)
    if text[:4].lower() == "tel:":
        if not sx.tel_uri.fullmatch(text):
            raise ParseError("malformed tel URI", header=header, rule="telephone-uri")
        return _tel_uri(text, header)
    if not sx.absolute_uri.fullmatch(text):
        raise ParseError("malformed URI", header=header, rule="absoluteURI")
    return AbsoluteURI(text[: text.index(":")].lower(), text)


def _tel_uri(text: str, header: str) -> TelURI:
    problem = local_number_problem(text[4:], syntax().descriptor)
    if problem is not None:
        raise ParseError(problem, header=header, rule="local-number")
    number, _, params = text[4:].partition(";")
    items: list[tuple[str, str | None]] = []
    if params:
        for piece in params.split(";"):
            name, eq, value = piece.partition("=")
            items.append((name, value if eq else None))
    return TelURI(number, Params(tuple(items)))


def _sip_uri_from_match(match: re.Match[str], header: str) -> SipURI:
    return _sip_uri(
        match.group("scheme"), match.group("userinfo"), match.group("host"), match.group("port"),
        match.group("params"), match.group("headers"), header,
    )


def _sip_uri(
    scheme: str, userinfo: str | None, host: str, port_text: str | None, params_text: str | None,
    headers_text: str | None, header: str,
) -> SipURI:
    """A SipURI from the texts the grammar captured (RFC 3261 §19.1.1)."""
    user = password = None
    if userinfo is not None:
        user, colon, rest = userinfo[:-1].partition(":")
        password = rest if colon else None
        if syntax().user.fullmatch(user) is None:  # then it is a telephone-subscriber (RFC 3261 §19.1.1)
            problem = local_number_problem(user, syntax().descriptor)
            if problem is not None:
                raise ParseError(problem, header=header, rule="telephone-subscriber")
    port = int(port_text) if port_text else None
    if port is not None and port > 65535:
        raise ParseError("port out of range", header=header, rule="port")
    params = EMPTY_PARAMS
    if params_text:
        checks = syntax().param_checks
        items: list[tuple[str, str | None]] = []
        # pname and pvalue hold neither ";" nor "=" (RFC 3261 §25.1 paramchar): splitting is exact.
        for piece in params_text[1:].split(";"):
            name, eq, value = piece.partition("=")
            item_value = value if eq else None
            if ("uri", name.lower()) in checks:
                _check_param(syntax(), "uri", name, item_value, header)
            items.append((name, item_value))
        params = Params(tuple(items))
    headers: tuple[tuple[str, str], ...] = ()
    if headers_text:
        # hname and hvalue hold no "&" (hnv-unreserved): splitting is exact.
        headers = tuple(tuple(h.split("=", 1)) for h in headers_text[1:].split("&"))  # type: ignore[misc]
    return SipURI(scheme[:-1].lower(), host, user, password, port, params, headers)


def _address(match: re.Match[str], header: str, with_params: bool = True) -> NameAddr:
    """name-addr / addr-spec with header params, from a contact_param or route_param match (or a name_addr
    match, ``with_params=False``)."""
    params = parse_header_params(match.group("params"), header) if with_params else EMPTY_PARAMS
    scheme = first_group(match, "scheme")
    in_brackets = match.group("uri") is not None
    if scheme is not None:
        host = first_group(match, "host")
        assert host is not None  # the grammar's SIP-URI has a host wherever it has a scheme
        uri: URI = _sip_uri(
            scheme, first_group(match, "userinfo"), host, first_group(match, "port"),
            match.group("uparams"), match.group("uheaders"), header,
        )
    else:
        uri = parse_uri(match.group("uri") if in_brackets else match.group("bare"), header)
    if in_brackets:
        display: str | None = match.group("display")
        if display is not None:
            display = display.strip(" \t\r\n")  # LWS around it belongs to the separators
        return NameAddr(uri, display, params, True)
    return NameAddr(uri, None, params, False)


def _elements(pattern: re.Pattern[str], text: str, header: str, rule: str) -> list[re.Match[str]]:
    """Matches of ``pattern`` separated by COMMA, covering all of ``text``."""
    comma = syntax().comma
    matches: list[re.Match[str]] = []
    pos = 0
    end = len(text)
    while True:
        match = pattern.match(text, pos)
        if match is None:
            raise ParseError("malformed value", header=header, rule=rule)
        matches.append(match)
        pos = match.end()
        if pos == end:
            return matches
        separator = comma.match(text, pos)
        if separator is None:
            raise ParseError("malformed value", header=header, rule=rule)
        pos = separator.end()


def _split_tokens(text: str) -> tuple[str, ...]:
    # token-like elements hold no "," and no whitespace; COMMA = SWS "," SWS.
    return tuple(piece.strip(" \t") for piece in text.split(","))


# ---------------------------------------------------------------------------------------- fast paths
# The common shapes of the core headers are read by splitting at separators that the grammar makes
# unambiguous, every piece still matched by a pattern derived from the grammar. A fast path either returns
# exactly what the general parser would, or None, and then the general parser decides (and words the error).
# The differential tests hold both to the oracle.

#: Parsed name-addrs (without header parameters) and Via heads by their text. Bounded: the text comes from
#: the network. The values are immutable, so sharing them between messages is safe.
_NAME_ADDRS = Memo()  # name-addr text -> NameAddr without header parameters
_VIA_HEADS = Memo()  # "SIP/2.0/UDP host:port" -> (protocol, version, transport, host, port)


def clear_memos() -> None:
    _NAME_ADDRS.clear()
    _VIA_HEADS.clear()
    _TEMPLATES.clear()
    _URIS.clear()


def _checked_params(text: str, header: str, context: str) -> Params | None:
    """``*( SEMI generic-param )`` with no quoted-string in it, or None if ``text`` is not of that form.

    Without quotes, ";" and "=" occur only as separators (token, host and IPv6 references hold neither).
    """
    token, generic, by_name = _param_patterns(context)
    pieces = text.split(";")
    if pieces[0] and pieces[0].strip(" \t"):
        return None
    spaced = " " in text or "\t" in text
    items: list[tuple[str, str | None]] = []
    for piece in pieces[1:]:
        name, eq, value = piece.partition("=")
        if spaced:  # SEMI and EQUAL allow whitespace around ";" and "="
            name = name.strip(" \t")
            value = value.strip(" \t")
        if token(name) is None:
            return None
        item_value = value if eq else None
        check = by_name.get(name.lower(), _GENERIC)
        if check is _GENERIC:
            if item_value is not None and generic(item_value) is None:
                return None
        elif check is not None and item_value is not None and check[1].fullmatch(item_value) is not None:
            pass  # by name: every by-name terminal lies inside gen-value (tests/message/test_fastpath.py)
        else:
            _check_param(syntax(), context, name, item_value, header)  # a value missing, or one too many
        items.append((name, item_value))
    return Params(tuple(items))


_PARAM_PATTERNS: dict[str, tuple[Callable[[str], Any], Callable[[str], Any], dict[str, Any]]] = {}


def _param_patterns(context: str) -> tuple[Callable[[str], Any], Callable[[str], Any], dict[str, Any]]:
    """TOKEN's and gen-value's fullmatch, and the by-name checks of ``context`` by lower-case name."""
    found = _PARAM_PATTERNS.get(context)
    if found is None:
        sx = syntax()
        generic = sx.via_gen_value if context == "via" else sx.gen_value
        by_name = {name: check for (where, name), check in sx.param_checks.items() if where == context}
        found = _PARAM_PATTERNS[context] = (sx.token.fullmatch, generic.fullmatch, by_name)
    return found


_GENERIC: Any = object()


def _fast_addresses(text: str, header: str, many: bool) -> list[NameAddr] | None:
    """``name-addr *(SEMI param)`` elements (a comma list when ``many``): an addr-spec in <> holds no ">"
    (RFC 3261 §25.1), so each name-addr ends at the first ">" after its "<"."""
    addresses: list[NameAddr] = []
    pos = 0
    end = len(text)
    while True:
        lt = text.find("<", pos)
        gt = text.find(">", lt) if lt >= 0 else -1
        if gt < 0:
            return None
        segment = text[pos : gt + 1]
        base = _NAME_ADDRS.get(segment)
        if base is None:
            match = syntax().name_addr.fullmatch(segment)
            if match is None:
                return None
            base = _address(match, header, with_params=False)
            _NAME_ADDRS.put(segment, base)
        comma = text.find(",", gt) if many else -1
        stop = comma if comma >= 0 else end
        rest = text[gt + 1 : stop]
        if '"' in rest:
            # A quoted-string parameter value may hold ";", "," and "=": walk the parameters instead.
            walked = _walk_params(text, gt + 1, header)
            if walked is None:
                return None
            params, after = walked
            addresses.append(base.with_params(params) if params else base)
            if after == end:
                return addresses
            separator = syntax().comma.match(text, after) if many else None
            if separator is None:
                return None
            pos = separator.end()
            continue
        if rest:
            checked = _checked_params(rest, header, header.lower())
            if checked is None:
                return None
            addresses.append(base.with_params(checked) if checked else base)
        else:
            addresses.append(base)
        if comma < 0:
            return addresses
        pos = comma + 1
        while pos < end and text[pos] in " \t\r\n":
            pos += 1


def _walk_params(text: str, pos: int, header: str) -> tuple[Params, int] | None:
    """``*( SEMI generic-param )`` from ``pos``: the parameters and where they end."""
    sx = syntax()
    match_at = sx.header_param_at.match
    items: list[tuple[str, str | None]] = []
    while True:
        match = match_at(text, pos)
        if match is None:
            return Params(tuple(items)), pos
        name = match.group("name")
        value: str | None = match.group("value")  # typeshed says str; an absent group is None
        item_value = value.strip(" \t") if value is not None else None
        _check_param(sx, header.lower(), name, item_value, header)
        items.append((name, item_value))
        pos = match.end()


def _fast_via(text: str, header: str) -> list[Via] | None:
    """``via-parm *(COMMA via-parm)`` without quoted strings: then "," only separates via-parms and the
    first ";" of each starts its parameters."""
    if '"' in text:
        return None
    vias = []
    for part in text.split(","):
        head, semi, rest = part.partition(";")
        head = head.strip(" \t")
        parts = _VIA_HEADS.get(head)
        if parts is None:
            match = syntax().via_head.fullmatch(head)
            if match is None:
                return None
            port_text: str | None = match.group("port")
            parts = (
                match.group("protocol"), match.group("version"), match.group("transport").upper(),
                match.group("host"), int(port_text) if port_text else None,
            )
            _VIA_HEADS.put(head, parts)
        params = EMPTY_PARAMS
        if semi:
            checked = _checked_params(";" + rest, header, "via")
            if checked is None:
                return None
            params = checked
        protocol, version, transport, host, port = parts
        vias.append(Via(transport, host, port, params, protocol, version))
    return vias


# ---------------------------------------------------------------------------------------- holes
# A user agent's Via and From differ from one request to the next only in a token it makes fresh each time:
# the branch (RFC 3261 §8.1.1.7) and the tag (§8.1.1.3). A line of the shape below is read as a template
# seen before plus that token, checked by its own rule (rulings R22).

#: kind of value -> the parameter that holds the per-message token, as it is written in the common case.
_HOLE_MARKERS = {"via": ";branch=", "address": ";tag="}

#: (header, template: the value with the token cut out) -> (parsed element, the parameters before the
#: token's, its name, the parameters after it). Bounded.
_TEMPLATES = Memo()


def hole_in(kind: str, text: str) -> tuple[int, int] | None:
    """Where the per-message token of a one-element Via, From or To value lies, as ``(start, end)``, or
    None when the value is not of the plain shape a template needs.

    Plain shape: no quoted-string where the parameters are (so ";" only separates parameters and a token
    holds none of ";", ",", "=", whitespace or quotes), one element (no ","), and the parameter written
    exactly as ``;branch=`` or ``;tag=``.
    """
    if kind == "via":
        if '"' in text or "," in text:
            return None
        at = text.find(";branch=")
        if at < 0:
            return None
        start = at + 8
    elif kind == "address":
        gt = text.rfind(">")  # an addr-spec in <> holds no ">" (RFC 3261 §25.1): the parameters follow it
        if gt < 0 or text.find('"', gt) >= 0 or text.find(",", gt) >= 0:
            return None
        at = text.find(";tag=", gt)
        if at < 0:
            return None
        start = at + 5
    else:
        return None
    end = text.find(";", start)
    if end < 0:
        end = len(text)
    return (start, end) if start < end else None


def parse_with_hole(spec: HeaderSpec, text: str, hole: tuple[int, int]) -> Any:
    """``parse_value(spec, text)`` for a value with a per-message token at ``hole`` (see ``hole_in``).

    Equal to the general parser: the template (``text`` without the token) was parsed once in full; any
    other token in the same place parses the same way apart from that one parameter value, because a token
    holds no separator. The token itself is checked by its parameter's by-name rule (TOKEN).
    """
    start, end = hole
    token = text[start:end]
    if (_HOLE_TOKEN or _hole_token())(token) is None:
        return parse_value(spec, text)  # not a token: the general parser words the error
    key = (spec.name, text[:start], text[end:])
    known = _TEMPLATES.young.get(key) or _TEMPLATES.get(key)
    if known is None:
        parsed = parse_value(spec, text)
        element = parsed[0] if type(parsed) is list else parsed
        items = element.params.items
        for index, (name, value) in enumerate(items):
            if value == token and f";{name}=" == _HOLE_MARKERS[spec.kind]:
                _TEMPLATES.put(key, (element, items[:index], name, items[index + 1 :]))
                break
        return parsed
    return fill_template(spec.kind, known, token)


Template = tuple[Any, tuple[tuple[str, str | None], ...], str, tuple[tuple[str, str | None], ...]]


def fill_template(kind: str, template: Template, token: str) -> Any:
    """The parsed value of the template's shape with ``token`` (already checked) in the hole."""
    element, before, name, after = template
    element = element.with_params(Params(before + ((name, token),) + after))
    return [element] if kind == "via" else element


class Deferred:
    """A value read through a line template whose objects are not built yet: the line is validated (its
    template was parsed in full and each text in its holes checked), and the parsed value is built on first
    access. A proxy never reads most From and To values, and reads the top Via once (rulings R22)."""

    __slots__ = ("template", "tokens")

    def __init__(self, template: Any, tokens: tuple[str, ...]) -> None:
        self.template = template  # has build(tokens)
        self.tokens = tokens

    def build(self) -> Any:
        return self.template.build(self.tokens)


def is_token(text: str) -> bool:
    return (_HOLE_TOKEN or _hole_token())(text) is not None


def hole_token() -> Callable[[str], Any]:
    """The fullmatch of TOKEN, the rule of both a branch and a tag (see ``_hole_token``)."""
    return _HOLE_TOKEN or _hole_token()


_HOLE_TOKEN: Callable[[str], Any] | None = None


def _hole_token() -> Callable[[str], Any]:
    """TOKEN's fullmatch: both holes are TOKEN by name (via-branch, tag-param: RFC 3261 §25.1)."""
    global _HOLE_TOKEN
    if _HOLE_TOKEN is None:
        checks = syntax().param_checks
        holes = (checks[("via", "branch")], checks[("from", "tag")], checks[("to", "tag")])
        if any(check is None or check[0] != "TOKEN" for check in holes):
            raise AssertionError("grammar/sip-syntax.lark no longer makes branch and tag TOKENs (rulings R22)")
        _HOLE_TOKEN = syntax().token.fullmatch
    return _HOLE_TOKEN


# ---------------------------------------------------------------------------------------- parsers
def _parse_via(text: str, header: str) -> list[Via]:
    fast = _fast_via(text, header)
    return fast if fast is not None else _general_via(text, header)


def _general_via(text: str, header: str) -> list[Via]:
    sx = syntax()
    vias = []
    for match in _elements(sx.via_parm, text, header, "via-parm"):
        port: str | None = match.group("port")
        vias.append(
            Via(
                match.group("transport").upper(),
                match.group("host"),
                int(port) if port else None,
                parse_header_params(match.group("params"), header, "via"),
                match.group("protocol"),
                match.group("version"),
            )
        )
    return vias


def _parse_address(text: str, header: str) -> NameAddr:
    fast = _fast_addresses(text, header, False)
    return fast[0] if fast is not None else _general_address(text, header)


def _general_address(text: str, header: str) -> NameAddr:
    match = syntax().contact_param.fullmatch(text)
    if match is None:
        raise ParseError("malformed address", header=header, rule="name-addr / addr-spec")
    return _address(match, header)


def _parse_contact(text: str, header: str) -> list[NameAddr] | str:
    if text.strip(" \t") == "*":
        return "*"
    fast = _fast_addresses(text, header, True)
    return fast if fast is not None else _general_contacts(text, header)


def _general_contacts(text: str, header: str) -> list[NameAddr]:
    return [_address(m, header) for m in _elements(syntax().contact_param, text, header, "contact-param")]


def _parse_route(text: str, header: str) -> list[NameAddr]:
    fast = _fast_addresses(text, header, True)
    return fast if fast is not None else _general_routes(text, header)


def _general_routes(text: str, header: str) -> list[NameAddr]:
    return [_address(m, header) for m in _elements(syntax().route_param, text, header, "route-param")]


def _parse_text(text: str, header: str) -> str:
    return text


def _parse_int(text: str, header: str) -> int:
    return int(text)


def _parse_cseq(text: str, header: str) -> CSeq:
    match = syntax().cseq.fullmatch(text)  # cseq_value itself, with captures
    if match is None:
        raise ParseError(f"does not match cseq_value ({SPECS['cseq'].rfc})", header=header, rule="cseq_value")
    return CSeq(int(match.group("seq")), match.group("method"))


def _media(match: re.Match[str], header: str) -> MediaType:
    return MediaType(
        match.group("type"), match.group("subtype"), parse_header_params(match.group("params"), header)
    )


def _parse_media(text: str, header: str) -> MediaType:
    match = syntax().media_type.fullmatch(text)
    if match is None:
        raise ParseError("malformed media type", header=header, rule="media-type")
    return _media(match, header)


def _parse_media_list(text: str, header: str) -> list[MediaType]:
    if not text:
        return []
    return [_media(m, header) for m in _elements(syntax().media_type, text, header, "media-range")]


def _parse_tokens(text: str, header: str) -> tuple[str, ...]:
    if not text:
        return ()
    return _split_tokens(text)


def _parse_value_params(text: str, header: str) -> ValueParams:
    value, _, rest = text.partition(";")
    if rest:
        # the value is a token: the first ";" starts the parameters
        value = value.rstrip(" \t")
        return ValueParams(value, parse_header_params(text[len(value) :], header))
    return ValueParams(value)


def _parse_contact_prefs(text: str, header: str) -> list[ValueParams]:
    return [
        ValueParams("*", parse_header_params(m.group("params"), header))
        for m in _elements(syntax().contact_pref, text, header, "ac-value")
    ]


def _parse_reasons(text: str, header: str) -> list[ValueParams]:
    return [
        ValueParams(m.group("protocol"), parse_header_params(m.group("params"), header))
        for m in _elements(syntax().reason_item, text, header, "reason-value")
    ]


def _parse_auth(text: str, header: str) -> Credentials:
    sx = syntax()
    scheme_match = sx.auth_value_head.match(text)
    lws = sx.lws.match(text, scheme_match.end()) if scheme_match is not None else None
    if scheme_match is None or lws is None:
        raise ParseError("malformed credentials or challenge", header=header, rule="auth-scheme LWS auth-param")
    scheme = scheme_match.group(0)
    params = []
    for match in _elements(sx.auth_param, text[lws.end() :], header, "auth-param"):
        name = match.group("name")
        value = match.group(0)[len(name) :].strip(" \t")[1:].strip(" \t")
        params.append((name, value))
    return Credentials(scheme, tuple(params))


_PARSERS: dict[str, Callable[[str, str], Any]] = {
    "via": _parse_via,
    "address": _parse_address,
    "contact": _parse_contact,
    "route": _parse_route,
    "text": _parse_text,
    "int": _parse_int,
    "cseq": _parse_cseq,
    "media": _parse_media,
    "media_list": _parse_media_list,
    "tokens": _parse_tokens,
    "value_params": _parse_value_params,
    "contact_prefs": _parse_contact_prefs,
    "reasons": _parse_reasons,
    "auth": _parse_auth,
}


#: Parsers that walk the whole value element by element with patterns derived from the value rule's own
#: elements (an element, then COMMA, then an element ... to the end): matching them is matching the rule.
_WALKERS = frozenset(
    {"via", "address", "contact", "route", "media", "media_list", "contact_prefs", "reasons", "auth", "cseq"}
)


def parse_value(spec: HeaderSpec, text: str) -> Any:
    """Validate ``text`` against the header's grammar rule and build its value (hot path)."""
    parser = _VALUE_PARSERS.get(spec.name)
    if parser is None:
        parser = _VALUE_PARSERS[spec.name] = _value_parser(spec)
    return parser(text)


_VALUE_PARSERS: dict[str, Callable[[str], Any]] = {}


def _value_parser(spec: HeaderSpec) -> Callable[[str], Any]:
    build = _PARSERS[spec.kind]
    name = spec.name
    empty_allowed = spec.kind in ("media_list", "tokens") and spec.rule in _EMPTY_ALLOWED
    if spec.kind in _WALKERS and not empty_allowed:
        return lambda text: build(text, name)
    fullmatch = syntax().values[spec.rule].fullmatch

    def parse(text: str) -> Any:
        if not text and empty_allowed:
            return build(text, name)
        if fullmatch(text) is None:
            raise ParseError(f"does not match {spec.rule} ({spec.rfc})", header=name, rule=spec.rule)
        return build(text, name)

    return parse


def validate_extension(name: str, text: str) -> None:
    """An extension header (RFC 3261 §25.1 extension-header): header-value = *(TEXT-UTF8char / UTF8-CONT / LWS)."""
    if text and syntax().values["extension_value"].fullmatch(text) is None:
        raise ParseError("value holds characters outside TEXT-UTF8", header=name, rule="header-value")


#: Headers whose grammar allows an empty value (Accept, Allow, Supported: "[ ... ]").
_EMPTY_ALLOWED = frozenset({"accept_value", "allow_value", "supported_value"})
