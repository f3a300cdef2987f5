"""Digest authentication of SIP requests (RFC 3261 §22 as updated by RFC 8760, with RFC 7616's Digest).

The server side only, sans-IO like the rest of ``roles/`` (DESIGN §1): the time is the ``now`` argument,
the entropy of a nonce is the ``salt`` argument and the key that signs nonces is the ``secret`` given at
construction, so nothing here reads a clock or a random source.

Rules of the module:

1. **Only HA1 is stored** (RFC 7616 §5.2): a user's record (:class:`StoredCredentials`) holds one
   ``H(username ":" realm ":" password)`` per algorithm, never the password.
2. **Nonces are stateless** (RFC 7616 §3.3, §5.4): ``base64(timestamp || HMAC(secret, timestamp || salt ||
   realm) || salt)``, so any node holding the secret verifies a nonce another node issued. The only state is
   the highest nonce-count seen per nonce (RFC 7616 §3.4 ``nc``, §5.5) and the failure counts of the
   throttle, both bounded in size and in time.
3. **Every verdict maps to one answer by a table** (:data:`ANSWERS`): re-challenge (401 for user-to-user,
   RFC 3261 §22.2; 407 for proxy-to-user, §22.3), with ``stale=true`` when only the nonce is at fault
   (RFC 7616 §3.3), ``400`` for malformed credentials or a ``uri`` that is not the Request-URI (RFC 7616
   §3.4, §3.4.6), ``403`` while a source is throttled (RFC 3261 §22.1).

Challenges offer every configured algorithm in order of preference, SHA-256 before MD5 (RFC 8760 §2.3,
RFC 7616 §3.7), each with ``qop="auth"`` (RFC 8760 §2.6 item 8).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any
from urllib.parse import unquote_to_bytes

from sipactors.message import Credentials, ParseError, Request, parse_uri, quote

__all__ = [
    "ALGORITHMS", "ANSWERS", "Answer", "Authenticator", "CountResult", "Decision", "DigestPolicy", "Exchange", "Lookup",
    "NEVER_CHALLENGED", "NonceCounts", "NonceMint", "NonceState", "PROXY_TO_USER", "StoredCredentials",
    "Throttle", "USER_TO_USER", "Verdict", "challenge_values", "ha1", "request_digest", "source_of", "user_lookup",
    "userhash",
]

log = logging.getLogger(__name__)

#: The hash functions of the "Hash Algorithms for HTTP Digest Authentication" registry (RFC 7616 §6.1)
#: that RFC 8760 §2.1 opens to SIP. The ``-sess`` variants use the same function (RFC 7616 §3.3).
ALGORITHMS: dict[str, Callable[[bytes], str]] = {
    "MD5": lambda data: hashlib.md5(data).hexdigest(),  # noqa: S324 - RFC 7616 §3.7: backward compatibility
    "SHA-256": lambda data: hashlib.sha256(data).hexdigest(),
    "SHA-512-256": lambda data: hashlib.new("sha512_256", data).hexdigest(),
}

#: RFC 3261 §22.1: "Servers MUST NOT attempt to challenge an ACK" nor a CANCEL (it cannot be resubmitted).
NEVER_CHALLENGED = frozenset({"ACK", "CANCEL"})

_SESSION_SUFFIX = "-sess"
#: RFC 7616 §3.4: nc-value is 8LHEX.
_NC = re.compile(r"[0-9a-fA-F]{8}")
#: Domain separation of the two things the secret signs, so an opaque can never pass for a nonce.
_NONCE_LABEL = b"sipactors digest nonce\x00"
_OPAQUE_LABEL = b"sipactors digest opaque\x00"
_STAMP_BYTES = 8  # microseconds since the epoch of ``now``, unsigned big-endian
_MAC_BYTES = 32  # HMAC-SHA-256
_SALT_RANGE = range(8, 33)  # enough to make each nonce unique (RFC 7616 §3.3), little enough for a header


def _base(algorithm: str) -> str:
    """``SHA-256-sess`` → ``SHA-256``; case-insensitive, as the registry's names are tokens."""
    name = algorithm.upper()
    return name[: -len(_SESSION_SUFFIX)] if name.endswith(_SESSION_SUFFIX.upper()) else name


