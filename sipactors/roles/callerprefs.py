"""Caller preferences (RFC 3841): which registered contacts a request goes to, in which order, and how.

The proxy calls ``order_targets(request, contacts)`` with the bindings of the request's AOR — each Contact
with the q-value it was registered with (RFC 3841 §7.2.3: the Contact's q, else 1.0; the registrar keeps it
apart from the feature parameters) — and gets the target set of RFC 3841 §7.2.4: rejected and non-matching
contacts removed, the rest sorted by q and, within equal q, by the caller preference Qa. It calls
``request_disposition(request)`` for the Request-Disposition directives (§9.1). Everything here is pure.

Two rules hold the module together:

1. The steps are the RFC's, in its order: explicit preferences (§7.2.1) or, only when the request has no
   Accept-Contact and no Reject-Contact, implicit ones (§7.2.2); contact predicates (§7.2.3); Reject-Contact,
   then Accept-Contact with the score, ``explicit`` and ``require`` of Figure 1, then Qa and the sort
   (§7.2.4). Predicates and their match are RFC 2533's, built in ``features.py`` (RFC 3840, RFC 3841 §8).
2. Scores are exact rationals (``Fraction``): Qa ties decide order within a q class, and 5/6 must tie 5/6.

Where the RFC leaves a case open the rulings in spec/rulings.md decide: R23 (unreadable feature
parameters, ``+sip.instance``), R24 (Qa of an empty matching set, the score of an empty predicate), R25
(conflicting Request-Disposition directives).

§7.2 applies only at a proxy that owns the Request-URI's domain and reads a location service with
capabilities; the proxy decides that before calling. A header field value the message layer cannot parse
raises its ``ParseError`` (a 400 names the header, DESIGN §2).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from typing import Literal

from sipactors.message import NameAddr, Request, ValueParams
from sipactors.roles.features import (
    FeatureSyntaxError,
    Filter,
    Predicate,
    Term,
    contact_predicate,
    feature_params,
    matches,
    parse_term,
)

__all__ = [
    "Disposition", "Preference", "Preferences", "Target", "disposition", "explicit_preferences",
    "implicit_preferences", "order_targets", "preference", "preferences_of", "rank", "request_disposition",
    "score",
]


@dataclass(frozen=True, slots=True)
class Preference:
    """An Accept-Contact feature set predicate with its require and explicit flags (RFC 3841 §7.2.1)."""

    predicate: Predicate
    require: bool = False
    explicit: bool = False


@dataclass(frozen=True, slots=True)
class Preferences:
    """The caller's preferences for one request: Accept-Contact and Reject-Contact predicates, and whether
    they are the implicit ones of §7.2.2 (which §7.2.4 discards when they leave no target)."""

    accept: tuple[Preference, ...] = ()
    reject: tuple[Predicate, ...] = ()
    implicit: bool = False


@dataclass(frozen=True, slots=True)
class Target:
    """A contact of the ordered target set: its registration q and its caller preference Qa (§7.2.4).

    ``qa`` is ``None`` when §7.2.4 discarded the processing (implicit preferences left no target) and the
    original target set is used as it was registered.
    """

    contact: NameAddr
    q: float
    qa: Fraction | None


# -- §7.2.1 and §7.2.2: the caller's preferences -------------------------------------------------------------


def preference(value: ValueParams) -> Preference | None:
    """The predicate of one Accept-Contact or Reject-Contact value (§7.2.1 and §8), or ``None`` when one of
    its feature parameters is not RFC 3840 §9 syntax: such a value is not applied (R23).

    ``require`` and ``explicit`` are the req-param and explicit-param of §10 (a bare name: with a value they
    are generic-params); other parameters (``q``, extensions) are no feature parameters and are ignored.
    """
    try:
        terms = tuple(parse_term(name, text) for name, text in feature_params(value.params))
    except FeatureSyntaxError:
        return None
    flags = {name.lower() for name, text in value.params if text is None}
    return Preference(Predicate(terms), require="require" in flags, explicit="explicit" in flags)


def explicit_preferences(accept: Iterable[ValueParams], reject: Iterable[ValueParams]) -> Preferences:
    """Accept-Contact and Reject-Contact values as predicates (§7.2.1); ``require``/``explicit`` of a
    Reject-Contact value mean nothing (§7.2.1 sets the flags for Accept-Contact only)."""
    accepted = tuple(found for found in map(preference, accept) if found is not None)
    rejected = tuple(found.predicate for found in map(preference, reject) if found is not None)
    return Preferences(accepted, rejected)


@lru_cache(maxsize=64)
def implicit_preferences(method: str, event: str | None = None) -> Preferences:
    """§7.2.2: one Accept-Contact conjunction with its require flag set and not its explicit flag, holding
    ``(sip.methods=<method>)`` (§7.2.2.1) and, for a request establishing a subscription,
    ``(sip.events=<event package>)`` (§7.2.2.2). Both values are tokens (compared case-insensitively).
    Memoised: the preferences are immutable, and every INVITE has the same."""
    terms = [Term("sip.methods", (Filter("token", method.lower()),))]
    if event is not None:
        terms.append(Term("sip.events", (Filter("token", event.lower()),)))
    return Preferences((Preference(Predicate(tuple(terms)), require=True),), (), implicit=True)


def preferences_of(request: Request) -> Preferences:
    """The preferences §7.2.1 or, if and only if the request has neither Accept-Contact nor Reject-Contact,
    §7.2.2 extracts from a request."""
    if request.has("Accept-Contact") or request.has("Reject-Contact"):
        return explicit_preferences(request.header("Accept-Contact"), request.header("Reject-Contact"))
    event = None
    if request.method == "SUBSCRIBE":  # the request that establishes a subscription (RFC 6665 §4.1.2)
        found = request.header("Event")
        event = found.value if isinstance(found, ValueParams) else None
    return implicit_preferences(request.method, event)


# -- §7.2.4: matching, scoring, ordering --------------------------------------------------------------------

#: Constants, as making a ``Fraction`` costs more than the comparison it serves.
_ZERO, _ONE = Fraction(0), Fraction(1)


def score(accepted: Predicate, contact: Predicate) -> Fraction:
    """§7.2.4: 1/N for each of the N terms of the Accept-Contact predicate whose feature tag the contact
    predicate also has a term for. An empty Accept-Contact predicate scores 1 (R24)."""
    if not accepted.terms:
        return _ONE
    present = contact.tags
    return Fraction(sum(term.tag in present for term in accepted.terms), len(accepted.terms))


def _rejected(preferences: Preferences, contact: Predicate) -> bool:
    # §7.2.4: a Reject-Contact predicate naming a tag the contact predicate lacks is discarded for this
    # contact; otherwise a match removes the contact. So only explicitly indicated features reject.
    present = contact.tags
    return any(rejected.tags <= present and matches(rejected, contact) for rejected in preferences.reject)


def _qa(preferences: Preferences, contact: Predicate) -> Fraction | None:
    """The caller preference Qa of a contact predicate, or ``None`` when the contact is dropped (§7.2.4)."""
    if _rejected(preferences, contact):
        return None
    if not preferences.accept:
        return _ONE  # nothing asked for: no caller ordering (R24)
    scores: list[Fraction] = []  # the scores of the matching set Ms
    for accepted in preferences.accept:
        if not matches(accepted.predicate, contact):
            if accepted.require:
                return None  # no match with the require flag: the URI is discarded
            continue  # no match without it: the predicate leaves the matching set
        value = score(accepted.predicate, contact)
        if value < 1 and accepted.explicit:  # Figure 1
            if accepted.require:
                return None
            value = _ZERO
        scores.append(value)
    if not scores:
        return _ZERO  # matched none of the caller's predicates: tried last in its q class (R24)
    return sum(scores, _ZERO) / len(scores)  # "the arithmetic average of S1 through SM"


def _by_q_then_qa(targets: list[tuple[int, Target]]) -> list[Target]:
    # "sorted by the q-value provided by the callee", then by Qa within each class of equal q; equal
    # (q, Qa) keep the order the contacts came in (the registration order), so the sort is stable.
    if len(targets) == 1:  # the common case, one device: nothing to sort
        return [targets[0][1]]
    targets.sort(key=lambda item: (-item[1].q, -(item[1].qa or 0), item[0]))
    return [target for _, target in targets]


def rank(preferences: Preferences, contacts: Sequence[tuple[NameAddr, float]]) -> list[Target]:
    """The ordered target set of §7.2.3–§7.2.4 for contacts given with their registration q-values.

    Contacts without feature parameters are immune: kept, with Qa 1.0 (§7.2.3, §7.2.4). If nothing is left
    and the preferences were implicit, the processing is discarded and the original target set, ordered by
    q, is returned (§7.2.4), with ``qa`` ``None``.
    """
    kept: list[tuple[int, Target]] = []
    for index, (contact, q) in enumerate(contacts):
        predicate = contact_predicate(contact.params)
        qa = _ONE if predicate is None else _qa(preferences, predicate)
        if qa is not None:
            kept.append((index, Target(contact, q, qa)))
    if not kept and preferences.implicit:
        return _by_q_then_qa([(index, Target(contact, q, None)) for index, (contact, q) in enumerate(contacts)])
    return _by_q_then_qa(kept)


def order_targets(request: Request, contacts: Sequence[tuple[NameAddr, float]]) -> list[Target]:
    """The target set a proxy forks to for ``request``: ``contacts`` (each with its registration q) after
    the caller preferences of RFC 3841 §7.2, best first."""
    return rank(preferences_of(request), contacts)


# -- §9.1: Request-Disposition ------------------------------------------------------------------------------

#: Each directive of §10 and the type it belongs to (§9.1: "The directives are grouped into types").
DIRECTIVE_TYPES = {
    "proxy": "proxy", "redirect": "proxy",
    "cancel": "cancel", "no-cancel": "cancel",
    "fork": "fork", "no-fork": "fork",
    "recurse": "recurse", "no-recurse": "recurse",
    "parallel": "parallel", "sequential": "parallel",
    "queue": "queue", "no-queue": "queue",
}


@dataclass(frozen=True, slots=True)
class Disposition:
    """The Request-Disposition directives of a request, one per type (§9.1); ``None`` where the caller gave
    none, and the server's local policy decides."""

    proxy: Literal["proxy", "redirect"] | None = None
    cancel: Literal["cancel", "no-cancel"] | None = None
    fork: Literal["fork", "no-fork"] | None = None
    recurse: Literal["recurse", "no-recurse"] | None = None
    parallel: Literal["parallel", "sequential"] | None = None
    queue: Literal["queue", "no-queue"] | None = None


