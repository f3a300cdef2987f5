"""``sipactors presence``: the watcher authorization rules in the store (RFC 5025 §3.2.1 sub-handling).

``sipactors presence allow|block|polite-block|confirm PRESENTITY WATCHER`` sets the rule for that watcher
(``bob``, ``bob@example.com``, a URI), for a whole domain (``*@example.com``) or for anyone (``*``, the
presentity's default); ``presence forget PRESENTITY WATCHER`` removes it; ``presence rules [PRESENTITY]``
lists them. A running server notices the change within a second (``sipactors.runtime.rules``).

A bare name gets a domain as ``sipactors users add`` gives one: ``--domain DOMAIN``; without it, the domain of
the store's users when they all have the same one; otherwise the command asks for USER@DOMAIN.

Exit status: 0 done, 1 nothing to forget, 64 a usage error, 66 the store cannot be opened (or, for a
command that only reads or removes, does not exist yet).
"""

from __future__ import annotations

import sys
from typing import TextIO

from sipactors.admin import EX_NOTHING, EX_USAGE, _open, _table
from sipactors.store import MemoryStore, SqliteStore
from sipactors.store.rules import canonical_presentity, canonical_watcher, parse_action

__all__ = ["ACTIONS", "run_presence"]

ACTIONS = ("allow", "block", "polite-block", "confirm")


def _default_domain(store: MemoryStore | SqliteStore, given: str | None) -> str | None:
    if given:
        return given
    domains = {user.domain for user in store.users.list()}
    return domains.pop() if len(domains) == 1 else None


def run_presence(action: str, url: str, presentity: str | None = None, watcher: str | None = None,
                 domain: str | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    opened = _open("presence", url, create=action in ACTIONS)
    if isinstance(opened, int):
        return opened
    with opened as store:
        default = _default_domain(store, domain)
        try:
            who = canonical_presentity(presentity, default) if presentity is not None else None
            whom = canonical_watcher(watcher, default) if watcher is not None else None
        except ValueError as error:
            hint = "" if default else " or --domain DOMAIN"
            print(f"sipactors presence {action}: {error}{hint}", file=sys.stderr)
            return EX_USAGE
        rules = store.presence_rules
        if action in ACTIONS:
            assert who is not None and whom is not None
            new = rules.set(who, whom, parse_action(action))
            print(f"{'added' if new else 'updated'}: {who} {action} {whom}", file=out)
            return 0
        if action == "forget":
            assert who is not None and whom is not None
            if not rules.forget(who, whom):
                print(f"sipactors presence forget: no rule of {who} for {whom}", file=sys.stderr)
                return EX_NOTHING
            print(f"forgot: {who} rule for {whom}", file=out)
            return 0
        listed = rules.rules(who)
    if not listed:
        print(f"no rules{f' for {who}' if who else ''}", file=out)
        return 0
    _table([("PRESENTITY", "WATCHER", "ACTION"), *((r.presentity, r.watcher, r.action.value) for r in listed)], out)
    return 0
