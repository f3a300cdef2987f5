"""What the store keeps, and the small interfaces (DESIGN §4) through which roles keep it.

* ``LocationStore``: the location service of RFC 3261 §10: bindings of an address-of-record (AOR) to contact
  addresses, with what a registrar needs to refresh, order and route to them (q, Call-ID/CSeq §10.3 step 7,
  Path RFC 3327, ``+sip.instance``/``reg-id`` RFC 5626, feature parameters RFC 3840, the source of the
  REGISTER for NAT traversal).
* ``UserStore``: digest credentials. Only HA1 = H(username ":" realm ":" password) per algorithm (RFC 7616
  §3.4.2) is kept, never the password.

Two rules hold for every implementation:

1. Time is an argument (``now``: POSIX seconds, the wall clock, because bindings outlive the process and a
   monotonic clock restarts with the machine); no implementation reads a clock.
2. A binding is identified within its AOR by its contact URI under RFC 3261 §19.1.4 equality (§10.3 step 6),
   not by its text; the changes of one REGISTER are applied all together or not at all (``apply``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from sipactors.message import AbsoluteURI, ParseError, SipURI, TelURI, parse_uri, unescape

__all__ = [
    "Binding", "Change", "LocationStore", "Put", "Remove", "RemoveAll", "Source", "Store", "User", "UserStore",
    "canonical_aor", "same_contact", "without_port",
]


@dataclass(frozen=True, slots=True)
class Source:
    """Where a REGISTER came from (RFC 3261 §18.2.1 received/rport, RFC 3581; RFC 5626 flows)."""

    transport: str  # "udp", "tcp", ... lower case
    host: str
    port: int


@dataclass(frozen=True, slots=True)
class Binding:
    """One contact address bound to an AOR (RFC 3261 §10.2.1, §10.3)."""

    aor: str  # canonical_aor() of the To URI (§10.3 step 5)
    contact: str  # the Contact URI, as text
    expires: float  # absolute, POSIX seconds; expired when expires <= now
    call_id: str
    cseq: int
    contact_header: str = ""  # the whole Contact header field value, so the registrar can echo its params
    q: float | None = None  # None: the Contact had no q parameter
    path: tuple[str, ...] = ()  # RFC 3327 Path URIs, in the order of the REGISTER's Path header fields
    instance: str | None = None  # RFC 5626 +sip.instance value, as written (e.g. '"<urn:uuid:...>"')
    reg_id: int | None = None  # RFC 5626 reg-id
    params: tuple[tuple[str, str | None], ...] = ()  # the contact's parameters (RFC 3840 feature tags among them)
    source: Source | None = None
    updated: float = 0.0  # when the binding was last written, POSIX seconds

    def __post_init__(self) -> None:
        if not self.aor or not self.contact:
            raise ValueError("a binding needs an AOR and a contact")
        if self.q is not None and not 0.0 <= self.q <= 1.0:
            raise ValueError(f"q must be between 0 and 1 (RFC 3261 §20.10), not {self.q}")
        if isinstance(self.path, list):  # accept a list, keep a tuple (the dataclass is frozen and hashable)
            object.__setattr__(self, "path", tuple(self.path))
        if isinstance(self.params, list):
            object.__setattr__(self, "params", tuple(self.params))

    def order_key(self) -> tuple[float, float, str]:
        """Highest q first (a Contact without q counts as 1.0, the top of §20.10's range, as it is in most
        proxies), then the most recently updated, then the contact text so the order is total."""
        return (-(1.0 if self.q is None else self.q), -self.updated, self.contact)


@dataclass(frozen=True, slots=True)
class Put:
    """Insert ``binding``, replacing every binding of its AOR whose contact URI equals its contact."""

    binding: Binding


@dataclass(frozen=True, slots=True)
class Remove:
    """Remove the bindings of the AOR whose contact URI equals ``contact`` (Expires 0, §10.3 step 7)."""

    contact: str


@dataclass(frozen=True, slots=True)
class RemoveAll:
    """Remove every binding of the AOR (``Contact: *`` with Expires 0, §10.3 step 6)."""


Change = Put | Remove | RemoveAll


@dataclass(frozen=True, slots=True)
class User:
    """A user who may register (its credentials are looked up with ``UserStore.get``)."""

    user: str
    domain: str
    realm: str
    algorithms: tuple[str, ...] = field(default=())  # the algorithms an HA1 is stored for, sorted


class LocationStore(Protocol):
    def bindings(self, aor: str, now: float) -> list[Binding]:
        """The unexpired bindings of ``aor``, in ``Binding.order_key`` order."""
        ...

    def apply(self, aor: str, changes: Sequence[Change]) -> None:
        """Carry out ``changes`` in order, as one transaction: all of them or, if any raises, none."""
        ...

    def apply_batch(self, batch: Sequence[tuple[str, Sequence[Change]]]) -> list[Exception | None]:
        """``apply`` for each (AOR, changes) of ``batch``, all committed together (one fsync: group commit);
        each item is all-or-nothing on its own: the result holds, in order, None or the error that undid it."""
        ...

    def put(self, binding: Binding) -> None: ...

    def remove(self, aor: str, contact: str) -> int:
        """Remove the bindings whose contact equals ``contact``; how many there were."""
        ...

    def remove_all(self, aor: str) -> int: ...

    def remove_expired(self, aor: str, contact: str, expires: float) -> int:
        """Remove the bindings whose contact equals ``contact`` and whose ``expires`` is not after ``expires``
        (a binding whose interval ran out, RFC 3261 §10.2.2; a refresh committed since, with a later expiry,
        stays); how many."""
        ...

    def purge(self, now: float) -> int:
        """Delete every expired binding; how many."""
        ...

    def all_aors(self, now: float) -> list[str]:
        """The AORs with at least one unexpired binding, sorted."""
        ...


class UserStore(Protocol):
    def add(self, user: str, domain: str, realm: str, ha1_by_algorithm: Mapping[str, str]) -> bool:
        """Store (or replace) the HA1s of ``user`` in ``realm``; True if the user is new."""
        ...

    def remove(self, user: str, realm: str | None = None) -> int:
        """Remove ``user`` from ``realm`` (from every realm if None); how many entries went."""
        ...

    def get(self, user: str, realm: str) -> dict[str, str] | None:
        """HA1 (lower-case hex) by algorithm name (``MD5``, ``SHA-256``, ...), or None for an unknown user."""
        ...

    def list(self) -> list[User]: ...

    def any(self) -> bool:
        """Whether any user exists (with none, the server runs open: no authentication)."""
        ...


class Store(Protocol):
    """Every kind of state one node keeps, opened together from one URL (``open_store``)."""

    @property
    def locations(self) -> LocationStore: ...

    @property
    def users(self) -> UserStore: ...

    def close(self) -> None: ...


@functools.lru_cache(maxsize=16_384)
def without_port(aor: str) -> str:
    """``aor`` (canonical) without its port: the resource a presence subscription, a PUBLISH or a stored
    MESSAGE names. The server only takes such requests for its own domains with no port or one of its
    own (the port names this server, not the user: clients register ``sip:user@domain`` and address
    ``sip:user@domain:port``, as the proxy's location lookup allows)."""
    try:
        uri = parse_uri(aor, "AOR")
    except ParseError:
        return aor
    if not isinstance(uri, SipURI) or uri.port is None:
        return aor
    return canonical_aor(SipURI(uri.scheme, uri.host, uri.user).render())


def canonical_aor(uri: str) -> str:
    """RFC 3261 §10.3 step 5: the To URI without its parameters and headers, escapes expanded.

    Cached (a pure function of the text): the registrar asks it twice per REGISTER, mostly for the same
    AORs over and over, and parsing the URI again was ~4 % of the server's CPU time per REGISTER.

    The scheme and host are lower case (§19.1.4: all but userinfo compare case-insensitively); the user
    keeps its case; a port stays (§19.1.4: ``sip:carol@chicago.com`` and ``sip:carol@chicago.com:5060`` are
    different URIs), a password goes. ``ValueError`` if ``uri`` is not a URI.
    """
    try:
        parsed = parse_uri(uri.strip(), "To")
    except ParseError as error:
        raise ValueError(f"not a URI: {uri!r} ({error})") from None
    if isinstance(parsed, SipURI):
        user = f"{unescape(parsed.user)}@" if parsed.user is not None else ""
        port = f":{parsed.port}" if parsed.port is not None else ""
        return f"{parsed.scheme}:{user}{parsed.host.lower()}{port}"
    if isinstance(parsed, TelURI):
        # RFC 3966 §5.1.1: visual separators carry no meaning; a local number keeps its phone-context.
        context = parsed.params.get("phone-context")
        number = re.sub(r"[-.()]", "", parsed.number).lower()
        return f"tel:{number}" + (f";phone-context={context.lower()}" if context is not None else "")
    assert isinstance(parsed, AbsoluteURI)
    return unescape(parsed.text)


def _contact_uri(contact: str) -> SipURI | TelURI | AbsoluteURI:
    try:
        return parse_uri(contact.strip(), "Contact")
    except ParseError as error:
        raise ValueError(f"not a contact URI: {contact!r} ({error})") from None


def same_contact(a: str, b: str) -> bool:
    """Whether two contact URIs (as text) name one binding: RFC 3261 §10.3 step 6, by §19.1.4 equality.
    The same text is the same URI without parsing (a refresh usually repeats its Contact as it was)."""
    return a == b or _contact_uri(a).equivalent(_contact_uri(b))


def check_contact(contact: str) -> None:
    """``ValueError`` unless ``contact`` is a URI: a store never keeps a contact it could not compare."""
    _contact_uri(contact)


def check_change(aor: str, change: Change) -> None:
    """What every implementation checks of a change just before it carries it out (so a bad change in the
    middle of ``apply`` undoes the ones before it)."""
    if isinstance(change, Put):
        if change.binding.aor != aor:
            raise ValueError(f"a binding of {change.binding.aor!r} in a change of {aor!r}")
        check_contact(change.binding.contact)
    elif isinstance(change, Remove):
        check_contact(change.contact)
    elif not isinstance(change, RemoveAll):
        raise TypeError(f"not a change: {change!r}")


_HEX = re.compile(r"[0-9a-fA-F]+")


def checked_ha1s(ha1_by_algorithm: Mapping[str, str]) -> dict[str, str]:
    """Algorithm names in upper case (RFC 7616 §3.3 names them so), HA1s as lower-case hex."""
    if not ha1_by_algorithm:
        raise ValueError("at least one HA1 is needed")
    checked: dict[str, str] = {}
    for algorithm, ha1 in ha1_by_algorithm.items():
        if not algorithm or not _HEX.fullmatch(ha1):
            raise ValueError(f"HA1 for {algorithm!r} is not hexadecimal")
        checked[algorithm.upper()] = ha1.lower()
    return checked


def check_user(user: str, domain: str, realm: str) -> None:
    if not user or not domain or not realm:
        raise ValueError("a user needs a name, a domain and a realm")
