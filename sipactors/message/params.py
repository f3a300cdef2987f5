"""Parameters: ``;name=value`` lists of URIs (RFC 3261 §19.1.1) and of header fields (§7.3.1, §20).

Names compare case-insensitively (§7.3.1: "parameter names ... are case-insensitive"); values are kept as
written (a quoted-string keeps its quotes) so a proxy re-emits them unchanged.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr


@mypyc_attr(native_class=False)  # mypyc compiles no subclass of tuple as a native class
class Params(tuple[tuple[str, str | None], ...]):
    """An ordered, immutable list of ``(name, value)``; ``value`` is ``None`` for a bare name.

    A tuple of its items, so building one costs what building a tuple costs (every Via and From of the
    hot path gets one); ``len``, iteration and truth are the items'. ``in`` and ``get`` look a name up
    case-insensitively.
    """

    __slots__ = ()

    @property
    def items(self) -> tuple[tuple[str, str | None], ...]:  # type: ignore[override]
        return tuple(self)

    def get(self, name: str, default: str | None = None) -> str | None:
        key: str | None = None  # lowered when first needed: the usual spelling, first, needs no lower()
        for item_name, value in self:
            if item_name == name:
                return value
            if key is None:
                key = name.lower()
            if item_name.lower() == key:
                return value
        return default

    def __contains__(self, name: object) -> bool:
        if type(name) is not str:
            return False
        key: str | None = None  # as in ``get``; one pass: most Params hold one or two
        for item_name, _ in self:
            if item_name == name:
                return True
            if key is None:
                key = name.lower()
            if item_name.lower() == key:
                return True
        return False

    def names(self) -> list[str]:
        return [name for name, _ in self]

    def replace(self, name: str, value: str | None) -> Params:  # type: ignore[override]
        """A copy with ``name`` set to ``value`` (appended when absent)."""
        key = name.lower()
        items = list(self)
        for index, (item_name, _) in enumerate(items):
            if item_name.lower() == key:
                items[index] = (item_name, value)
                return Params(items)
        items.append((name, value))
        return Params(items)

    def without(self, name: str) -> Params:
        key = name.lower()
        return Params(item for item in self if item[0].lower() != key)

    def render(self) -> str:
        """``;a=b;c`` — the canonical form (no whitespace around ``;`` and ``=``)."""
        if not self:
            return ""
        return "".join([f";{name}" if value is None else f";{name}={value}" for name, value in self])

    def __str__(self) -> str:
        return self.render()

    def __repr__(self) -> str:
        return f"Params({tuple(self)!r})"


EMPTY_PARAMS = Params()


def unquote(value: str | None) -> str | None:
    """The content of a quoted-string (RFC 3261 §25.1: quoted-pair "\\" c stands for c), or the token."""
    if value is None:
        return None
    text = value.strip(" \t")
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        out: list[str] = []
        index = 0
        while index < len(inner):
            char = inner[index]
            if char == "\\" and index + 1 < len(inner):
                index += 1
                char = inner[index]
            out.append(char)
            index += 1
        return "".join(out)
    return text


def quote(value: str) -> str:
    """A quoted-string for ``value`` (escaping ``"`` and ``\\``)."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
