"""The registrar's processing of REGISTER (RFC 3261 §10.3), with Path (RFC 3327 §5.3), feature tags
(RFC 3840 §9) and ``+sip.instance``/``reg-id`` (RFC 5626 §6) kept on each binding.

Sans-IO like the rest of ``roles/`` (DESIGN §1): :func:`register` is a pure decision. It takes the request,
the AOR's current bindings, ``now`` (POSIX seconds) and the policy, and returns an :class:`Outcome`: the
response to send and the store changes to apply; it reads no clock and touches no store.
:func:`process_register` is the same decision carried out on a :class:`LocationStore` the caller hands in.

Rules of the module:

1. **The steps of §10.3 in order, each a function** (:data:`STEPS`): the first step that refuses the request
   ends it; a refusal is a :class:`Failure` whose status, reason phrase and RFC section are one row of
   :data:`FAILURES`.
2. **Atomic** (§10.3: "processed completely or not at all"; step 7: committed "if and only if all binding
   updates and additions succeed"): the steps work on a tentative copy of the binding set; only a ``200``
   carries changes, and the caller applies them with one ``LocationStore.apply``.
3. **Every 200 lists every current binding** (§10.3 step 8, §10.2.3), each with the ``expires`` the
   registrar chose, the ones this request left alone included.

Where the RFC leaves a choice (each is also said where it is made):

* A Request-URI naming a domain we do not serve gets ``404`` (§8.2.2.1: a Request-URI the UAS does not
  accept requests for "SHOULD" get 404; §10.3 step 1's forwarding applies to a registrar that is also a
  proxy, and this one does not proxy REGISTER).
* An out-of-order REGISTER (same Call-ID, CSeq not higher than a binding's; §10.3 steps 6 and 7: "the update
  MUST be aborted and the request fails") gets ``500`` with a reason phrase naming the problem: step 7's only
  named failure status for a request that cannot be committed is 500, and 400 would tell the UA its request
  was malformed, which it was not.
* A contact listed twice in one REGISTER gets ``400``: step 7 processes each "in turn" against the tentative
  binding set, so the answer would depend on the order of the two values.
* A REGISTER arriving without an authenticated user while the registrar is not open gets ``403``: the caller
  runs the digest ``Authenticator`` (step 3) and answers its challenges itself; reaching here without an
  identity means that did not happen, and a registrar must fail closed.
* ``expires`` above ``max_expires`` is shortened to it (step 7: "MAY choose an expiration less than the
  requested"); the 200 carries no Expires header field, because every Contact has its ``expires``
  parameter, which §10.2.4 makes the UA prefer.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from email.utils import formatdate  # a pure function of its argument; it reads no clock when given one
from enum import Enum
from functools import lru_cache
from typing import Any

from sipactors.message import NameAddr, Params, Request, Response, SipURI, unescape
from sipactors.message.build import response_for
from sipactors.roles.digest import USER_TO_USER, Authenticator, source_of, user_lookup
from sipactors.runtime.binding import BindingActor, Register, Restore, Unregister
from sipactors.store.commit import Committer, InlineCommitter
from sipactors.store.model import (
    Binding,
    Change,
    LocationStore,
    Put,
    Remove,
    RemoveAll,
    Source,
    canonical_aor,
    same_contact,
)

__all__ = [
    "FAILURES", "Failure", "Outcome", "Registrar", "RegistrarPolicy", "Rule", "STEPS", "aor_of", "commit_failed",
    "process_register", "register", "remaining",
]

log = logging.getLogger("sipactors.registrar")

#: §10.3 step 7: a 423 only for a requested interval "greater than zero AND smaller than one hour".
ONE_HOUR = 3600


@dataclass(frozen=True, slots=True)
class RegistrarPolicy:
    """Local configuration of the registrar (RFC 3261 §10.3)."""

    domains: frozenset[str]  # the domains whose bindings we keep (§10.3: "has to know ... the set of domain(s)")
    min_expires: int = 60  # below it a non-zero interval gets 423 (§10.3 step 7, §20.23)
    max_expires: int = 7200  # above it an interval is shortened (§10.3 step 7 "MAY choose ... less")
    default_expires: int = 3600  # neither Expires nor expires= (§10.2.1.1, §10.3 step 7 "locally-configured")
    supported: frozenset[str] = frozenset({"path"})  # option tags a Require may name (§8.2.2.3)
    path_requires_ua_support: bool = True  # RFC 3327 §5.3: the "recommended policy" is 420 without Supported: path

    def __post_init__(self) -> None:
        domains = frozenset(domain.lower() for domain in self.domains)  # hosts compare case-insensitively (§19.1.4)
        if not domains:
            raise ValueError("a registrar needs at least one domain (RFC 3261 §10.3)")
        object.__setattr__(self, "domains", domains)
        object.__setattr__(self, "supported", frozenset(tag.lower() for tag in self.supported))
        if not 0 <= self.min_expires <= self.default_expires <= self.max_expires:
            raise ValueError("expected 0 <= min_expires <= default_expires <= max_expires")
        if self.min_expires > ONE_HOUR:
            # §10.3 step 7 allows 423 only below one hour: a larger minimum could not be enforced.
            raise ValueError("min_expires above 3600 cannot be enforced with 423 (RFC 3261 §10.3 step 7)")

    @property
    def honours_path(self) -> bool:
        return "path" in self.supported


# ----------------------------------------------------------------------------------- failures, table
class Failure(Enum):
    REQUEST_URI_SCHEME = "request-uri-scheme"
    FOREIGN_DOMAIN = "foreign-domain"
    BAD_EXTENSION = "bad-extension"
    PATH_WITHOUT_SUPPORT = "path-without-support"
    NOT_AUTHENTICATED = "not-authenticated"
    FORBIDDEN = "forbidden"
    INVALID_AOR = "invalid-aor"
    STAR_NOT_ALONE = "star-not-alone"
    STAR_NEEDS_EXPIRES_ZERO = "star-needs-expires-zero"
    CONTACT_TWICE = "contact-twice"
    INTERVAL_TOO_BRIEF = "interval-too-brief"
    OUT_OF_ORDER = "out-of-order"
    COMMIT_FAILED = "commit-failed"


@dataclass(frozen=True, slots=True)
class Rule:
    status: int
    reason: str
    section: str


#: Failure → the answer and the clause that requires it.
FAILURES: dict[Failure, Rule] = {
    Failure.REQUEST_URI_SCHEME: Rule(416, "Unsupported URI Scheme", "RFC 3261 §8.2.2.1, §10.2 Request-URI"),
    Failure.FOREIGN_DOMAIN: Rule(404, "Not Found", "RFC 3261 §10.3 step 1, §8.2.2.1"),
    Failure.BAD_EXTENSION: Rule(420, "Bad Extension", "RFC 3261 §10.3 step 2, §8.2.2.3"),
    Failure.PATH_WITHOUT_SUPPORT: Rule(420, "Bad Extension", "RFC 3327 §5.3"),
    Failure.NOT_AUTHENTICATED: Rule(403, "Forbidden (Not Authenticated)", "RFC 3261 §10.3 step 3"),
    Failure.FORBIDDEN: Rule(403, "Forbidden", "RFC 3261 §10.3 step 4"),
    Failure.INVALID_AOR: Rule(404, "Not Found", "RFC 3261 §10.3 step 5"),
    Failure.STAR_NOT_ALONE: Rule(400, "Contact * Must Be Alone", "RFC 3261 §10.3 step 6"),
    Failure.STAR_NEEDS_EXPIRES_ZERO: Rule(400, "Contact * Needs Expires: 0", "RFC 3261 §10.3 step 6, §10.2.2"),
    Failure.CONTACT_TWICE: Rule(400, "Contact Listed Twice", "RFC 3261 §10.3 step 7"),
    Failure.INTERVAL_TOO_BRIEF: Rule(423, "Interval Too Brief", "RFC 3261 §10.3 step 7, §20.23"),
    Failure.OUT_OF_ORDER: Rule(500, "Out-of-Order REGISTER (CSeq Not Higher)", "RFC 3261 §10.3 steps 6, 7"),
    Failure.COMMIT_FAILED: Rule(500, "Binding Update Failed", "RFC 3261 §10.3 step 7"),
}


@dataclass(frozen=True, slots=True)
class Rejection:
    """A step's refusal: which failure, and the header fields that go with it (Unsupported, Min-Expires)."""

    failure: Failure
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """What to do with one REGISTER: answer ``status``/``reason`` with ``headers``, and (only for a 200)
    apply ``changes`` to the bindings of ``aor`` in one ``LocationStore.apply``.

    ``bindings`` is the AOR's binding set after the changes, as the 200's Contact lists it; ``failure`` and
    ``section`` say which rule refused the request (None and "" for a 200).
    """

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()
    aor: str | None = None
    changes: tuple[Change, ...] = ()
    bindings: tuple[Binding, ...] = ()
    failure: Failure | None = None
    section: str = ""

    def response(self, request: Request, to_tag: str | None = None) -> Response:
        """The response to ``request`` (RFC 3261 §8.2.6.2); the caller draws the To tag."""
        return response_for(request, self.status, self.reason, to_tag=to_tag, headers=list(self.headers))


