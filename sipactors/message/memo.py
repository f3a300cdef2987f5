"""A bounded memo for parse results that repeat between messages (start lines, name-addrs, header lines).

Keys come from the network, so the memo must stay small whatever arrives, and lines that are unique per
message (a Via with a fresh branch, a From with a fresh tag) must not push out the ones that repeat (the
To and Contact of a user agent). Two generations do both: new entries go into the young dict; when it is
full it becomes the old one and the previous old one is dropped; a hit in the old dict is copied back
into the young one. An entry used at least once per generation therefore stays, at most ``2 * limit``
entries are kept, and every operation is a dict lookup or two.

Values must be immutable: every message that hits receives the same object.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

__all__ = ["Memo"]


class Memo:
    __slots__ = ("young", "old", "limit")

    def __init__(self, limit: int = 4096) -> None:
        self.young: dict[Hashable, Any] = {}
        self.old: dict[Hashable, Any] = {}
        self.limit = limit

    def get(self, key: Hashable) -> Any:
        value = self.young.get(key)
        if value is None:
            value = self.old.get(key)
            if value is not None:
                self.put(key, value)
        return value

    def put(self, key: Hashable, value: Any) -> None:
        young = self.young
        if len(young) >= self.limit:
            self.old = young
            self.young = young = {}
        young[key] = value

    def clear(self) -> None:
        self.young = {}
        self.old = {}

    def __len__(self) -> int:
        return len(self.young) + len(self.old)
