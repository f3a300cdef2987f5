"""``sipactors lists``: the presence lists a resource list server serves (RFC 4662; ``sipactors.store.lists``).

    sipactors lists add [LIST-URI] --owner AOR [--name NAME]   # LIST-URI defaults to sip:USER-buddies@DOMAIN
    sipactors lists del LIST-URI
    sipactors lists member add LIST-URI MEMBER [--name NAME] [--domain D ...]
    sipactors lists member del LIST-URI MEMBER
    sipactors lists show [LIST-URI]

A member must be a local presentity: its domain is the list's or the owner's, or one given with ``--domain``
(the server's other domains); members elsewhere would need back-end SUBSCRIBEs (RFC 4662 §6), which this
server does not make. A running server sees the change at the list's next NOTIFY.

Exit status as ``sipactors users``: 0 done, 1 no such list or member, 64 a usage error, 66 no store.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TextIO

from sipactors.admin import EX_NOTHING, EX_USAGE, _open, _table
from sipactors.roles.rls import check_member, local_domains
from sipactors.store.lists import PresenceList, default_list_uri
from sipactors.store.model import canonical_aor

__all__ = ["run_lists"]


def _sip(text: str) -> str:
    """``user@domain`` as ``sip:user@domain`` (as ``sipactors users add`` takes it); a URI as it is."""
    return text if ":" in text.partition("@")[0] else f"sip:{text}"


def _host(uri: str) -> str:
    return uri.partition("@")[2]


def _show(found: Sequence[PresenceList], out: TextIO) -> None:
    rows = [("LIST", "OWNER", "NAME", "MEMBER", "MEMBER NAME")]
    for entry in found:
        rows.append((entry.uri, entry.owner, entry.name or "-", "", ""))
        rows.extend(("", "", "", member.uri, member.name or "-") for member in entry.members)
    _table(rows, out)


def run_lists(action: str, url: str, list_uri: str | None = None, owner: str | None = None, name: str = "",
              member: str | None = None, domains: Sequence[str] = (), out: TextIO | None = None) -> int:
    """``action``: add, del, member-add, member-del or show."""
    out = out or sys.stdout
    command = f"sipactors lists {action.replace('-', ' ')}"
    list_uri, owner, member = (_sip(text) if text else None for text in (list_uri, owner, member))
    try:
        if action == "add":
            if owner is None:
                raise ValueError("--owner AOR is required (RFC 4662 §4.4: the owner is who may subscribe)")
            list_uri = list_uri or default_list_uri(owner)
        list_uri = canonical_aor(list_uri) if list_uri is not None else None
    except ValueError as error:
        print(f"{command}: {error}", file=sys.stderr)
        return EX_USAGE
    opened = _open("lists", url, create=action == "add")
    if isinstance(opened, int):
        return opened
    with opened as store:
        lists = store.lists
        if action == "add":
            assert list_uri is not None and owner is not None
            try:
                new = lists.put(list_uri, owner, name)
            except ValueError as error:
                print(f"{command}: {error}", file=sys.stderr)
                return EX_USAGE
            print(f"{'added' if new else 'updated'} {list_uri} (owner {canonical_aor(owner)})", file=out)
            return 0
        if action == "show":
            found = lists.all() if list_uri is None else [entry for entry in [lists.get(list_uri)] if entry]
            if not found:
                print(f"no presence list{f' {list_uri}' if list_uri else 's'}", file=out)
                return EX_NOTHING if list_uri else 0
            _show(found, out)
            return 0
        assert list_uri is not None
        entry = lists.get(list_uri)
        if entry is None:
            print(f"{command}: no presence list {list_uri}", file=sys.stderr)
            return EX_NOTHING
        if action == "del":
            lists.remove(list_uri)
            print(f"deleted {list_uri} ({len(entry.members)} members)", file=out)
            return 0
        assert member is not None
        try:
            if action == "member-add":
                is_local = local_domains([_host(entry.uri), _host(entry.owner), *domains])
                uri = check_member(lists, list_uri, member, is_local)
                new = lists.add_member(list_uri, uri, name)
                print(f"{'added' if new else 'renamed'} {uri} in {list_uri}", file=out)
                return 0
            uri = canonical_aor(member)
        except ValueError as error:
            print(f"{command}: {error}", file=sys.stderr)
            return EX_USAGE
        if not lists.remove_member(list_uri, uri):
            print(f"{command}: {uri} is not in {list_uri}", file=sys.stderr)
            return EX_NOTHING
        print(f"removed {uri} from {list_uri}", file=out)
        return 0