# --------------------------------------------------------------------------------------- the steps
@dataclass(frozen=True, slots=True)
class _Requested:
    """One Contact value of the request with the interval the registrar grants it (§10.3 step 7)."""

    address: NameAddr
    requested: int
    granted: int


@dataclass(slots=True)
class _Work:
    """The request on its way through the steps; a step reads what the earlier ones found."""

    request: Request
    current: list[Binding]
    now: float
    policy: RegistrarPolicy
    source: Source | None
    authenticated_user: str | None
    open_mode: bool
    known_aor: str | None = None  # the caller's aor_of(request), if it has it (step 5 need not parse again)
    aor: str = ""
    path: tuple[NameAddr, ...] = ()  # the Path the binding keeps: empty unless honoured (RFC 3327 §5.3)
    star: bool = False
    contacts: list[_Requested] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)
    tentative: list[Binding] = field(default_factory=list)


Step = Callable[[_Work], Rejection | None]


def _step1_request_uri(work: _Work) -> Rejection | None:
    """§10.3 step 1: is the Request-URI's domain one whose bindings we keep? A REGISTER's Request-URI is a
    SIP or SIPS URI naming the domain (§10.2); another scheme gets 416 (§8.2.2.1). A domain we do not serve
    gets 404 (§8.2.2.1), as this registrar does not proxy (see the module docstring). A userinfo in the
    Request-URI, which §10.2 forbids the UAC, is tolerated: the domain is what step 1 inspects."""
    uri = work.request.uri
    if not isinstance(uri, SipURI):
        return Rejection(Failure.REQUEST_URI_SCHEME)
    if uri.host.lower() not in work.policy.domains:
        return Rejection(Failure.FOREIGN_DOMAIN)
    return None


