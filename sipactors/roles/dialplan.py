"""The dial plan: telephone numbers (RFC 3966 tel URIs, RFC 3261 §19.1.6 ``user=phone`` SIP URIs) to gateways.

A rule says: numbers beginning with ``prefix`` go to ``gateway``, after removing ``strip`` leading
characters and putting ``prepend`` in front. ``route(uri)`` gives the Request-URI for the gateway,
``sip:<number>@<gateway>;user=phone``, or ``None`` when the URI is no telephone number or no rule takes it.

The rules of this module:

* **What is a number.** A ``tel:`` URI (RFC 3966 §3), or a SIP/SIPS URI whose ``user`` parameter is
  ``phone`` (RFC 3261 §19.1.6: its userinfo is then a telephone-subscriber). A SIP URI of digits without
  ``user=phone`` is a user name, not a number, and is left to the location service.
* **How numbers compare.** Visual separators ``- . ( )`` are removed (RFC 3966 §5.1.1: they "are not used
  for URI comparison or placing a call"), escapes are undone, and hex digits compared in lower case
  (§4: "URI comparisons are case-insensitive"). A global number keeps its leading ``+`` (§5.1.4).
* **Which rule.** The longest ``prefix`` of the number wins. A prefix written with ``+`` matches global
  numbers only and one without matches local numbers only, so ``"+"`` is the default route for global
  numbers and ``""`` for local ones (§5.1.5: a local number "does NOT indicate a prefix that turns the local
  number into a global number", so the two never meet). A rule with a ``context`` takes only local numbers
  of that ``phone-context`` (compared as §4 says: a domain name case-insensitively, global digits without
  separators) and, at equal prefix length, beats a rule without one. A SIPS URI (RFC 3261 §26.2.2) is
  routed only by rules whose gateway is a SIPS URI.
* **What is sent.** The number becomes ``prepend + number[strip:]`` (``strip`` counts characters of the
  compared form, a global number's ``+`` included, and may not exceed the prefix: only what the rule
  matched is removed). Its tel parameters follow it into the userinfo (§19.1.6), their names and the
  values of isub, ext and postd folded to lower case, ordered as §19.1.6 recommends (``isub``, ``postd``, then the rest by name). A local result keeps the
  original ``phone-context``; a local result with no context to keep (a global number made local, the
  usual national-format gateway) is sent as bare digits: a telephone-subscriber with parameters but no
  context is no valid local number (RFC 3966 §5.1.5), while bare digits are a valid SIP ``user`` the
  gateway dials in its own context.

Which URIs to ask about is the caller's choice: a proxy routes the numbers of its own domains (and tel
URIs) here, and forwards a ``user=phone`` URI of another domain to that domain.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sipactors.message import URI, ParseError, SipURI, TelURI, parse_uri, unescape

__all__ = ["DialPlan", "DialRule", "PhoneNumber", "phone_number"]

_SEPARATORS = re.compile(r"[-.()]")
#: A number as compared: an optional "+", then phonedigit-hex characters (RFC 3966 §3) without separators.
_COMPARED = re.compile(r"\+?[0-9a-f*#]*")
_GLOBAL_DIGITS = re.compile(r"\+[0-9]+")
#: RFC 3966 §3 domainname (each label alphanumeric with inner hyphens, the last starting with a letter).
_DOMAIN = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)*[a-z](?:[a-z0-9-]*[a-z0-9])?\.?")
#: Characters left unescaped in a number or a parameter placed in a SIP userinfo: those both RFC 3261 §25.1
#: (unreserved, user-unreserved) and RFC 3966 §3 (paramchar) allow. ";" and "=" delimit parameters, ":"
#: and "@" would end the user, "#" starts a fragment: they travel escaped.
_USER_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&+$/")
#: Parameters whose values compare case-insensitively (RFC 3966 §3 isub and ext, RFC 2806 postd); RFC 3261
#: §19.1.6 excepts "future-extension parameters", whose values are kept as written.
_KNOWN = frozenset(("isub", "ext", "postd"))
#: RFC 3261 §19.1.6: "isdn-subaddress and post-dial ... occur first and in that order".
_FIRST = {"isub": 0, "postd": 1}


def compared(number: str) -> str:
    """A number as the dial plan compares it: unescaped, without visual separators, in lower case."""
    return _SEPARATORS.sub("", unescape(number)).lower()


def _context(descriptor: str) -> str:
    """A phone-context as RFC 3966 §4 compares it: global digits without separators, a domain name in
    lower case without its trailing dot."""
    text = unescape(descriptor)
    if text.startswith("+"):
        return _SEPARATORS.sub("", text)
    return text.lower().rstrip(".")


@dataclass(frozen=True, slots=True)
class PhoneNumber:
    """A telephone-subscriber (RFC 3966 §3) in the form the dial plan compares."""

    digits: str  # compared form: "+" first for a global number
    context: str | None  # phone-context (compared form), local numbers only
    params: tuple[tuple[str, str | None], ...]  # the other parameters, unescaped, names in lower case

    @property
    def is_global(self) -> bool:
        return self.digits.startswith("+")


def phone_number(uri: URI) -> PhoneNumber | None:
    """The number a tel URI or a ``user=phone`` SIP/SIPS URI names; ``None`` for any other URI."""
    if isinstance(uri, TelURI):
        number, params = uri.number, list(uri.params)
    elif isinstance(uri, SipURI) and uri.user is not None and (uri.params.get("user") or "").lower() == "phone":
        number, _, rest = uri.user.partition(";")
        params = [(name, value if eq else None) for name, eq, value in (p.partition("=") for p in rest.split(";") if p)]
    else:
        return None
    digits = compared(number)
    if not _COMPARED.fullmatch(digits):
        return None
    context: str | None = None
    others: list[tuple[str, str | None]] = []
    for name, value in params:
        if name.lower() == "phone-context":
            context = _context(value or "")
        else:
            key = unescape(name).lower()
            if value is not None:
                value = unescape(value).lower() if key in _KNOWN else unescape(value)
            others.append((key, value))
    return PhoneNumber(digits, None if digits.startswith("+") else context, tuple(others))


@dataclass(frozen=True, slots=True)
class DialRule:
    """One ``[[dialplan]]`` entry: numbers starting with ``prefix`` (of ``context``, if given) go to
    ``gateway`` as ``prepend + number[strip:]``. Checked when built: a bad rule is a configuration error."""

    prefix: str
    gateway: SipURI
    strip: int = 0
    prepend: str = ""
    context: str | None = None

    def __post_init__(self) -> None:
        prefix, prepend = compared(self.prefix), compared(self.prepend)
        if not _COMPARED.fullmatch(prefix):
            raise ValueError(f"prefix {self.prefix!r}: digits, a-f, * and # only, after an optional leading +")
        if not _COMPARED.fullmatch(prepend):
            raise ValueError(f"prepend {self.prepend!r}: digits, a-f, * and # only, after an optional leading +")
        if not 0 <= self.strip <= len(prefix):
            raise ValueError(f"strip {self.strip}: between 0 and the prefix's {len(prefix)} characters")
        if prepend and prefix.startswith("+") and self.strip == 0:
            raise ValueError(f"prepend {self.prepend!r} before a global number's +: strip at least 1")
        if self.context is not None:
            if prefix.startswith("+"):
                raise ValueError("a context applies to local numbers; this prefix matches global numbers")
            if not (_GLOBAL_DIGITS.fullmatch(_context(self.context)) or _DOMAIN.fullmatch(self.context.lower())):
                raise ValueError(f"context {self.context!r}: a domain name or + and digits (RFC 3966 §3 descriptor)")
        if self.gateway.user is not None or self.gateway.headers:
            raise ValueError(f"gateway {self.gateway}: a SIP URI with no user part and no headers")
        object.__setattr__(self, "prefix", prefix)
        object.__setattr__(self, "prepend", prepend)
        object.__setattr__(self, "context", None if self.context is None else _context(self.context))

    def takes(self, number: PhoneNumber, secure: bool) -> bool:
        """Whether this rule applies to ``number`` (module docstring, "Which rule")."""
        return (
            number.digits.startswith(self.prefix)
            and self.prefix.startswith("+") == number.is_global
            and (self.context is None or self.context == number.context)
            and (self.gateway.secure or not secure)
        )

    def rewrite(self, number: PhoneNumber) -> SipURI | None:
        """The gateway's Request-URI for ``number`` (module docstring, "What is sent"); ``None`` when
        stripping leaves nothing to dial."""
        digits = self.prepend + number.digits[self.strip:]
        if digits in ("", "+"):
            return None
        params = list(number.params)
        if not digits.startswith("+"):
            if number.context is None:
                params = []
            else:
                params.append(("phone-context", number.context))
        params.sort(key=lambda item: (_FIRST.get(item[0], 2), item[0]))
        user = _escape(digits) + "".join(f";{_escape(n)}" if v is None else f";{_escape(n)}={_escape(v)}" for n, v in params)
        gateway = self.gateway
        return SipURI(gateway.scheme, gateway.host, user, None, gateway.port, gateway.params.replace("user", "phone"))


def _escape(text: str) -> str:
    return "".join(char if char in _USER_SAFE else f"%{ord(char):02X}" for char in text)


class DialPlan:
    """The rules, and ``route``: the longest matching prefix wins (module docstring)."""

    def __init__(self, rules: Iterable[DialRule] = ()) -> None:
        self.rules = list(rules)
        seen: set[tuple[str, str | None]] = set()
        for rule in self.rules:
            key = (rule.prefix, rule.context)
            if key in seen:
                where = f" in context {rule.context}" if rule.context else ""
                raise ValueError(f"two rules for prefix {rule.prefix!r}{where}")
            seen.add(key)
        # longest prefix first, and a rule with a context before one without at equal length: the first
        # rule that takes a number is then the one the longest-prefix rule names
        self._ordered = sorted(self.rules, key=lambda rule: (-len(rule.prefix), rule.context is None))

    def __len__(self) -> int:
        return len(self.rules)

    def rule_for(self, uri: URI) -> tuple[DialRule, PhoneNumber] | None:
        number = phone_number(uri)
        if number is None:
            return None
        secure = isinstance(uri, SipURI) and uri.secure
        for rule in self._ordered:
            if rule.takes(number, secure):
                return rule, number
        return None

    def route(self, uri: URI) -> SipURI | None:
        """The Request-URI to send to the gateway for ``uri``, or ``None`` (no number, no rule, or a number
        that is all prefix, stripped to nothing)."""
        found = self.rule_for(uri)
        return None if found is None else found[0].rewrite(found[1])

    @classmethod
    def from_table(cls, entries: Sequence[Mapping[str, Any]]) -> DialPlan:
        """Rules from ``[[dialplan]]`` tables: ``prefix`` and ``gateway`` required; ``strip`` (0),
        ``prepend`` ("") and ``context`` optional. ``ValueError`` names the entry and the key at fault."""
        rules = []
        for index, entry in enumerate(entries, 1):
            where = f"[[dialplan]] entry {index}"
            unknown = set(entry) - {"prefix", "gateway", "strip", "prepend", "context"}
            if unknown:
                raise ValueError(f"{where}: unknown keys {sorted(unknown)} (prefix, gateway, strip, prepend, context)")
            for key in ("prefix", "gateway"):
                if not isinstance(entry.get(key), str):
                    raise ValueError(f"{where}: {key} is required, as a string")
            strip = entry.get("strip", 0)
            if not isinstance(strip, int) or isinstance(strip, bool):
                raise ValueError(f"{where}: strip must be a whole number")
            for key in ("prepend", "context"):
                if key in entry and not isinstance(entry[key], str):
                    raise ValueError(f"{where}: {key} must be a string")
            try:
                gateway = parse_uri(entry["gateway"], "gateway")
            except ParseError as error:
                raise ValueError(f"{where}: gateway {entry['gateway']!r}: {error}") from None
            if not isinstance(gateway, SipURI):
                raise ValueError(f"{where}: gateway {entry['gateway']!r} must be a sip: or sips: URI")
            try:
                rules.append(DialRule(entry["prefix"], gateway, strip, entry.get("prepend", ""), entry.get("context")))
            except ValueError as error:
                raise ValueError(f"{where}: {error}") from None
        try:
            return cls(rules)
        except ValueError as error:
            raise ValueError(f"[[dialplan]]: {error}") from None

