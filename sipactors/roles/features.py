"""Feature sets of SIP user agents (RFC 3840) as RFC 2533 predicates, and the RFC 2533 match of two of them.

Two rules hold the module together:

1. A feature parameter is a conjunction term on one feature tag, a disjunction of possibly negated simple
   filters (RFC 3840 §5, read backwards by RFC 3841 §8). Tags the predicate does not mention are left free:
   "feature set predicates are inclusive by default" (RFC 3840 Appendix A). RFC 3840 gives no tag a default
   value — not ``sip.methods`` either (§10.14 only says what listed values mean) — so an absent tag is
   unconstrained, never an implicit ``FALSE`` or method list.
2. Two predicates match when one feature collection satisfies both (RFC 2533 §5; RFC 3840 Appendix A). Every
   term names one tag, so the question splits per tag: is there one value satisfying every term on that tag?
   ``_satisfiable`` answers it exactly by trying one value from each region in which no filter changes its
   verdict.

Names are decoded per RFC 3841 §8 (``+`` removed, ``!`` → ``:``, ``'`` → ``/``, ``sip.`` added to a base tag)
and compared case-insensitively (RFC 3261 §7.3.1: parameter names are case-insensitive). Values: tokens and
booleans compare case-insensitively, ``<strings>`` case-sensitively, numbers as exact rationals (RFC 3841
§7.2.4). A parameter named like a feature tag whose value is not an RFC 3840 §9 ``feature-param`` value is
not a feature parameter (spec/rulings.md R23).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from typing import Literal

from sipactors.message.params import Params

__all__ = [
    "BASE_TAGS", "FeatureSyntaxError", "Filter", "Predicate", "Term", "contact_predicate", "decode_tag",
    "feature_params", "is_feature_name", "matches", "parse_term",
]

#: RFC 3840 §9 ``base-tags`` (the same twenty names RFC 3841 §7.2.1 and §7.2.3 step 2 list).
BASE_TAGS = frozenset({
    "audio", "automata", "class", "duplex", "data", "control", "mobility", "description", "events", "priority",
    "methods", "schemes", "application", "video", "language", "type", "isfocus", "actor", "text", "extensions",
})
#: Base tags that are not in the SIP tree: RFC 3841 §8 adds ``sip.`` to every base tag but these two
#: (its example decodes ``language="en,de"`` to ``(language=en)``; RFC 3840 §5 lists them without ``sip.``).
_UNPREFIXED_BASE_TAGS = frozenset({"language", "type"})
#: Contact parameters that start with ``+`` yet describe no capability (spec/rulings.md R23): RFC 5626's
#: instance identifier names one device.
NOT_FEATURE_TAGS = frozenset({"+sip.instance"})

# RFC 3840 §9, inside the quotes: tag-value-list and string-value (the quotes themselves belong to the
# parameter value and are stripped first).
_NUMBER = r"[+-]?[0-9]+(?:\.[0-9]*)?"
_TAG_VALUE = (
    rf"!?(?:[A-Za-z0-9\-.%*_+`'~]+|#(?:>=|<=|=|{_NUMBER}:){_NUMBER})"  # token-nobang covers boolean
)
_TAG_VALUE_LIST = re.compile(rf"{_TAG_VALUE}(?:,{_TAG_VALUE})*")
_STRING_VALUE = re.compile(r'<((?:[^<>"\\\x00-\x08\x0a-\x1f\x7f]|\\[\x00-\x09\x0b\x0c\x0e-\x7f])*)>')
_FTAG_NAME = re.compile(r"\+[A-Za-z][A-Za-z0-9!'.\-%]*")
_QUOTED_PAIR = re.compile(r"\\(.)")


class FeatureSyntaxError(ValueError):
    """A feature parameter whose value is not RFC 3840 §9 syntax."""


@dataclass(frozen=True, slots=True)
class Filter:
    """One simple filter of RFC 2533 on the term's tag, maybe negated (RFC 3841 §8).

    ``kind`` says how values compare (RFC 3841 §7.2.4): ``token`` (booleans too) case-insensitively — ``text``
    is kept lower-cased —, ``string`` case-sensitively, ``number`` as the closed interval ``[low, high]``
    (``None`` is unbounded: ``#>=2`` is ``[2, None]``, ``#=5`` is ``[5, 5]``, ``#1:3`` is ``[1, 3]``).
    """

    kind: Literal["token", "string", "number"]
    text: str = ""
    low: Fraction | None = None
    high: Fraction | None = None
    negated: bool = False

    def holds(self, value: _Value) -> bool:
        """Whether a feature collection whose tag has ``value`` passes this filter."""
        kind, content = value
        if kind != self.kind:
            hit = False
        elif kind == "number":
            assert isinstance(content, Fraction)
            hit = (self.low is None or content >= self.low) and (self.high is None or content <= self.high)
        else:
            hit = content == self.text  # a fresh value (None) equals no written one
        return hit != self.negated


@dataclass(frozen=True, slots=True)
class Term:
    """A conjunction term: the disjunction of ``filters`` on one decoded feature tag (RFC 3841 §8)."""

    tag: str
    filters: tuple[Filter, ...]


@dataclass(frozen=True, slots=True)
class Predicate:
    """A feature set predicate in conjunctive normal form, one term per feature parameter (RFC 3841 §8)."""

    terms: tuple[Term, ...] = ()

    @property
    def tags(self) -> frozenset[str]:
        return frozenset(term.tag for term in self.terms)

    def __len__(self) -> int:
        return len(self.terms)


def decode_tag(name: str) -> str:
    """The RFC 2506 feature tag an encoded parameter name stands for (RFC 3841 §8), lower-cased."""
    name = name.lower()
    if name.startswith("+"):
        return name[1:].replace("!", ":").replace("'", "/")
    return name if name in _UNPREFIXED_BASE_TAGS else "sip." + name


def is_feature_name(name: str) -> bool:
    """Whether a header field parameter name is a feature parameter's (RFC 3841 §7.2.1, RFC 3840 §9)."""
    lowered = name.lower()
    if lowered in BASE_TAGS:
        return True
    return lowered not in NOT_FEATURE_TAGS and _FTAG_NAME.fullmatch(name) is not None


def _number(text: str) -> Fraction:
    # RFC 3841 §8 shifts the decimal point into a rational I / 10**N; Fraction of the decimal text is that
    # rational, exact ("#-4:+5.125" is -4..5125/1000).
    return Fraction(text)


def _filter(tag_value: str) -> Filter:
    negated = tag_value.startswith("!")  # RFC 3841 §8: "(! <filter from remainder>)"
    body = tag_value[1:] if negated else tag_value
    if not body.startswith("#"):  # token-nobang or boolean: (name=tag-value)
        return Filter("token", body.lower(), negated=negated)
    relation = body[1:]
    for comparator in (">=", "<=", "="):  # (name comparator compare-value)
        if relation.startswith(comparator):
            value = _number(relation[len(comparator):])
            low = None if comparator == "<=" else value
            high = None if comparator == ">=" else value
            return Filter("number", low=low, high=high, negated=negated)
    low_text, high_text = relation.split(":")  # a range: (name=low..high)
    return Filter("number", low=_number(low_text), high=_number(high_text), negated=negated)


def parse_term(name: str, value: str | None) -> Term:
    """The conjunction term of one feature parameter (RFC 3841 §8).

    ``value`` is as the message layer keeps it (quotes included). No value means ``TRUE`` (RFC 3841 §8).
    Raises ``FeatureSyntaxError`` for a value that is not ``LDQUOT (tag-value-list / string-value) RDQUOT``.
    """
    tag = decode_tag(name)
    if value is None:
        return Term(tag, (Filter("token", "true"),))
    if len(value) < 2 or value[0] != '"' or value[-1] != '"':
        raise FeatureSyntaxError(f"feature parameter {name} has an unquoted value (RFC 3840 §9)")
    inner = value[1:-1]
    string = _STRING_VALUE.fullmatch(inner)
    if string is not None:  # (name="qdtext"), compared case-sensitively
        return Term(tag, (Filter("string", _QUOTED_PAIR.sub(r"\1", string.group(1))),))
    if _TAG_VALUE_LIST.fullmatch(inner) is None:
        raise FeatureSyntaxError(f"feature parameter {name} is neither tag-value-list nor string-value")
    # a tag-value-list is a disjunction with one filter per tag-value (RFC 3841 §8)
    return Term(tag, tuple(_filter(tag_value) for tag_value in inner.split(",")))


def feature_params(params: Params) -> Iterator[tuple[str, str | None]]:
    """The parameters of a header field value that are feature parameters by name (RFC 3841 §7.2.1)."""
    return ((name, value) for name, value in params if is_feature_name(name))


def contact_predicate(params: Params) -> Predicate | None:
    """The contact predicate of a registered Contact's parameters (RFC 3841 §7.2.3), or ``None`` when the
    contact has no feature parameters and is therefore immune to caller preferences.

    Steps 2 and 3 of §7.2.3: base-tag parameters are taken, and a ``+`` parameter only when the list does not
    already hold its name with the plus removed. A parameter whose value is not feature-param syntax is no
    feature parameter (R23): the contact then says nothing about that tag.
    """
    candidates = list(feature_params(params))
    names = {name.lower() for name, _ in candidates}
    terms: list[Term] = []
    for name, value in candidates:
        if name.startswith("+") and name[1:].lower() in names:
            continue  # step 3: "+video" gives way to "video"
        try:
            terms.append(parse_term(name, value))
        except FeatureSyntaxError:
            continue
    return Predicate(tuple(terms)) if terms else None


# -- RFC 2533 matching ----------------------------------------------------------------------------------

#: A value a feature tag takes in a feature collection: its kind and its content; ``None`` content is a
#: token or string written in no filter (one stands for all of them: no filter tells them apart).
_Value = tuple[str, "str | Fraction | None"]


def _candidates(filters: Iterable[Filter]) -> Iterator[_Value]:
    """One value from every region of the value space in which each filter's verdict is constant."""
    tokens: set[str] = set()
    strings: set[str] = set()
    bounds: set[Fraction] = set()
    for flt in filters:
        if flt.kind == "token":
            tokens.add(flt.text)
        elif flt.kind == "string":
            strings.add(flt.text)
        else:
            bounds.update(bound for bound in (flt.low, flt.high) if bound is not None)
    yield from (("token", text) for text in tokens)
    yield ("token", None)
    yield from (("string", text) for text in strings)
    yield ("string", None)
    # Intervals are closed, so a verdict can only change at a bound: the bounds themselves, a point between
    # each two neighbours and a point beyond each end cover every region.
    ordered = sorted(bounds)
    if not ordered:
        yield ("number", Fraction(0))
        return
    yield ("number", ordered[0] - 1)
    for low, high in zip(ordered, ordered[1:], strict=False):
        yield ("number", low)
        yield ("number", (low + high) / 2)
    yield ("number", ordered[-1])
    yield ("number", ordered[-1] + 1)


def _satisfiable(terms: list[Term]) -> bool:
    """Whether one value of a tag passes every term (each a disjunction) on that tag."""
    every = [flt for term in terms for flt in term.filters]
    return any(
        all(any(flt.holds(value) for flt in term.filters) for term in terms) for value in _candidates(every)
    )


def matches(first: Predicate, second: Predicate) -> bool:
    """RFC 2533 match: some feature collection satisfies both predicates (RFC 3840 Appendix A: computed
    independently for each media feature). A tag only one predicate names is still checked: a term no value
    satisfies (``#5:2``) makes its predicate match nothing."""
    by_tag: dict[str, list[Term]] = {}
    for term in (*first.terms, *second.terms):
        by_tag.setdefault(term.tag, []).append(term)
    return all(_satisfiable(terms) for terms in by_tag.values())