def _step2_require(work: _Work) -> Rejection | None:
    """§10.3 step 2, §8.2.2.3: an option tag in Require that we do not support gets 420 with every such tag
    in Unsupported. Tags are compared without case, as the token they are."""
    required = work.request.header("Require") or []
    unknown = [tag for tag in required if tag.lower() not in work.policy.supported]
    if unknown:
        return Rejection(Failure.BAD_EXTENSION, (("Unsupported", ", ".join(unknown)),))
    return None


def _step2_path(work: _Work) -> Rejection | None:
    """RFC 3327 §5.3: a Path from a UA that did not say ``Supported: path`` gets the recommended 420 with
    ``Unsupported: path`` (an intermediate proxy added it without the UA's knowledge), unless the policy
    accepts it anyway. A registrar that does not honour Path ignores the header field."""
    path = tuple(work.request.header("Path") or ())
    if not path or not work.policy.honours_path:
        return None
    supported = {tag.lower() for tag in work.request.header("Supported") or ()}
    if "path" not in supported and work.policy.path_requires_ua_support:
        return Rejection(Failure.PATH_WITHOUT_SUPPORT, (("Unsupported", "path"),))
    work.path = path
    return None


def _step3_authentication(work: _Work) -> Rejection | None:
    """§10.3 step 3: the caller authenticates the UAC (the digest ``Authenticator``, §22) and passes the user
    name it proved; in open mode (no users configured) nobody is authenticated and everyone may register.
    Without either, the registrar fails closed (see the module docstring)."""
    if work.open_mode or work.authenticated_user is not None:
        return None
    return Rejection(Failure.NOT_AUTHENTICATED)


def _step4_authorization(work: _Work) -> Rejection | None:
    """§10.3 step 4: the authenticated user may modify the bindings of their own AOR only: the To URI's user
    part is their user name and its host is the Request-URI's domain, the one whose realm they proved it in
    (§22.1). Third-party registration is not offered. 403 otherwise; open mode authorises everyone."""
    if work.open_mode:
        return None
    to = work.request.to
    uri = to.uri if to is not None else None
    if (
        not isinstance(uri, SipURI)
        or uri.user is None
        or unescape(uri.user) != work.authenticated_user
        or uri.host.lower() != work.request.uri.host.lower()  # type: ignore[union-attr]  # step 1 made it a SipURI
    ):
        return Rejection(Failure.FORBIDDEN)
    return None