def disposition(directives: Iterable[str]) -> Disposition:
    """The Disposition of a Request-Disposition header's tokens (§9.1, §10).

    Directives compare case-insensitively (RFC 5234 §2.3: ABNF literals are). A token §10 does not list is
    ignored: the set "is not extensible on purpose" (§9.1). Two different directives of one type leave that
    type unset (R25). "fork", "recurse" and "parallel" directives are "ignored if 'redirect' has been
    requested" (§9.1), so they are unset then.
    """
    chosen: dict[str, str | None] = {}
    for token in directives:
        directive = token.lower()
        kind = DIRECTIVE_TYPES.get(directive)
        if kind is None:
            continue
        chosen[kind] = directive if chosen.get(kind, directive) == directive else None
    if chosen.get("proxy") == "redirect":
        for kind in ("fork", "recurse", "parallel"):
            chosen.pop(kind, None)
    return Disposition(**chosen)  # type: ignore[arg-type]


#: The Disposition of a request without Request-Disposition (most of them): no directive, local policy.
_NONE = Disposition()


def request_disposition(request: Request) -> Disposition:
    """The Request-Disposition of a request (§7.1: executed by the owner of the Request-URI's domain)."""
    directives = request.header("Request-Disposition")
    return disposition(directives) if directives else _NONE
