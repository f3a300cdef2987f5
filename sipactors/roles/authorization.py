"""Watcher authorization: may this watcher see this presentity's presence, and how (RFC 5025, simplified).

RFC 5025 §3.2.1 gives a presence rule one action, *sub-handling*: ``block`` (the subscription is
terminated), ``confirm`` (pending until the presentity decides), ``polite-block`` (active, with a neutral
document) or ``allow``; ``sipactors.roles.events.Authorization`` names them. Its conditions (§3.1.1, RFC 4745
§7.1) say to whom a rule applies: one identity (``<one id="sip:bob@example.com"/>``), every identity of a
domain (``<many domain="example.com"/>``), or anyone (``<many/>``).

This server keeps that vocabulary but not RFC 4745 §10.2's combination (the *largest* sub-handling of all
matching rules wins). Here the *most specific* rule wins, which is what a user who writes "allow everyone at
example.com, but block bob@example.com" means:

1. a presentity watching itself is always allowed (RFC 3856 §6.6.2 asks for the presentity's authorization,
   which its own subscription carries; RFC 3857 §4.6 recommends the same for watcher information);
2. a rule for exactly this watcher (its canonical AOR; RFC 5025 §3.1.1.2: URIs of different schemes are
   never equal, so ``tel:+1...`` does not match ``sip:+1...@...``);
3. a rule for the watcher's domain, ``*@example.com`` (SIP and SIPS URIs only: a tel URI has no domain);
4. the presentity's own default, ``*``;
5. the server's default: ``confirm`` unless configured otherwise, so an unknown watcher stays PENDING and
   the presentity learns of it through watcher information (RFC 3857 §4.7.1: "no policy" → pending; RFC
   3856 §6.6.2: no subscription is accepted without the presentity's authorization).

Pure: the rules come from a ``RuleStore`` (``sipactors.store.rules``), read at every decision, so a rule
written by ``sipactors presence allow`` in another process counts from the next SUBSCRIBE on.
"""

from __future__ import annotations

from sipactors.roles.events import Authorization
from sipactors.store.rules import ANY_WATCHER, RuleStore, domain_rule

__all__ = ["WatcherRules", "watcher_domain"]


def watcher_domain(watcher: str) -> str | None:
    """The domain of a canonical SIP or SIPS AOR (``sip:bob@example.com`` → ``example.com``); None for other
    schemes, which have no domain to match (RFC 5025 §3.1.1.2)."""
    scheme, _, rest = watcher.partition(":")
    if scheme not in ("sip", "sips") or not rest:
        return None
    host = rest.rpartition("@")[2]
    if host.startswith("["):  # an IPv6 reference: the port, if any, follows the bracket
        return host[: host.index("]") + 1].lower() if "]" in host else None
    return host.partition(":")[0].lower() or None


class WatcherRules:
    """Decides an ``Authorization`` for (presentity, watcher), both canonical AORs (``canonical_aor``)."""

    def __init__(self, rules: RuleStore, default: Authorization = Authorization.PENDING) -> None:
        self.rules = rules
        self.default = default  # the server's default (step 5 above)

    def decide(self, presentity: str, watcher: str) -> Authorization:
        if presentity == watcher:
            return Authorization.ALLOW
        domain = watcher_domain(watcher)
        candidates = (watcher, domain_rule(domain), ANY_WATCHER) if domain else (watcher, ANY_WATCHER)
        found = self.rules.lookup(presentity, candidates)  # one query for the three rules that may apply
        for candidate in candidates:  # most specific first
            action = found.get(candidate)
            if action is not None:
                return action
        return self.default