def _step5_address_of_record(work: _Work) -> Rejection | None:
    """§10.3 step 5: the AOR is the To URI in canonical form (``canonical_aor``); it must be a SIP or SIPS URI
    (§10.2 To) of the Request-URI's domain, else 404."""
    aor = work.known_aor or aor_of(work.request)
    if aor is None:
        return Rejection(Failure.INVALID_AOR)
    work.aor = aor
    if any(binding.aor != aor for binding in work.current):
        raise ValueError(f"current bindings of another AOR than {aor!r}")
    work.tentative = list(work.current)
    return None


def _step6_contact(work: _Work) -> Rejection | None:
    """§10.3 step 6: ``Contact: *`` must be the only Contact value and come with ``Expires: 0`` (400
    otherwise); it then removes every binding, unless one of them has the request's Call-ID and a CSeq not
    below the request's (the request is out of order and fails). No Contact: a query; on to step 8."""
    fields = work.request.get_fields("Contact")
    values = [contact_field.parsed for contact_field in fields]
    if not any(value == "*" for value in values):
        work.contacts = [_Requested(address, 0, 0) for value in values for address in value]
        return None
    if len(values) > 1:
        return Rejection(Failure.STAR_NOT_ALONE)
    if work.request.expires != 0:
        return Rejection(Failure.STAR_NEEDS_EXPIRES_ZERO)
    if any(_out_of_order(work, binding) for binding in work.tentative):
        return Rejection(Failure.OUT_OF_ORDER)
    work.star = True
    work.changes.append(RemoveAll())
    work.tentative = []
    return None


def _step7_expiration(work: _Work) -> Rejection | None:
    """§10.3 step 7, first half: each contact's requested interval is its ``expires`` parameter, else the
    Expires header field, else the configured default (§10.2.1.1). A non-zero request below one hour and
    below ``min_expires`` gets 423 with Min-Expires (§20.23); above ``max_expires`` it is shortened.
    A contact listed twice (by §19.1.4) is refused: see the module docstring."""
    header = work.request.expires
    granted: list[_Requested] = []
    for index, wanted in enumerate(work.contacts):
        address = wanted.address
        if any(same_contact(address.uri.render(), earlier.address.uri.render()) for earlier in work.contacts[:index]):
            return Rejection(Failure.CONTACT_TWICE)
        parameter = address.params.get("expires")
        requested = int(parameter) if parameter is not None else header if header is not None else work.policy.default_expires
        if 0 < requested < ONE_HOUR and requested < work.policy.min_expires:
            return Rejection(Failure.INTERVAL_TOO_BRIEF, (("Min-Expires", str(work.policy.min_expires)),))
        granted.append(_Requested(address, requested, min(requested, work.policy.max_expires)))
    work.contacts = granted
    return None


def _step7_bindings(work: _Work) -> Rejection | None:
    """§10.3 step 7, second half: each contact in turn is looked up among the tentative bindings by §19.1.4
    equality. A binding with another Call-ID, or with this Call-ID and a lower CSeq, is updated (removed if
    the interval is zero); with this Call-ID and a CSeq not lower than the request's, the whole request fails.
    A new contact is tentatively added, unless its interval is zero. Each binding records the request's
    Call-ID and CSeq."""
    for wanted in work.contacts:
        contact = wanted.address.uri.render()
        existing = [binding for binding in work.tentative if same_contact(binding.contact, contact)]
        if any(_out_of_order(work, binding) for binding in existing):
            return Rejection(Failure.OUT_OF_ORDER)
        kept = [binding for binding in work.tentative if binding not in existing]
        if wanted.granted == 0:
            if existing:
                work.changes.append(Remove(contact))
            work.tentative = kept
            continue
        binding = _binding(work, wanted)
        work.changes.append(Put(binding))
        work.tentative = [*kept, binding]
    return None


def _out_of_order(work: _Work, binding: Binding) -> bool:
    """§10.3 steps 6 and 7: same Call-ID and a CSeq that is not higher than the binding's."""
    cseq = work.request.cseq
    assert cseq is not None  # parse refuses a request without one (§8.1.1)
    return binding.call_id == work.request.call_id and cseq.seq <= binding.cseq


