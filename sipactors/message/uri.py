"""SIP, SIPS, tel and other URIs (RFC 3261 §19.1, RFC 3966, RFC 3986 via RFC 3261's absoluteURI).

Text is kept as ISO-8859-1 strings (one character per octet, see spec/rulings.md), with %HH escapes left
as written: RFC 3261 §19.1.4 compares URIs after unescaping, which ``equivalent`` does, but a proxy must
forward what it received.
"""

from __future__ import annotations

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

    @property
    def secure(self) -> bool:
        return self.scheme == "sips"

    def render(self) -> str:
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
        """RFC 3261 §19.1.4 URI comparison."""
        if not isinstance(other, SipURI) or self.scheme != other.scheme:
            return False
        if unescape(self.user or "") != unescape(other.user or ""):
            return False
        if unescape(self.password or "") != unescape(other.password or ""):
            return False
        if self.host.lower() != other.host.lower() or self.port != other.port:
            return False
        # Parameters present in both must match; user, ttl, method, maddr (and transport) must be in both.
        mine = {n.lower(): unescape(v).lower() if v is not None else None for n, v in self.params}
        theirs = {n.lower(): unescape(v).lower() if v is not None else None for n, v in other.params}
        for name in mine.keys() & theirs.keys():
            if mine[name] != theirs[name]:
                return False
        for name in ("user", "ttl", "method", "maddr", "transport"):
            if (name in mine) != (name in theirs):
                return False
        mine_h = {unescape(n).lower(): unescape(v) for n, v in self.headers}
        theirs_h = {unescape(n).lower(): unescape(v) for n, v in other.headers}
        return mine_h == theirs_h


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