def _hash(algorithm: str) -> Callable[[bytes], str]:
    try:
        return ALGORITHMS[_base(algorithm)]
    except KeyError:
        raise ValueError(f"unknown digest algorithm {algorithm!r}") from None


def _canonical_algorithm(algorithm: str) -> str:
    base = _base(algorithm)
    return base + _SESSION_SUFFIX if algorithm.upper().endswith(_SESSION_SUFFIX.upper()) else base


# ------------------------------------------------------------------------------------- computations
def ha1(
    username: str, realm: str, password: str, algorithm: str = "SHA-256", *,
    nonce: str | None = None, cnonce: str | None = None,
) -> str:
    """``H(A1)`` (RFC 7616 §3.4.2): ``H(username ":" realm ":" password)``; for a ``-sess`` algorithm
    ``H(H(username ":" realm ":" password) ":" nonce ":" cnonce)``, which needs the nonce and cnonce."""
    digest = _hash(algorithm)
    plain = digest(f"{username}:{realm}:{password}".encode())
    if not algorithm.upper().endswith(_SESSION_SUFFIX.upper()):
        return plain
    if nonce is None or cnonce is None:
        raise ValueError(f"{algorithm} needs the nonce and the cnonce (RFC 7616 §3.4.2)")
    return _session_ha1(plain, algorithm, nonce, cnonce)


def _session_ha1(stored: str, algorithm: str, nonce: str, cnonce: str) -> str:
    """The ``-sess`` HA1 from the stored one: the server never needs the password (RFC 7616 §3.4.2)."""
    return _hash(algorithm)(f"{stored}:{nonce}:{cnonce}".encode())


def userhash(username: str, realm: str, algorithm: str = "SHA-256") -> str:
    """The hashed username ``H(username ":" realm)`` (RFC 7616 §3.4.4)."""
    return _hash(algorithm)(f"{username}:{realm}".encode())