def _binding(work: _Work, wanted: _Requested) -> Binding:
    """The binding a contact makes (§10.3 step 7): Call-ID, CSeq, q (§10.2.1.2), the Path URIs in order
    (RFC 3327 §5.3), ``+sip.instance`` and ``reg-id`` (RFC 5626 §6: a reg-id without an instance is
    ignored), and the contact's parameters but ``expires`` (the RFC 3840 feature tags among them), which the
    200 echoes."""
    address = wanted.address
    params = Params(item for item in address.params if item[0].lower() != "expires")
    q = params.get("q")
    instance = params.get("+sip.instance")
    reg_id = params.get("reg-id")
    cseq = work.request.cseq
    call_id = work.request.call_id
    assert cseq is not None and call_id is not None  # parse refuses a request without them (§8.1.1)
    return Binding(
        aor=work.aor,
        contact=address.uri.render(),
        expires=work.now + wanted.granted,
        call_id=call_id,
        cseq=cseq.seq,
        contact_header=address.render(),
        q=float(q) if q is not None else None,
        path=tuple(hop.uri.render() for hop in work.path),
        instance=instance,
        reg_id=int(reg_id) if instance is not None and reg_id is not None and reg_id.isdigit() else None,
        params=tuple(params),
        source=work.source,
        updated=work.now,
    )


#: §10.3 steps 1-7 in order; step 8 (:func:`_step8_ok`) answers the request that passed them all.
STEPS: tuple[Step, ...] = (
    _step1_request_uri,
    _step2_require,
    _step2_path,
    _step3_authentication,
    _step4_authorization,
    _step5_address_of_record,
    _step6_contact,
    _step7_expiration,
    _step7_bindings,
)


def remaining(binding: Binding, now: float) -> int:
    """The ``expires`` a 200 shows for ``binding`` (§10.3 step 8): the seconds left, a started second
    counting whole (so an unexpired binding never reads 0, which a UA takes for "removed"). Rounded to the
    millisecond first, so ``now + 3600 - now`` reads 3600 whatever the float error."""
    return max(1, math.ceil(round(binding.expires - now, 3)))


def _contact_value(binding: Binding, now: float) -> str:
    """``<uri>;expires=N`` and the contact's own parameters as registered (q, +sip.instance, feature tags)."""
    params = Params(item for item in binding.params if item[0].lower() != "expires").render() if binding.params else ""
    return f"<{binding.contact}>;expires={remaining(binding, now)}{params}"


def _step8_ok(work: _Work) -> Outcome:
    """§10.3 step 8: 200 OK with a Contact value for every current binding (highest q first,
    ``Binding.order_key``), each with its ``expires``, and a Date header field; RFC 3327 §5.3: the Path
    header field values copied, with ``Supported: path``."""
    bindings = tuple(sorted((b for b in work.tentative if b.expires > work.now), key=Binding.order_key))
    headers = [("Contact", _contact_value(binding, work.now)) for binding in bindings]
    if work.path:
        headers.append(("Path", ", ".join(hop.render() for hop in work.path)))
        headers.append(("Supported", "path"))
    headers.append(("Date", _date(int(work.now))))
    return Outcome(200, "OK", tuple(headers), work.aor, tuple(work.changes), bindings)


@lru_cache(maxsize=4)
def _date(second: int) -> str:
    """The Date header field value (RFC 3261 §20.17, RFC 1123 form) of a POSIX second: a pure function,
    memoised, as every REGISTER of that second shows the same date (formatting one costs ~10 µs)."""
    return formatdate(second, usegmt=True)


def _refused(rejection: Rejection, aor: str | None) -> Outcome:
    rule = FAILURES[rejection.failure]
    return Outcome(rule.status, rule.reason, rejection.headers, aor, failure=rejection.failure, section=rule.section)


# ------------------------------------------------------------------------------------- the public API
def aor_of(request: Request) -> str | None:
    """The AOR of a REGISTER (§10.3 step 5): its To URI in canonical form, or None unless that is a SIP or
    SIPS URI of the Request-URI's domain. The caller reads the AOR's bindings with it before :func:`register`."""
    to = request.to
    uri = request.uri
    if to is None or not isinstance(to.uri, SipURI) or not isinstance(uri, SipURI):
        return None
    if to.uri.host.lower() != uri.host.lower():
        return None
    return canonical_aor(to.uri.render())


