"""SIP, SIPS, tel and other URIs (RFC 3261 §19.1, RFC 3966, RFC 3986 via RFC 3261's absoluteURI).

Text is kept as ISO-8859-1 strings (one character per octet, see spec/rulings.md), with %HH escapes left
as written: RFC 3261 §19.1.4 compares URIs after unescaping, which ``equivalent`` does, but a proxy must
forward what it received.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from sipactors.message.params import EMPTY_PARAMS, Params

_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")


def unescape(text: str) -> str:
    """Expand %HH escapes once (RFC 4475 §3.1.1.3: never recursively)."""
    return _ESCAPE.sub(lambda m: chr(int(m.group(1), 16)), text)


@dataclass(frozen=True, slots=True)
class SipURI:
    """``sip:`` or ``sips:`` URI: ``scheme:user:password@host:port;params?headers``."""

    scheme: str  # "sip" or "sips", lower case
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = EMPTY_PARAMS
    headers: tuple[tuple[str, str], ...] = ()
    # the rendered text, made on first use: the URI never changes, and a proxy renders the same
    # Request-URI several times per request (loop hash, target set, forwarded request line)
    _text: str | None = field(default=None, init=False, repr=False, compare=False, hash=False)

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    def render(self) -> str:
        text = self._text
        if text is None:
            text = self._render()
            object.__setattr__(self, "_text", text)
        return text

    def _render(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        port = f":{self.port}" if self.port is not None else ""
        headers = ""
        if self.headers:
            headers = "?" + "&".join(f"{name}={value}" for name, value in self.headers)
        return f"{self.scheme}:{userinfo}{self.host}{port}{self.params.render()}{headers}"

    def __str__(self) -> str:
        return self.render()

    @property
    def is_bare_safe(self) -> bool:
        """True if the URI may appear outside <> (RFC 3261 §20.10: no ",", "?" or ";")."""
        return not self.params and not self.headers and not any(c in (self.user or "") for c in ",;?")

    def with_params(self, params: Params) -> SipURI:
        return SipURI(self.scheme, self.host, self.user, self.password, self.port, params, self.headers)

    def equivalent(self, other: object) -> bool:
        """RFC 3261 §19.1.4 URI comparison, rule by rule (so it is not transitive, as the RFC notes).

        Userinfo is compared case-sensitively, everything else case-insensitively; an escape of an
        unreserved character equals the character, an escaped reserved character does not equal the bare one.
        A component with a default value (port, transport, user, ttl, method) and maddr must be in both or in
        neither; any other parameter counts only when both URIs carry it; headers must all be in both.
        """
        if not isinstance(other, SipURI) or self.scheme != other.scheme:
            return False
        if _normal_escapes(self.user) != _normal_escapes(other.user):
            return False
        if _normal_escapes(self.password) != _normal_escapes(other.password):
            return False
        if _normal_host(self.host) != _normal_host(other.host) or self.port != other.port:
            return False
        mine, theirs = _normal_params(self.params), _normal_params(other.params)
        if mine is None or theirs is None:
            return False
        for name in mine.keys() & theirs.keys():
            if mine[name] != theirs[name]:
                return False
        if any((name in mine) != (name in theirs) for name in _PARAMS_IN_BOTH):
            return False
        # §19.1.4 leaves header values to each header's rules (§20); compared as text after unescaping.
        mine_h = sorted((_normal_escapes(n) or "").lower() + "=" + (_normal_escapes(v) or "") for n, v in self.headers)
        theirs_h = sorted((_normal_escapes(n) or "").lower() + "=" + (_normal_escapes(v) or "") for n, v in other.headers)
        return mine_h == theirs_h


# RFC 2396 §2.2 "reserved": an escape of one of these is not the same as the character itself.
_RESERVED = frozenset(";/?:@&=+$,")
# §19.1.4: "a URI omitting any component with a default value will not match a URI explicitly containing
# that component ... The same is true for the transport-parameter, ttl-parameter, user-parameter, and
# method components", and "a URI that includes an maddr parameter will not match a URI that contains no
# maddr parameter".
_PARAMS_IN_BOTH = ("transport", "user", "ttl", "method", "maddr")


def _normal_escapes(text: str | None) -> str | None:
    """``%HH`` of an unreserved character becomes the character; an escaped reserved one keeps its escape,
    with upper-case hex digits (``%3b`` equals ``%3B``)."""
    if text is None:
        return None

    def one(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        return "%" + match.group(1).upper() if char in _RESERVED else char

    return _ESCAPE.sub(one, text)


def _normal_host(host: str) -> str:
    """Host names and IPv4 addresses compare case-insensitively; IPv6 references by address (RFC 5954 §4.2:
    ``[::1]`` and ``[0:0::1]`` are one host)."""
    if host.startswith("["):
        try:
            return "[" + str(ipaddress.IPv6Address(host[1:-1])) + "]"
        except ValueError:
            return host.lower()
    return host.lower()


def _normal_params(params: Params) -> dict[str, str | None] | None:
    """Names and values, unescaped and in lower case; ``None`` if a name appears twice with different values
    (such a URI is ambiguous and equals nothing)."""
    normal: dict[str, str | None] = {}
    for name, value in params:
        key = (_normal_escapes(name) or "").lower()
        folded = (_normal_escapes(value) or "").lower() if value is not None else None
        if key in normal and normal[key] != folded:
            return None
        normal[key] = folded
    return normal


@dataclass(frozen=True, slots=True)
class TelURI:
    """``tel:`` URI (RFC 3966 §3): the number and its parameters."""

    number: str
    params: Params = EMPTY_PARAMS
    scheme: str = field(default="tel")

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    def render(self) -> str:
        return f"tel:{self.number}{self.params.render()}"

    def __str__(self) -> str:
        return self.render()

    def equivalent(self, other: object) -> bool:
        """RFC 3966 §4: visual separators are ignored, parameters compared case-insensitively."""
        if not isinstance(other, TelURI):
            return False
        strip = re.compile(r"[-.()]")
        return strip.sub("", self.number).lower() == strip.sub("", other.number).lower() and {
            (n.lower(), (v or "").lower()) for n, v in self.params
        } == {(n.lower(), (v or "").lower()) for n, v in other.params}


@dataclass(frozen=True, slots=True)
class AbsoluteURI:
    """Any other URI (RFC 3261 absoluteURI): kept as text; only the scheme is split off."""

    scheme: str  # lower case
    text: str  # the whole URI as written

    def render(self) -> str:
        return self.text

    def __str__(self) -> str:
        return self.text

    def equivalent(self, other: object) -> bool:
        return isinstance(other, AbsoluteURI) and unescape(self.text).lower() == unescape(other.text).lower()


URI = SipURI | TelURI | AbsoluteURI


def local_number_problem(subscriber: str, descriptor: re.Pattern[str]) -> str | None:
    """RFC 3966 §5.1.5: "Local numbers MUST have a 'phone-context' parameter" whose value is a descriptor.

    ``subscriber`` is a telephone-subscriber the grammar accepted (its parameters are split at every ";",
    rulings R20); ``descriptor`` is the grammar's DESCRIPTOR pattern, so each parser checks with its own.
    """
    number, _, rest = subscriber.partition(";")
    if number.startswith("+"):
        return None
    for piece in rest.split(";") if rest else ():
        name, eq, value = piece.partition("=")
        if eq and name.lower() == "phone-context" and descriptor.fullmatch(value):
            return None
    return "local number without a phone-context (RFC 3966 5.1.5)"
