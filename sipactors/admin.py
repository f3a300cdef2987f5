"""``sipactors users``, ``sipactors bindings`` and ``sipactors messages``: look into the store and manage who
may register.

``users add`` computes HA1 = H(username ":" realm ":" password) for MD5 and SHA-256 (RFC 7616 §3.4.2) and
stores only those; the password is never written anywhere.

Exit status: 0 done, 1 nothing to delete, 64 a usage error (bad store URL, no password), 66 the store cannot
be opened (or, for a command that only reads or deletes, does not exist yet).
"""

from __future__ import annotations

import getpass
import hashlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from sipactors.store import (
    MemoryStore,
    SqliteStore,
    StoreError,
    canonical_aor,
    open_store,
    store_file,
)

__all__ = ["ha1", "run_bindings", "run_messages", "run_users"]

EX_NOTHING, EX_USAGE, EX_NOINPUT = 1, 64, 66

ALGORITHMS = {"MD5": "md5", "SHA-256": "sha256"}  # RFC 7616 §3.3 names -> hashlib names


def ha1(algorithm: str, username: str, realm: str, password: str) -> str:
    """RFC 7616 §3.4.2: A1 = unq(username) ":" unq(realm) ":" passwd; HA1 = H(A1), lower-case hex."""
    return hashlib.new(ALGORITHMS[algorithm], f"{username}:{realm}:{password}".encode()).hexdigest()


def _open(command: str, url: str, create: bool) -> MemoryStore | SqliteStore | int:
    """The store, or the exit status after saying why not."""
    try:
        path = store_file(url)
    except ValueError as error:
        print(f"sipactors {command}: {error}", file=sys.stderr)
        return EX_USAGE
    if not create and path is not None and not Path(path).exists():
        print(f"sipactors {command}: no store at {path} ('sipactors users add' creates one)", file=sys.stderr)
        return EX_NOINPUT
    try:
        return open_store(url)
    except StoreError as error:
        print(f"sipactors {command}: {url}: {error}", file=sys.stderr)
        return EX_NOINPUT


def _open_listing(command: str, url: str, aor: str | None) -> tuple[MemoryStore | SqliteStore, str | None] | int:
    """For a command that lists by AOR: the existing store and the AOR in canonical form (RFC 3261 §10.3
    step 5), or the exit status after saying why not."""
    if aor is not None:
        try:
            aor = canonical_aor(aor)
        except ValueError as error:
            print(f"sipactors {command}: {error}", file=sys.stderr)
            return EX_USAGE
    opened = _open(command, url, create=False)
    return opened if isinstance(opened, int) else (opened, aor)


def _table(rows: Sequence[tuple[str, ...]], out: TextIO) -> None:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)


def _password(password: str | None, from_stdin: bool) -> str | None:
    if from_stdin:
        line = sys.stdin.readline()
        return line[:-1] if line.endswith("\n") else line
    if password is not None:
        return password
    if not sys.stdin.isatty():
        return None
    first = getpass.getpass("password: ")
    if getpass.getpass("again: ") != first:
        print("sipactors users add: the passwords differ", file=sys.stderr)
        return None
    return first


def run_users(action: str, url: str, user: str | None = None, domain: str | None = None, realm: str | None = None,
              password: str | None = None, password_stdin: bool = False, out: TextIO | None = None) -> int:
    out = out or sys.stdout  # read at call time: tests and callers may have replaced it
    if action == "add":
        assert user is not None
        name, _, user_domain = user.partition("@")
        domain = domain or user_domain
        if not name or not domain:
            print("sipactors users add: which domain? USER@DOMAIN or --domain DOMAIN", file=sys.stderr)
            return EX_USAGE
        realm = realm or domain  # the usual choice (RFC 7616 §3.3: a realm names a protection space)
        secret = _password(password, password_stdin)
        if not secret:
            print("sipactors users add: no password (--password-stdin, --password, or type it at a terminal)",
                  file=sys.stderr)
            return EX_USAGE
        opened = _open("users", url, create=True)
        if isinstance(opened, int):
            return opened
        with opened as store:
            new = store.users.add(name, domain, realm, {a: ha1(a, name, realm, secret) for a in ALGORITHMS})
        print(f"{'added' if new else 'updated'} {name} (domain {domain}, realm {realm}; HA1 for {', '.join(ALGORITHMS)})",
              file=out)
        return 0
    opened = _open("users", url, create=False)
    if isinstance(opened, int):
        return opened
    with opened as store:
        if action == "del":
            assert user is not None
            name, _, _ = user.partition("@")
            removed = store.users.remove(name, realm)
            if not removed:
                print(f"sipactors users del: no user {name}" + (f" in realm {realm}" if realm else ""), file=sys.stderr)
                return EX_NOTHING
            print(f"deleted {name} ({removed} realm{'s' if removed > 1 else ''})", file=out)
            return 0
        users = store.users.list()
        if not users:
            print("no users: the server accepts every REGISTER without authentication", file=out)
            return 0
        _table([("USER", "DOMAIN", "REALM", "HA1")]
               + [(u.user, u.domain, u.realm, ",".join(u.algorithms)) for u in users], out)
        return 0


def run_bindings(url: str, aor: str | None = None, now: float | None = None, out: TextIO | None = None) -> int:
    """The unexpired bindings of ``aor`` (of every AOR if None); ``now`` defaults to the wall clock."""
    out = out or sys.stdout
    when = time.time() if now is None else now
    opened = _open_listing("bindings", url, aor)
    if isinstance(opened, int):
        return opened
    found, aor = opened
    with found as store:
        aors = [aor] if aor is not None else store.locations.all_aors(when)
        rows = [
            (b.aor, b.contact, f"{int(b.expires - when)}s", "-" if b.q is None else f"{b.q:g}", b.instance or "-")
            for each in aors for b in store.locations.bindings(each, when)
        ]
    if not rows:
        print(f"no bindings{f' for {aor}' if aor else ''}", file=out)
        return 0
    _table([("AOR", "CONTACT", "EXPIRES IN", "Q", "INSTANCE"), *rows], out)
    return 0


def run_messages(url: str, aor: str | None = None, now: float | None = None, out: TextIO | None = None) -> int:
    """The stored MESSAGEs waiting for ``aor`` (for every AOR if None), oldest first (RFC 3428 §7);
    ``now`` defaults to the wall clock."""
    out = out or sys.stdout
    when = time.time() if now is None else now
    opened = _open_listing("messages", url, aor)
    if isinstance(opened, int):
        return opened
    found, aor = opened
    with found as store:
        waiting = store.messages.waiting(aor, when) if aor is not None else store.messages.all(when)
    if not waiting:
        print(f"no messages{f' for {aor}' if aor else ''}", file=out)
        return 0
    _table([("AOR", "ID", "FROM", "DATE", "TYPE", "BYTES", "EXPIRES IN", "SENDER"), *[
        (m.aor, str(m.id), m.from_, m.date, m.content_type or "-", str(len(m.body)), f"{int(m.expires - when)}s",
         m.sender or "-") for m in waiting]], out)
    return 0