def register(
    request: Request, current: Sequence[Binding], now: float, policy: RegistrarPolicy,
    source: Source | None = None, *, authenticated_user: str | None = None, open_mode: bool = False,
    aor: str | None = None,
) -> Outcome:
    """Decide a REGISTER (RFC 3261 §10.3): ``current`` is the unexpired bindings of ``aor_of(request)``
    (``LocationStore.bindings(aor, now)``), ``now`` POSIX seconds, ``source`` where the request came from,
    ``authenticated_user`` the user the digest ``Authenticator`` proved (step 3), ``open_mode`` true when
    the server has no users at all, ``aor`` the caller's ``aor_of(request)`` if it has it (not computed
    twice). Only a 200 carries changes."""
    if request.method != "REGISTER":
        raise ValueError(f"a registrar processes REGISTER, not {request.method}")
    if request.refusal is not None:
        raise ValueError(f"answer the refused request with {request.refusal.status} before the registrar")
    work = _Work(request, list(current), now, policy, source, authenticated_user, open_mode, aor)
    for step in STEPS:
        rejection = step(work)
        if rejection is not None:
            return _refused(rejection, work.aor or None)
    return _step8_ok(work)


def commit_failed(outcome: Outcome) -> Outcome:
    """§10.3 step 7: the store could not commit ``outcome``'s changes: 500, and nothing changed."""
    return replace(_refused(Rejection(Failure.COMMIT_FAILED), outcome.aor), changes=(), bindings=())


def process_register(
    locations: LocationStore, request: Request, now: float, policy: RegistrarPolicy,
    source: Source | None = None, *, authenticated_user: str | None = None, open_mode: bool = False,
) -> Outcome:
    """:func:`register` carried out on ``locations``: read the AOR's bindings, decide, and apply a 200's
    changes in one transaction (§10.3: atomically); a store that fails to commit turns the 200 into 500."""
    aor = aor_of(request)
    current = locations.bindings(aor, now) if aor is not None else []
    outcome = register(
        request, current, now, policy, source, authenticated_user=authenticated_user, open_mode=open_mode,
    )
    if outcome.status == 200 and outcome.changes:
        assert outcome.aor is not None
        try:
            locations.apply(outcome.aor, outcome.changes)
        except Exception:  # any failure of the back end is §10.3 step 7's "commit failed"
            return commit_failed(outcome)
    return outcome


# ------------------------------------------------------------------------------------- the registrar
@dataclass(slots=True)
class _Pending:
    """A REGISTER that passed authentication, waiting for its decision (behind another of its AOR)."""

    request: Request
    to_tag: str
    reply: Callable[[Response], None]
    user: str | None
    open_mode: bool
    source: Source | None = None


