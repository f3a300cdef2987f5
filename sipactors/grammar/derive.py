"""Regular expressions derived from ``grammar/sip.lark`` for the hot-path parser.

DESIGN §2: the Lark grammar is the single source of syntactic truth; the hot path must not carry
hand-typed copies of it. This module reads ``sip.lark`` with Lark's own meta-grammar (``lark.lark``
shipped inside the lark package), and turns any rule or terminal into one Python regular expression by
inlining every rule and terminal it references. Header values are regular apart from ``comment``, which
the ABNF compiler already bounds (spec/rulings.md), so inlining always terminates; a recursive rule is
reported as an error instead of looping.

Named groups are put around the rules or terminals a caller asks to capture. Python's ``re`` refuses a
group name twice, so the second and later occurrences of a captured name are numbered ``name__2``, ...;
``first_group`` reads whichever matched.

The grammar file also carries directives in comments: ``// @param CONTEXT NAME = TERMINAL`` says which
terminal the value of a collapsed parameter must match (see grammar/sip-syntax.lark). They are exposed as
``SipGrammar.param_checks``.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree

__all__ = ["SipGrammar", "DeriveError", "first_group", "sip_grammar"]


class DeriveError(ValueError):
    """The grammar cannot be turned into a regular expression (unknown name, recursion)."""


@lru_cache(maxsize=1)
def _meta_parser() -> Lark:
    return Lark.open_from_package("lark", "lark.lark", ("grammars",), parser="lalr")


_PARAM_DIRECTIVE = re.compile(r"^//\s*@param\s+(\S+)\s+(\S+)\s*=\s*(\S+)\s*$", re.M)


@dataclass
class SipGrammar:
    """The definitions of a Lark grammar, ready to be inlined into regular expressions."""

    text: str
    rules: dict[str, Tree | Token] = field(default_factory=dict)
    terminals: dict[str, Tree | Token] = field(default_factory=dict)
    param_checks: dict[tuple[str, str], str | None] = field(default_factory=dict)

    @classmethod
    def from_text(cls, text: str) -> SipGrammar:
        grammar = cls(text)
        tree = _meta_parser().parse(text if text.endswith("\n") else text + "\n")
        for item in tree.children:
            if not isinstance(item, Tree):
                continue
            if item.data == "rule":
                name = str(item.children[0]).lstrip("!?")
                grammar.rules[name] = item.children[-1]
            elif item.data == "token":
                grammar.terminals[str(item.children[0])] = item.children[-1]
        for context, name, terminal in _PARAM_DIRECTIVE.findall(text):
            grammar.param_checks[(context, name.lower())] = None if terminal == "-" else terminal
        return grammar

    @classmethod
    def from_file(cls, path: Path) -> SipGrammar:
        return cls.from_text(path.read_text(encoding="utf-8"))

    # -- derivation ---------------------------------------------------------------------------------
    def regex(self, name: str, captures: Mapping[str, str] | Iterable[str] = ()) -> str:
        """The regular expression of rule or terminal ``name``; ``captures`` maps names to group names."""
        if not isinstance(captures, Mapping):
            captures = {c: c.lower() for c in captures}
        return _Deriver(self, dict(captures)).name(name)

    def compile(self, name: str, captures: Mapping[str, str] | Iterable[str] = ()) -> re.Pattern[str]:
        return re.compile(self.regex(name, captures), re.DOTALL)


class _Deriver:
    def __init__(self, grammar: SipGrammar, captures: dict[str, str]) -> None:
        self.grammar = grammar
        self.captures = captures
        self.used: dict[str, int] = {}
        self.stack: list[str] = []
        self.cache: dict[str, str] = {}

    def name(self, name: str) -> str:
        if name in self.stack:
            raise DeriveError(f"{name} is recursive ({' -> '.join(self.stack + [name])}); not a regular language")
        body = self.cache.get(name)
        if body is None:
            definition = self.grammar.rules.get(name)
            if definition is None:
                definition = self.grammar.terminals.get(name)
            if definition is None:
                raise DeriveError(f"no rule or terminal named {name!r} in the grammar")
            self.stack.append(name)
            try:
                body = self.node(definition)
            finally:
                self.stack.pop()
            # A body that holds a capture must be rebuilt each time so that group names stay unique.
            if "(?P<" not in body:
                self.cache[name] = body
        group = self.captures.get(name)
        if group is None:
            return body
        count = self.used.get(group, 0) + 1
        self.used[group] = count
        label = group if count == 1 else f"{group}__{count}"
        return f"(?P<{label}>{body})"

    def node(self, node: Tree | Token) -> str:
        if isinstance(node, Token):
            if node.type in ("RULE", "TOKEN"):
                return "(?:" + self.name(str(node).lstrip("!?")) + ")"
            raise DeriveError(f"unexpected token {node!r}")
        kind = node.data
        children = node.children
        if kind == "expansions":
            return "(?:" + "|".join(self.node(c) for c in children) + ")"
        if kind == "alias":
            return self.node(children[0])
        if kind == "expansion":
            return "".join(self.node(c) for c in children)
        if kind == "expr":
            atom = self.node(children[0])
            op = children[1] if len(children) > 1 else None
            if op is None:
                return atom
            if isinstance(op, Token) and op.type == "OP":
                return f"(?:{atom}){op}"
            low = int(str(children[1]))
            high = int(str(children[2])) if len(children) > 2 and children[2] is not None else low
            return f"(?:{atom}){{{low},{high}}}"
        if kind == "maybe":
            return f"(?:{self.node(children[0])})?"
        if kind == "literal":
            return _literal(children[0])  # type: ignore[arg-type]  # a literal's child is its token
        if kind == "literal_range":
            first, last = (_string_value(c) for c in children)  # type: ignore[arg-type]  # two STRING tokens
            return f"[{re.escape(first)}-{re.escape(last)}]"
        if kind == "name":
            return self.node(children[0])
        raise DeriveError(f"grammar construct {kind!r} is not supported by the hot-path derivation")


def _string_value(token: Token) -> str:
    text = str(token)
    if text.endswith("i"):
        text = text[:-1]
    return ast.literal_eval(text)


def _literal(token: Token) -> str:
    text = str(token)
    if token.type == "STRING":
        insensitive = text.endswith("i")
        value = re.escape(_string_value(token))
        return f"(?i:{value})" if insensitive else value
    # REGEXP: /pattern/flags, with "\/" standing for "/".
    end = text.rindex("/")
    pattern = text[1:end].replace("\\/", "/")
    flags = text[end + 1 :]
    return f"(?{flags}:{pattern})" if flags else f"(?:{pattern})"


# Keyed by id(): hashing a compiled pattern hashes its whole code array, every time.
_REPEATS: dict[tuple[int, str], tuple[str, ...]] = {}


def first_group(match: re.Match[str], group: str) -> str | None:
    """The text of capture ``group`` or of its numbered repeats (``group__2``, ...), whichever matched."""
    value = match.group(group)
    if value is not None:
        return value
    key = (id(match.re), group)
    repeats = _REPEATS.get(key)
    if repeats is None:
        names = match.re.groupindex
        repeats = tuple(f"{group}__{i}" for i in range(2, len(names) + 2) if f"{group}__{i}" in names)
        _REPEATS[key] = repeats
    for name in repeats:
        value = match.group(name)
        if value is not None:
            return value
    return None


@lru_cache(maxsize=1)
def sip_grammar() -> SipGrammar:
    """The generated SIP grammar (grammar/sip.lark, or the installed package's copy)."""
    from sipactors._resources import grammar_file

    return SipGrammar.from_file(grammar_file("sip.lark"))