def request_digest(
    ha1_value: str, algorithm: str, nonce: str, nc: str, cnonce: str, method: str, uri: str, qop: str = "auth",
) -> str:
    """The ``response`` for qop=auth (RFC 7616 §3.4.1, §3.4.3): ``KD(H(A1), nonce ":" nc ":" cnonce ":"
    qop ":" H(method ":" uri))`` with ``KD(secret, data) = H(secret ":" data)``. A client computes the same
    value from ``ha1(...)``; so do the tests."""
    if qop != "auth":
        raise ValueError("only qop=auth is supported (auth-int needs the body; RFC 7616 §3.4.3)")
    digest = _hash(algorithm)
    ha2 = digest(f"{method}:{uri}".encode())
    return digest(f"{ha1_value}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode())


@dataclass(frozen=True, slots=True)
class StoredCredentials:
    """What the store keeps of one user in one realm (RFC 7616 §5.2): an HA1 per base algorithm.

    ``from_password`` is the only place a password passes through, and it is not kept.
    """

    username: str
    realm: str
    ha1s: tuple[tuple[str, str], ...]  # (base algorithm, hex HA1), e.g. ("SHA-256", "7987...")

    @classmethod
    def from_password(
        cls, username: str, realm: str, password: str, algorithms: Iterable[str] = ("SHA-256", "MD5"),
    ) -> StoredCredentials:
        bases = dict.fromkeys(_base(algorithm) for algorithm in algorithms)
        return cls(username, realm, tuple((name, ha1(username, realm, password, name)) for name in bases))

    def ha1_for(self, algorithm: str) -> str | None:
        """The stored HA1 of ``algorithm``'s base (``SHA-256-sess`` uses the SHA-256 one), or None."""
        base = _base(algorithm)
        for name, value in self.ha1s:
            if name == base:
                return value
        return None


#: Find a user's record: ``lookup(username, realm)``; a store (issue 4) provides it.
Lookup = Callable[[str, str], StoredCredentials | None]


def user_lookup(users: Any) -> Lookup:
    """The ``Lookup`` of a user store (``sipactors.store.UserStore``): its HA1s of a user in a realm."""

    def lookup(username: str, realm: str) -> StoredCredentials | None:
        ha1s = users.get(username, realm)
        return StoredCredentials(username, realm, tuple(sorted(ha1s.items()))) if ha1s is not None else None

    return lookup


def source_of(request: Request) -> str:
    """Who sent a request, for the throttle: the top Via's ``received`` (stamped by the transport layer
    when it differs from the sent-by, RFC 3261 §18.2.1), else its sent-by host."""
    top = request.via[0]
    return top.params.get("received") or top.host


# -------------------------------------------------------------------------------------------- nonces
class NonceState(Enum):
    VALID = "valid"
    STALE = "stale"  # ours, untouched, but older than the lifetime: the client may retry silently
    INVALID = "invalid"  # not ours: another secret, another realm, tampered, or not even base64


class NonceMint:
    """Issues and checks nonces ``base64(stamp || HMAC-SHA-256(secret, label || stamp || salt || realm) ||
    salt)`` (RFC 7616 §3.3's suggested ``timestamp H(timestamp ":" ... ":" secret-data)``, with an HMAC).

    - the stamp (microseconds of ``now``) gives the lifetime check without a table (RFC 7616 §5.4);
    - the salt, fresh per challenge from the caller, makes each nonce unique even within one microsecond
      (RFC 7616 §3.3 "uniquely generated each time a 401 response is made");
    - the realm is signed so a nonce challenged for one domain is no good in another;
    - the client's address is *not* signed: requests from one user often come through different proxies
      (RFC 7616 §3.3).

    With several nodes the secret is shared and ``now`` must be wall-clock time on every node; ``skew`` is
    how far ahead of this node's clock another node's stamp may be.
    """

    def __init__(self, secret: bytes, lifetime: float = 300.0, skew: float = 5.0) -> None:
        if len(secret) < 16:
            raise ValueError("the nonce secret needs at least 16 bytes")
        if lifetime <= 0:
            raise ValueError("the nonce lifetime must be positive")
        self._secret = secret
        self.lifetime = lifetime
        self.skew = skew

    def _mac(self, stamp: bytes, salt: bytes, realm: str) -> bytes:
        return hmac.new(self._secret, _NONCE_LABEL + stamp + salt + realm.encode(), hashlib.sha256).digest()

    def issue(self, realm: str, now: float, salt: bytes) -> str:
        if len(salt) not in _SALT_RANGE:
            raise ValueError(f"the nonce salt must be {_SALT_RANGE.start} to {_SALT_RANGE.stop - 1} bytes")
        if now < 0:
            raise ValueError("now must be wall-clock seconds (it is signed into the nonce)")
        stamp = int(now * 1_000_000).to_bytes(_STAMP_BYTES, "big")
        return base64.b64encode(stamp + self._mac(stamp, salt, realm) + salt).decode("ascii")

    def issued_at(self, nonce: str, realm: str) -> float | None:
        """When the nonce was issued, if it is ours for ``realm``; None otherwise."""
        try:
            raw = base64.b64decode(nonce.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError):
            return None
        if len(raw) - _STAMP_BYTES - _MAC_BYTES not in _SALT_RANGE:
            return None
        stamp, mac, salt = raw[:_STAMP_BYTES], raw[_STAMP_BYTES : _STAMP_BYTES + _MAC_BYTES], raw[_STAMP_BYTES + _MAC_BYTES :]
        if not hmac.compare_digest(mac, self._mac(stamp, salt, realm)):
            return None
        return int.from_bytes(stamp, "big") / 1_000_000

    def verify(self, nonce: str, realm: str, now: float) -> NonceState:
        """VALID, STALE (ours and intact but older than the lifetime) or INVALID (RFC 7616 §3.3 ``stale``)."""
        issued = self.issued_at(nonce, realm)
        if issued is None or issued > now + self.skew:
            return NonceState.INVALID  # a stamp from the future was not signed by a node we trust the clock of
        return NonceState.STALE if now - issued > self.lifetime else NonceState.VALID

    def opaque(self, realm: str) -> str:
        """The ``opaque`` of ``realm`` (RFC 7616 §3.3): fixed per realm and secret, so every node agrees and
        a client returning another one is answering someone else's challenge."""
        mac = hmac.new(self._secret, _OPAQUE_LABEL + realm.encode(), hashlib.sha256).digest()
        return base64.b64encode(mac[:18]).decode("ascii")


class CountResult(Enum):
    ADVANCED = "advanced"
    REPLAYED = "replayed"  # the same or a lower nc than already seen (RFC 7616 §3.4 ``nc``, §5.5)
    FORGOTTEN = "forgotten"  # the record was evicted to keep the table bounded: treat the nonce as stale


class NonceCounts:
    """The highest nonce-count seen per nonce (RFC 7616 §3.4: "if the same nc value is seen twice, then
    the request is a replay"), bounded two ways.

    - In time: a record lives as long as its nonce (issue time + lifetime); after that the nonce is stale
      anyway, so the record can go.
    - In size: past ``capacity`` records the oldest is evicted, and every nonce issued no later than it
      is from then on answered as stale (``FORGOTTEN``) — forgetting a count must never let a replay in;
      it only costs those clients a silent retry with a new nonce.

    One table per node: with several nodes, a replay sent to another node is caught only when this table
    lives in the shared store (the interface is the two methods).
    """

    def __init__(self, lifetime: float, capacity: int = 100_000) -> None:
        self.lifetime = lifetime
        self.capacity = capacity
        self._counts: dict[str, tuple[int, float]] = {}  # nonce → (highest nc, issued at); oldest use first
        self._horizon = float("-inf")  # nonces issued at or before this have lost their record

    def __len__(self) -> int:
        return len(self._counts)

    def advance(self, nonce: str, issued: float, nc: int, now: float) -> CountResult:
        self._expire(now)
        if issued <= self._horizon:
            return CountResult.FORGOTTEN
        seen = self._counts.get(nonce)
        if seen is not None and nc <= seen[0]:
            return CountResult.REPLAYED
        self._counts[nonce] = (nc, issued)
        while len(self._counts) > self.capacity:
            oldest = next(iter(self._counts))
            self._horizon = max(self._horizon, self._counts.pop(oldest)[1])
        return CountResult.ADVANCED

    def _expire(self, now: float) -> None:
        # Records sit in order of first use, which is close to issue order: dropping from the front while
        # expired is cheap and the capacity bound catches whatever an out-of-order record keeps behind it.
        while self._counts:
            oldest = next(iter(self._counts))
            if now - self._counts[oldest][1] <= self.lifetime:
                break
            del self._counts[oldest]


# ---------------------------------------------------------------------------------------- throttle
class Throttle:
    """Refuses a source after ``limit`` authentication failures within ``window`` seconds, for ``backoff``
    seconds (RFC 7616 §5.7 online dictionary attacks; §3.4 "repeated login failures from a single client
    may indicate an attacker").

    While throttled a source gets ``403 Forbidden`` without its credentials being checked: RFC 3261 §22.1
    lets a server that does not accept credentials "respond with a 403 Forbidden", and §21.4.4 says of 403
    that "Authorization will not help", which is exactly the case. A re-challenge would invite the next
    guess; 503 would send a UAC to our other nodes (RFC 3263 §4.3) and says "overloaded", which is not true;
    ``Retry-After`` is not defined for 403 (RFC 3261 §20.33), so the back-off is not announced.

    The key is the source address the caller passes (the host, not the port: a client reconnecting gets a
    new port). At most ``capacity`` sources are remembered, least recently failed evicted first.
    """

    def __init__(self, limit: int = 5, window: float = 60.0, backoff: float = 300.0, capacity: int = 10_000) -> None:
        if limit < 1 or window <= 0 or backoff <= 0 or capacity < 1:
            raise ValueError("throttle limit, window, backoff and capacity must be positive")
        self.limit = limit
        self.window = window
        self.backoff = backoff
        self.capacity = capacity
        self._failures: dict[object, list[float]] = {}  # source → failure times in the window
        self._blocked: dict[object, float] = {}  # source → end of its back-off

    def blocked(self, source: object, now: float) -> float | None:
        """Seconds of back-off left for ``source``, or None when it may try."""
        until = self._blocked.get(source)
        if until is None:
            return None
        if now >= until:
            del self._blocked[source]
            log.info("digest throttle ends for %s", source)
            return None
        return until - now

    def failure(self, source: object, now: float) -> bool:
        """Count one failure; True when it starts a back-off (logged once, at that moment)."""
        recent = [t for t in self._failures.pop(source, ()) if now - t < self.window]
        recent.append(now)
        if len(recent) < self.limit:
            self._failures[source] = recent  # re-inserted: the dict's order is least recently failed first
            while len(self._failures) > self.capacity:
                del self._failures[next(iter(self._failures))]
            return False
        self._blocked.pop(source, None)
        self._blocked[source] = now + self.backoff
        while len(self._blocked) > self.capacity:
            del self._blocked[next(iter(self._blocked))]
        log.warning(
            "digest throttle starts for %s: %d failures within %gs, refused for %gs",
            source, len(recent), self.window, self.backoff,
        )
        return True


# ----------------------------------------------------------------------------------- verdicts, table
class Verdict(Enum):
    OK = "ok"
    MISSING = "missing"  # no Digest credentials for our realm: the first request of the exchange
    MALFORMED = "malformed"  # a required parameter missing or improper (RFC 7616 §3.4)
    URI_MISMATCH = "uri-mismatch"  # ``uri`` is not the Request-URI (RFC 7616 §3.4.6)
    UNKNOWN_NONCE = "unknown-nonce"  # not our nonce (or opaque): answer as if there were no credentials
    UNSUPPORTED_ALGORITHM = "unsupported-algorithm"  # one we did not offer (RFC 7616 §3.4: "must be those supplied")
    UNKNOWN_USER = "unknown-user"
    BAD_CREDENTIALS = "bad-credentials"  # the response does not match: wrong password
    STALE = "stale"  # right response, expired nonce (RFC 7616 §3.3 stale)
    REPLAYED = "replayed"  # right response, nonce-count not above the last one seen (RFC 7616 §5.5)
    THROTTLED = "throttled"


@dataclass(frozen=True, slots=True)
class Answer:
    """What a verdict becomes: a challenge (401/407 by the exchange) or a fixed ``status``."""

    challenge: bool
    stale: bool = False
    status: int | None = None  # when not a challenge; None with challenge=False means "go ahead"
    reason: str | None = None
    failure: bool = False  # counts towards the throttle


#: Verdict → answer. An unknown user gets the same answer as a wrong password so that the answer does not
#: tell which user names exist (RFC 7616 §5.7); a replay gets a fresh nonce with stale=true because its
#: response was right — whoever holds the password retries silently, an eavesdropper cannot.
ANSWERS: dict[Verdict, Answer] = {
    Verdict.OK: Answer(challenge=False),
    Verdict.MISSING: Answer(challenge=True),
    Verdict.MALFORMED: Answer(challenge=False, status=400, reason="Malformed Digest Credentials"),
    Verdict.URI_MISMATCH: Answer(challenge=False, status=400, reason="Digest URI Does Not Match Request-URI"),
    Verdict.UNKNOWN_NONCE: Answer(challenge=True),
    Verdict.UNSUPPORTED_ALGORITHM: Answer(challenge=True),
    Verdict.UNKNOWN_USER: Answer(challenge=True, failure=True),
    Verdict.BAD_CREDENTIALS: Answer(challenge=True, failure=True),
    Verdict.STALE: Answer(challenge=True, stale=True),
    Verdict.REPLAYED: Answer(challenge=True, stale=True, failure=True),
    Verdict.THROTTLED: Answer(challenge=False, status=403, reason="Too Many Failed Authentications"),
}


@dataclass(frozen=True, slots=True)
class Exchange:
    """User-to-user (RFC 3261 §22.2: 401, WWW-Authenticate, Authorization) or proxy-to-user (§22.3: 407,
    Proxy-Authenticate, Proxy-Authorization)."""

    status: int
    challenge_header: str
    credentials_header: str


USER_TO_USER = Exchange(401, "WWW-Authenticate", "Authorization")
PROXY_TO_USER = Exchange(407, "Proxy-Authenticate", "Proxy-Authorization")


def challenge_values(
    realm: str, nonce: str, opaque: str, algorithms: Iterable[str], *, stale: bool = False,
) -> list[str]:
    """One challenge per algorithm, in the given order of preference (RFC 8760 §2.3, RFC 7616 §3.7).

    realm, nonce, opaque and qop are quoted-strings, algorithm and stale tokens (RFC 7616 §3.3 "for
    historical reasons").
    """
    values = []
    realm = _to_wire(realm)
    for algorithm in algorithms:
        text = (
            f"Digest realm={quote(realm)}, nonce={quote(nonce)}, opaque={quote(opaque)}, "
            f"algorithm={_canonical_algorithm(algorithm)}, qop=\"auth\""
        )
        values.append(text + (", stale=true" if stale else ""))
    return values


# -------------------------------------------------------------------------------------------- policy
#: Requests from local users that a proxy challenges by default (issue 4: "which methods: config").
_PROXY_METHODS = frozenset({"INVITE", "MESSAGE", "SUBSCRIBE", "PUBLISH", "REFER", "OPTIONS", "INFO", "UPDATE"})


@dataclass(frozen=True, slots=True)
class DigestPolicy:
    """The configuration: algorithms in order of preference, nonce lifetime, realm per domain, the methods a
    proxy challenges, and the throttle's numbers."""

    algorithms: tuple[str, ...] = ("SHA-256", "MD5")
    nonce_lifetime: float = 300.0
    clock_skew: float = 5.0
    realms: dict[str, str] = field(default_factory=dict)  # domain → realm; default: the domain itself
    proxy_methods: frozenset[str] = _PROXY_METHODS
    failure_limit: int = 5
    failure_window: float = 60.0
    backoff: float = 300.0
    max_nonce_counts: int = 100_000
    max_sources: int = 10_000

    def __post_init__(self) -> None:
        if not self.algorithms:
            raise ValueError("at least one digest algorithm")
        for algorithm in self.algorithms:
            _hash(algorithm)
        bases = [_canonical_algorithm(a) for a in self.algorithms]
        if len(set(bases)) != len(bases):  # RFC 8760 §2.3: each challenge of a realm a different algorithm
            raise ValueError("each digest algorithm once")
        if {m.upper() for m in self.proxy_methods} & NEVER_CHALLENGED:
            raise ValueError("ACK and CANCEL are never challenged (RFC 3261 §22.1)")

    def realm_for(self, domain: str) -> str:
        """RFC 3261 §22.1: the realm is globally unique and contains the domain name."""
        domain = domain.lower()  # host names compare case-insensitively (RFC 3261 §19.1.4)
        return next((realm for name, realm in self.realms.items() if name.lower() == domain), domain)

    def challenges(self, method: str, exchange: Exchange) -> bool:
        """Whether a request is to be authenticated: REGISTER at the registrar, the configured methods at
        the proxy, never ACK or CANCEL."""
        name = method.upper()
        if name in NEVER_CHALLENGED:
            return False
        if exchange is USER_TO_USER:
            return name == "REGISTER"
        return name in {m.upper() for m in self.proxy_methods}


# ------------------------------------------------------------------------------------- authenticator
@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome for one request: ``status`` None means authenticated as ``username``; otherwise the role
    answers ``status``/``reason`` with ``headers`` (the challenges, when there are any)."""

    verdict: Verdict
    status: int | None
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    username: str | None = None


class Authenticator:
    """One per node and role: the nonce mint, the nonce-count table and the throttle, and the policy.

    ``secret`` signs the nonces: the same bytes on every node that should accept each other's nonces, kept
    across restarts if nonces should survive them, and at least 16 random bytes (the caller draws them,
    e.g. ``os.urandom(32)``, since ``roles/`` reads no random source).
    """

    def __init__(self, secret: bytes, policy: DigestPolicy | None = None) -> None:
        self.policy = policy or DigestPolicy()
        self.mint = NonceMint(secret, self.policy.nonce_lifetime, self.policy.clock_skew)
        self.counts = NonceCounts(self.policy.nonce_lifetime, self.policy.max_nonce_counts)
        self.throttle = Throttle(
            self.policy.failure_limit, self.policy.failure_window, self.policy.backoff, self.policy.max_sources,
        )

    def challenge(self, realm: str, now: float, salt: bytes, *, exchange: Exchange, stale: bool = False) -> Decision:
        """A fresh challenge, e.g. for a request without credentials."""
        return self._answer(Verdict.STALE if stale else Verdict.MISSING, realm, now, salt, exchange)

    def authenticate(
        self, request: Request, *, realm: str, source: object, now: float, salt: bytes, lookup: Lookup,
        exchange: Exchange = USER_TO_USER,
    ) -> Decision:
        """Check the request's credentials for ``realm`` and say what to answer (the :data:`ANSWERS` row of
        the verdict). ``salt`` (8 to 32 fresh random bytes) is used only when the answer is a challenge."""
        if request.method.upper() in NEVER_CHALLENGED:
            raise ValueError(f"{request.method} is never challenged (RFC 3261 §22.1)")
        if self.throttle.blocked(source, now) is not None:
            return self._answer(Verdict.THROTTLED, realm, now, salt, exchange)
        verdict, username = self._verify(request, realm, now, lookup, exchange)
        answer = ANSWERS[verdict]
        if answer.failure:
            # RFC 7616 §3.4: log a login failure, but not the user name (it may be a mistyped password).
            log.info("digest %s from %s in realm %s for %s", verdict.value, source, realm, request.method)
            self.throttle.failure(source, now)
        return self._answer(verdict, realm, now, salt, exchange, username)

    def _answer(
        self, verdict: Verdict, realm: str, now: float, salt: bytes, exchange: Exchange, username: str | None = None,
    ) -> Decision:
        answer = ANSWERS[verdict]
        if answer.challenge:
            nonce = self.mint.issue(realm, now, salt)
            values = challenge_values(realm, nonce, self.mint.opaque(realm), self.policy.algorithms, stale=answer.stale)
            headers = tuple((exchange.challenge_header, value) for value in values)
            return Decision(verdict, exchange.status, None, headers)
        return Decision(verdict, answer.status, answer.reason, (), username if verdict is Verdict.OK else None)

    def _credentials(self, request: Request, realm: str, exchange: Exchange) -> Credentials | None:
        """The Digest credentials for our realm (RFC 3261 §22.3: a value for another realm is not ours to
        consume); a value that does not parse is malformed (raised)."""
        for header in request.get_fields(exchange.credentials_header):
            value = header.parsed
            if value.scheme.lower() == "digest" and value.get("realm") == _to_wire(realm):
                return value
        return None

    def _verify(
        self, request: Request, realm: str, now: float, lookup: Lookup, exchange: Exchange,
    ) -> tuple[Verdict, str | None]:
        try:
            credentials = self._credentials(request, realm, exchange)
        except ParseError:
            return Verdict.MALFORMED, None
        if credentials is None:
            return Verdict.MISSING, None
        fields = _digest_fields(credentials)
        if fields is None:
            return Verdict.MALFORMED, None
        username, nonce, uri, response, cnonce, nc_text, algorithm = fields
        try:
            if not parse_uri(uri).equivalent(request.uri):  # RFC 3261 §19.1.4 equality
                return Verdict.URI_MISMATCH, None
        except ParseError:
            return Verdict.MALFORMED, None
        offered = {_canonical_algorithm(a) for a in self.policy.algorithms}
        if _base(algorithm) not in ALGORITHMS or _canonical_algorithm(algorithm) not in offered:
            return Verdict.UNSUPPORTED_ALGORITHM, None
        issued = self.mint.issued_at(nonce, realm)
        opaque = credentials.get("opaque")
        if issued is None or issued > now + self.mint.skew or (opaque is not None and opaque != self.mint.opaque(realm)):
            return Verdict.UNKNOWN_NONCE, None
        stored = lookup(username, realm)
        stored_ha1 = stored.ha1_for(algorithm) if stored is not None else None
        if stored_ha1 is None:
            return Verdict.UNKNOWN_USER, None
        if algorithm.upper().endswith(_SESSION_SUFFIX.upper()):
            stored_ha1 = _session_ha1(stored_ha1, algorithm, nonce, cnonce)
        expected = request_digest(stored_ha1, algorithm, nonce, nc_text, cnonce, request.method, uri)
        if not hmac.compare_digest(expected, response.lower()):
            return Verdict.BAD_CREDENTIALS, None
        # Only now the nonce's age: stale=true tells the client its password was right (RFC 7616 §3.3).
        if now - issued > self.mint.lifetime:
            return Verdict.STALE, None
        counted = self.counts.advance(nonce, issued, int(nc_text, 16), now)
        if counted is CountResult.REPLAYED:
            return Verdict.REPLAYED, None
        if counted is CountResult.FORGOTTEN:
            return Verdict.STALE, None
        return Verdict.OK, username


def _digest_fields(credentials: Credentials) -> tuple[str, str, str, str, str, str, str] | None:
    """(username, nonce, uri, response, cnonce, nc, algorithm) of Digest credentials with qop=auth, or None
    when one is missing or improper (RFC 7616 §3.4: cnonce and nc "MUST be used by all implementations").

    RFC 2069-style credentials without qop are refused: they carry no nonce-count, so no replay check.
    ``userhash=true`` is refused too: we never offer it, and a client hashes only when offered (§3.4.4).
    """
    names = [name.lower() for name, _ in credentials.params]
    if len(names) != len(set(names)) or ("username" in names) == ("username*" in names):
        return None  # RFC 7616 §3.4: username and username* together "MUST be treated as an error"
    # Hashes are over the octets on the wire (RFC 7616 §3.4.1), which UTF-8 encoding of these gives back.
    wire = credentials.get("username")
    username = _from_wire(wire) if wire is not None else _extended_value(credentials.get("username*") or "")
    values = [
        _from_wire(value) if value is not None else None
        for value in (credentials.get(name) for name in ("nonce", "uri", "response", "cnonce", "nc"))
    ]
    nonce, uri, response, cnonce, nc = values
    if username is None or nonce is None or uri is None or response is None or cnonce is None or nc is None:
        return None
    if (credentials.get("qop") or "").lower() != "auth" or not _NC.fullmatch(nc) or int(nc, 16) == 0:
        return None
    if (credentials.get("userhash") or "false").lower() != "false":
        return None
    return username, nonce, uri, response, cnonce, nc, credentials.get("algorithm") or "MD5"  # RFC 7616 §3.3


def _to_wire(text: str) -> str:
    """The message layer holds header text as its octets, one character per octet (latin-1, see
    message.py): a realm with non-ASCII characters goes there as its UTF-8 octets (RFC 3261 §25.1
    UTF8-NONASCII)."""
    return text.encode("utf-8").decode("latin-1")


def _from_wire(text: str) -> str | None:
    """The characters of octets read by the message layer, or None if they are not UTF-8."""
    try:
        return text.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return None


def _extended_value(text: str) -> str | None:
    """``username*=UTF-8''J%C3%A4s%C3%B8n%20Doe`` (RFC 7616 §3.4, RFC 5987 §3.2): UTF-8 only (§4)."""
    charset, quote_mark, rest = text.partition("'")
    _language, quote_mark2, encoded = rest.partition("'")
    if charset.upper() != "UTF-8" or not quote_mark or not quote_mark2:
        return None
    try:
        return unquote_to_bytes(encoded).decode("utf-8")
    except UnicodeDecodeError:
        return None