class Registrar:
    """The registrar role as the server core runs it: digest authentication when users exist (RFC 3261
    §10.3 step 3, §22: 401 with SHA-256 and MD5 challenges), then :func:`register` against the AOR's
    bindings as the registrar holds them, the changes committed, and one :class:`BindingActor` per binding.

    * **Bindings are actors.** Every binding is a ``BindingActor`` (spec/machines/binding.toml) kept in
      ``actors`` by (AOR, contact URI as registered); it owns the binding's expiry timer and removes the
      binding from the store when that fires (RFC 3261 §10.2.2: soft state). ``restore()`` takes up every
      binding the store kept, after a restart, with the time it has left.
    * **A REGISTER commits whole, then the actors adopt it** (§10.3 step 7: all updates "or not at all"):
      the changes go to the ``committer`` in one transaction; once they are durable the registrar updates
      its view and tells each binding's actor ``Register`` or ``Unregister`` (which write nothing), and the
      200 goes out (step 8). A failed commit is a 500 and changes nothing.
    * **The registrar's view is the committed binding set** (``_held``, by AOR), so a REGISTER reads no
      store; the actors tell it when a binding expires.
    * **One REGISTER per AOR at a time**: while one commits, the next for the same AOR waits (``_committing``),
      so no two decide against the same binding set; other AORs go on.

    With no users in the store the registrar is open (``open_mode``): any registration for a local domain
    is accepted; ``sipactors serve`` says so loudly at start-up. Time and randomness are injected (this
    module reads no clock): ``clock`` gives POSIX seconds (bindings and nonces outlive the process),
    ``entropy(n)`` n fresh random octets for a challenge's nonce. Every method runs on the thread of the
    actors' scheduler (a committer calls back through it).
    """

    def __init__(
        self, store: Any, policy: RegistrarPolicy, authenticator: Authenticator,
        clock: Callable[[], float], entropy: Callable[[int], bytes], *, committer: Committer | None = None,
        trace: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.store = store
        self.policy = policy
        self.authenticator = authenticator
        self.clock = clock
        self.entropy = entropy
        self.committer: Committer = committer or InlineCommitter(store.locations)
        self.trace = trace
        self.actors: dict[tuple[str, str], BindingActor] = {}
        self._held: dict[str, dict[str, Binding]] = {}  # AOR → contact URI (as registered) → committed binding
        self._committing: dict[str, deque[_Pending]] = {}  # AOR → the REGISTERs waiting for its commit
        self._serial = itertools.count(1)  # numbers the binding actors, so a seeded simulation names them alike
        #: called with the AOR after its bindings changed (a REGISTER committed, a binding expired): the
        #: presence package composes registration state from them (RFC 3856 §7.2)
        self.observers: list[Callable[[str], None]] = []
        #: Observers of registrations: ``callback(aor, bindings)`` after a REGISTER that added or refreshed
        #: ``bindings`` of ``aor`` is committed and answered (store-and-forward delivers then, RFC 3428 §7).
        self.on_registered: list[Callable[[str, list[Binding]], None]] = []

    @property
    def open_mode(self) -> bool:
        return not self.store.users.any()

    def bindings(self, aor: str, now: float) -> list[Binding]:
        """The unexpired bindings of ``aor`` as committed, in ``Binding.order_key`` order (what a proxy's
        location lookup reads: no store query)."""
        held = self._held.get(aor)
        if not held:
            return []
        if len(held) == 1:  # one device, the common case: nothing to sort
            (binding,) = held.values()
            return [binding] if binding.expires > now else []
        return sorted((binding for binding in held.values() if binding.expires > now), key=Binding.order_key)

    def handle(
        self, request: Request, to_tag: str, reply: Callable[[Response], None], source: Source | None = None,
    ) -> None:
        """Answer the REGISTER ``request`` through ``reply``: at once for a challenge, a refusal or a query,
        after the commit for a change. ``source`` is where it came from, over which transport: the bindings
        it makes keep it, so that a proxy can reach a device over the connection it registered on
        (RFC 5626 §5.3, RFC 3261 §18.2.2)."""
        user: str | None = None
        open_mode = self.open_mode
        if not open_mode:
            domain = request.uri.host if isinstance(request.uri, SipURI) else ""
            decision = self.authenticator.authenticate(
                request, realm=self.authenticator.policy.realm_for(domain), source=source_of(request),
                now=self.clock(), salt=self.entropy(16), lookup=user_lookup(self.store.users), exchange=USER_TO_USER,
            )
            if decision.status is not None:
                reply(response_for(request, decision.status, decision.reason, to_tag=to_tag, headers=list(decision.headers)))
                return
            user = decision.username
        pending = _Pending(request, to_tag, reply, user, open_mode, source)
        aor = aor_of(request)
        waiting = self._committing.get(aor) if aor is not None else None
        if waiting is not None:
            waiting.append(pending)
            return
        self._decide(pending, aor)

    def _decide(self, pending: _Pending, aor: str | None) -> None:
        now = self.clock()
        current = self.bindings(aor, now) if aor is not None else []
        outcome = register(
            pending.request, current, now, self.policy, pending.source, authenticated_user=pending.user,
            open_mode=pending.open_mode, aor=aor,
        )
        if outcome.status != 200 or not outcome.changes:
            pending.reply(outcome.response(pending.request, pending.to_tag))
            return
        assert aor is not None and outcome.aor == aor  # a 200 with changes has its AOR
        self._committing[aor] = deque()
        self.committer.submit(aor, outcome.changes, lambda error: self._committed(pending, outcome, error))

    def _committed(self, pending: _Pending, outcome: Outcome, error: Exception | None) -> None:
        aor = outcome.aor
        assert aor is not None
        try:
            if error is None:
                self._adopt(aor, outcome.changes, pending.request)
                pending.reply(outcome.response(pending.request, pending.to_tag))
                self._registration_changed(aor)
                self._registered(aor, [change.binding for change in outcome.changes if isinstance(change, Put)])
            else:
                log.error("REGISTER for %s not committed: %s", aor, error)
                pending.reply(commit_failed(outcome).response(pending.request, pending.to_tag))
        finally:
            waiting = self._committing.pop(aor)
            while waiting:
                self._decide(waiting.popleft(), aor)
                if aor in self._committing:  # that one commits in turn: the rest wait for it
                    self._committing[aor].extend(waiting)
                    break

    def _registered(self, aor: str, bindings: list[Binding]) -> None:
        """Tell the observers (``on_registered``) of the bindings a REGISTER added or refreshed; one that
        fails is logged, and the registrar and the other observers go on."""
        if not bindings:
            return
        for callback in self.on_registered:
            try:
                callback(aor, bindings)
            except Exception:
                log.exception("a registration observer failed for %s", aor)

    def _adopt(self, aor: str, changes: Sequence[Change], request: Request) -> None:
        """Carry committed ``changes`` into the view and tell the bindings' actors, as the store applied
        them (contacts compared by §19.1.4). A binding already expired is left to its actor, whose timer
        is due; its removal spares a newer binding of the same contact (``remove_expired``)."""
        held = self._held.setdefault(aor, {})
        cseq = request.cseq
        assert cseq is not None and request.call_id is not None  # parse refuses a request without them (§8.1.1)
        removal = Unregister(request.call_id, cseq.seq)
        now = self.clock()
        for change in changes:
            target = change.binding.contact if isinstance(change, Put) else change.contact if isinstance(change, Remove) else None
            refreshed: BindingActor | None = None
            for contact in [c for c in held if target is None or c == target or same_contact(c, target)]:
                old = held.pop(contact)
                actor = self.actors.pop((aor, contact), None)
                if actor is None or old.expires <= now:
                    continue
                if isinstance(change, Put) and contact == target:
                    refreshed = actor  # the same contact, spelt the same: its actor refreshes it
                else:
                    actor.tell(removal)
            if isinstance(change, Put):
                binding = change.binding
                held[binding.contact] = binding
                actor = refreshed or self._spawn(aor, binding.contact)
                self.actors[aor, binding.contact] = actor
                actor.tell(Register(binding))
        if not held:
            del self._held[aor]

    def _spawn(self, aor: str, contact: str) -> BindingActor:
        actor: BindingActor = BindingActor.spawn(
            self, aor, contact, self.store.locations, self.clock, trace=self.trace,
            actor_id=f"binding-{next(self._serial)}",
        )
        self.actors[aor, contact] = actor
        return actor

    def restore(self) -> int:
        """After a (re)start: forget the bindings whose time ran out while nobody watched, and give every
        other one the store kept an actor, with the time it has left (§10.3 step 7: committed bindings
        stay). How many."""
        now = self.clock()
        locations = self.store.locations
        locations.purge(now)
        restored = 0
        for aor in locations.all_aors(now):
            for binding in locations.bindings(aor, now):
                self._held.setdefault(aor, {})[binding.contact] = binding
                self._spawn(aor, binding.contact).tell(Restore(binding))
                restored += 1
        return restored

    # -- BindingOwner: what the actors tell ------------------------------------------------------------
    def binding_changed(self, actor: BindingActor, binding: Binding | None) -> None:
        """The view already follows every REGISTER (it commits them); what an actor reports on its own is
        that its binding expired (None)."""
        if binding is None and self.actors.get((actor.aor, actor.contact)) is actor:
            self._lost(actor)

    def binding_ended(self, actor: BindingActor) -> None:
        """An actor still in the dict ended on its own (its store failed)."""
        if self.actors.get((actor.aor, actor.contact)) is actor:
            self._lost(actor)

    def _lost(self, actor: BindingActor) -> None:
        """``actor`` is gone without a REGISTER saying so: its binding expired. If the view holds a binding
        of its contact that is still live, a refresh was committed after the timer fired: a new actor
        takes it up (the store kept it: ``remove_expired`` spares it)."""
        aor, contact = actor.aor, actor.contact
        del self.actors[aor, contact]
        held = self._held.get(aor, {})
        binding = held.get(contact)
        # "still live" to the millisecond the timers run at: a binding with less than half a millisecond
        # left restored to a new actor would start a timer due at once, and that one again, forever
        if binding is not None and round((binding.expires - self.clock()) * 1000) > 0:
            self._spawn(aor, contact).tell(Restore(binding))
            return
        held.pop(contact, None)
        if not held:
            self._held.pop(aor, None)
        self._registration_changed(aor)

    def _registration_changed(self, aor: str) -> None:
        for observer in self.observers:
            observer(aor)
