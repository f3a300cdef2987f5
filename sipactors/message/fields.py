"""Parsed header-field values (RFC 3261 §20 and the extension RFCs): immutable, comparable, renderable.

``render()`` gives the canonical text of a value; a message re-serialised from these values parses back
to equal values (tests/message/test_roundtrip.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from sipactors.message.params import EMPTY_PARAMS, Params, unquote
from sipactors.message.uri import URI, SipURI

#: RFC 3261 §8.1.1.7: the branch of a transaction created by an RFC 3261 element starts with this.
MAGIC_COOKIE = "z9hG4bK"


@dataclass(frozen=True, slots=True)
class NameAddr:
    """``[display-name] <addr-spec>;params`` or a bare ``addr-spec;params`` (RFC 3261 §20.10)."""

    uri: URI
    display_name: str | None = None  # as written: a quoted-string keeps its quotes
    params: Params = EMPTY_PARAMS
    bracketed: bool = True

    @property
    def display(self) -> str | None:
        """The display name as text (quotes and escapes removed), or None."""
        return unquote(self.display_name)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def render(self) -> str:
        if self.bracketed or self.display_name is not None:
            display = f"{self.display_name} " if self.display_name is not None else ""
            return f"{display}<{self.uri.render()}>{self.params.render()}"
        return f"{self.uri.render()}{self.params.render()}"

    def __str__(self) -> str:
        return self.render()

    def with_params(self, params: Params) -> NameAddr:
        return NameAddr(self.uri, self.display_name, params, self.bracketed)


@dataclass(frozen=True, slots=True)
class Via:
    """One via-parm (RFC 3261 §20.42): ``SIP/2.0/UDP host:port;branch=...``."""

    transport: str  # upper case, e.g. "UDP"
    host: str
    port: int | None = None
    params: Params = EMPTY_PARAMS
    protocol: str = "SIP"
    version: str = "2.0"

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    @property
    def rfc3261_branch(self) -> bool:
        """True if the branch carries the RFC 3261 magic cookie (§17.2.3)."""
        branch = self.branch
        return branch is not None and branch.startswith(MAGIC_COOKIE)

    @property
    def sent_by(self) -> tuple[str, int | None]:
        return self.host, self.port

    def render(self) -> str:
        port = f":{self.port}" if self.port is not None else ""
        return f"{self.protocol}/{self.version}/{self.transport} {self.host}{port}{self.params.render()}"

    def __str__(self) -> str:
        return self.render()

    def with_params(self, params: Params) -> Via:
        return Via(self.transport, self.host, self.port, params, self.protocol, self.version)


@dataclass(frozen=True, slots=True)
class CSeq:
    """``CSeq: 4711 INVITE`` (RFC 3261 §20.16)."""

    seq: int
    method: str

    def render(self) -> str:
        return f"{self.seq} {self.method}"

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True, slots=True)
class MediaType:
    """``type/subtype;params`` of Content-Type and Accept (RFC 3261 §20.1, §20.15)."""

    type: str
    subtype: str
    params: Params = EMPTY_PARAMS

    @property
    def mime(self) -> str:
        return f"{self.type}/{self.subtype}".lower()

    def render(self) -> str:
        return f"{self.type}/{self.subtype}{self.params.render()}"

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True, slots=True)
class ValueParams:
    """A token with parameters: Event, Subscription-State, Reason, Accept-Contact's ``*`` (RFC 6665, 3326, 3841)."""

    value: str
    params: Params = EMPTY_PARAMS

    def render(self) -> str:
        return f"{self.value}{self.params.render()}"

    def __str__(self) -> str:
        return self.render()


@dataclass(frozen=True, slots=True)
class Credentials:
    """Authorization / WWW-Authenticate style value: a scheme and its auth-params (RFC 3261 §20.7, §20.44)."""

    scheme: str
    params: tuple[tuple[str, str], ...]

    def get(self, name: str) -> str | None:
        """The unquoted value of auth-param ``name``."""
        key = name.lower()
        for param_name, value in self.params:
            if param_name.lower() == key:
                return unquote(value)
        return None

    def render(self) -> str:
        return f"{self.scheme} " + ", ".join(f"{name}={value}" for name, value in self.params)

    def __str__(self) -> str:
        return self.render()


Star = str  # the "*" of Contact: * (RFC 3261 §10.2.2) is represented by the string "*"

__all__ = ["NameAddr", "Via", "CSeq", "MediaType", "ValueParams", "Credentials", "MAGIC_COOKIE", "SipURI"]
