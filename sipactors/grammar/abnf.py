"""Reading ABNF (RFC 5234, RFC 7405) and turning rules into regular expressions.

spec/abnf/ holds one module per RFC. A module names where its undefined rules come from in a comment
directive ``; @imports: rfc5234 rfc3261``. ``rulings.abnf`` holds the rules that RFC prose or errata
require (spec/rulings.md); it is consulted before every module, and its ``; @use: MODULE NAME ...``
directives make every module take ``NAME`` from ``MODULE`` (RFC 5954's corrected IPv6address, for one).

Name resolution for a reference to ``name`` made inside module M: the rulings (and their @use aliases),
then M's own rules, then M's imports depth-first in the order given. Rule names are case-insensitive
(RFC 5234 §2.1). An incremental alternative ``X =/ Y`` (RFC 5234 §3.3) in an extension RFC adds Y to the X
that its module would otherwise resolve (e.g. RFC 6665's ``message-header =/ Event``).

Regular expressions are for octets decoded as ISO-8859-1: ``%xNN`` is the character U+00NN. A quoted
string is case-insensitive (RFC 5234 §2.3) unless written ``%s"..."`` (RFC 7405). Only non-capturing
groups are emitted, so the result can be embedded in Lark terminals and in other expressions. A recursive
rule (RFC 3261's ``comment``) is expanded to a fixed nesting depth, ``RECURSION_DEPTH`` (rulings.md).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Tree

__all__ = ["AbnfError", "Catalogue", "Rule", "load", "RECURSION_DEPTH"]

#: Nesting depth up to which a recursive rule (e.g. a comment inside a comment) is expanded.
RECURSION_DEPTH = 3

_DIRECTIVE = re.compile(r"^;\s*@(imports|use):(.*)$", re.M)
_SECTION = re.compile(r"^;\s*(RFC \d+ §\S+|R\d+ \(RFC [^)]*\))", re.M)


class AbnfError(ValueError):
    """A rule that cannot be read or resolved (the message names the module and the rule)."""


# ------------------------------------------------------------------------------------------------ AST
@dataclass(frozen=True)
class Alt:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Cat:
    items: tuple[Node, ...]


@dataclass(frozen=True)
class Rep:
    low: int
    high: int | None
    item: Node


@dataclass(frozen=True)
class Ref:
    name: str


@dataclass(frozen=True)
class Lit:
    text: str
    sensitive: bool


@dataclass(frozen=True)
class Codes:
    """A num-val: a range ``low``-``high``, or a concatenation of values."""

    values: tuple[int, ...]
    high: int | None = None


@dataclass(frozen=True)
class Prose:
    text: str


Node = Alt | Cat | Rep | Ref | Lit | Codes | Prose


@dataclass
class Rule:
    name: str
    module: str
    node: Node
    text: str  # the rule as written, whitespace collapsed
    section: str  # e.g. "RFC 3261 §25.1"
    incremental: bool = False


@dataclass
class Module:
    name: str
    imports: list[str]
    rules: dict[str, Rule] = field(default_factory=dict)
    uses: dict[str, str] = field(default_factory=dict)  # rule name -> module (rulings only)
    extensions: list[Rule] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ reading
@lru_cache(maxsize=1)
def _abnf_parser() -> Lark:
    from sipactors._resources import grammar_file

    return Lark(grammar_file("abnf.lark").read_text(encoding="utf-8"), parser="lalr", propagate_positions=True)


def _num(token: str) -> Codes:
    base = {"b": 2, "d": 10, "x": 16}[token[1].lower()]
    body = token[2:]
    if "-" in body:
        low, high = body.split("-")
        return Codes((int(low, base),), int(high, base))
    return Codes(tuple(int(part, base) for part in body.split(".")))


def _to_node(tree: Tree | Token) -> Node:
    if isinstance(tree, Token):
        raise AbnfError(f"unexpected token {tree!r}")
    kind = tree.data
    if kind == "alternation":
        items = tuple(_to_node(c) for c in tree.children)
        return items[0] if len(items) == 1 else Alt(items)
    if kind == "concatenation":
        items = tuple(_to_node(c) for c in tree.children)
        return items[0] if len(items) == 1 else Cat(items)
    if kind == "repetition":
        repeat, element = tree.children
        node = _to_node(element)
        if repeat is None:
            return node
        text = str(repeat)
        if "*" in text:
            low_text, high_text = text.split("*")
            return Rep(int(low_text) if low_text else 0, int(high_text) if high_text else None, node)
        count = int(text)
        return Rep(count, count, node)
    if kind == "rulename":
        return Ref(str(tree.children[0]).lower())
    if kind == "group":
        return _to_node(tree.children[0])
    if kind == "option":
        return Rep(0, 1, _to_node(tree.children[0]))
    if kind == "char_val":
        text = str(tree.children[0])
        sensitive = text[:2].lower() == "%s"
        return Lit(text[text.index('"') + 1 : -1], sensitive)
    if kind == "num_val":
        return _num(str(tree.children[0]))
    if kind == "prose_val":
        return Prose(str(tree.children[0])[1:-1])
    raise AbnfError(f"unknown ABNF construct {kind}")


def read_module(name: str, text: str) -> Module:
    """Parse one spec/abnf file."""
    imports: list[str] = []
    uses: dict[str, str] = {}
    for kind, value in _DIRECTIVE.findall(text):
        words = value.split()
        if kind == "imports":
            imports.extend(words)
        elif words:
            for rule_name in words[1:]:
                uses[rule_name.lower()] = words[0]
    module = Module(name, imports, uses=uses)
    source = text if text.endswith("\n") else text + "\n"
    tree = _abnf_parser().parse(source)
    # "; RFC 3261 §25.1" heads a block of rules; "; R3 (RFC 3261 §19.1.1)" a ruling (spec/rulings.md).
    sections = [(m.start(), m.group(1).replace(" (", ": ").rstrip(")")) for m in _SECTION.finditer(source)]
    for rule_tree in tree.children:
        if not isinstance(rule_tree, Tree):
            continue
        rulename, defined_as, alternation = rule_tree.children
        start = rule_tree.meta.start_pos
        section = next((s for pos, s in reversed(sections) if pos < start), name)
        # The rule's own text: up to the end of its elements, not the comments and blank lines after it.
        written = " ".join(source[start : alternation.meta.end_pos].split())
        rule = Rule(str(rulename), name, _to_node(alternation), written, section, str(defined_as) == "=/")
        key = rule.name.lower()
        if rule.incremental and key not in module.rules:
            module.extensions.append(rule)
        elif rule.incremental:
            base = module.rules[key]
            module.rules[key] = Rule(base.name, name, Alt((base.node, rule.node)), base.text + " " + rule.text, base.section)
        else:
            if key in module.rules:
                raise AbnfError(f"{name}: rule {rule.name} defined twice")
            module.rules[key] = rule
    return module


# ------------------------------------------------------------------------------------------------ catalogue
class Catalogue:
    """All modules of spec/abnf/, with name resolution and regular-expression generation."""

    def __init__(self, modules: dict[str, Module]) -> None:
        self.modules = modules
        self.rulings = modules.get("rulings", Module("rulings", []))
        for module in modules.values():
            for name in module.imports:
                if name not in modules:
                    raise AbnfError(f"{module.name}: imports unknown module {name}")
        self._apply_extensions()
        self._regex_cache: dict[tuple[str, str], str] = {}

    def _apply_extensions(self) -> None:
        for module in self.modules.values():
            for extension in module.extensions:
                key = extension.name.lower()
                base = self._find_below_rulings(module.name, key, set(), skip_self=True)
                if base is None:
                    raise AbnfError(f"{module.name}: {extension.name} =/ extends a rule defined nowhere it imports")
                base.node = Alt((base.node, extension.node))
                base.text = f"{base.text} ; {extension.section}: {extension.text}"

    def _find_below_rulings(self, module_name: str, key: str, seen: set[str], skip_self: bool = False) -> Rule | None:
        if module_name in seen:
            return None
        seen.add(module_name)
        module = self.modules[module_name]
        if not skip_self and key in module.rules:
            return module.rules[key]
        for imported in module.imports:
            found = self._find_below_rulings(imported, key, seen)
            if found is not None:
                return found
        return None

    def resolve(self, module_name: str, name: str) -> Rule:
        """The rule that ``name`` denotes inside ``module_name``."""
        key = name.lower()
        alias = self.rulings.uses.get(key)
        if alias is not None and module_name != alias:
            return self.resolve(alias, name)
        if key in self.rulings.rules:
            return self.rulings.rules[key]
        found = self._find_below_rulings(module_name, key, set())
        if found is None:
            raise AbnfError(f"rule {name!r} is not defined in {module_name} nor in what it imports")
        return found

    def rule(self, spec: str) -> Rule:
        """``module:rule-name`` or a bare rule name looked up from the rulings."""
        module_name, _, name = spec.rpartition(":")
        return self.resolve(module_name or "rulings", name)

    # -- regular expressions ------------------------------------------------------------------------
    def regex(self, rule: Rule) -> str:
        """A Python regular expression (non-capturing groups only) for ``rule``."""
        return _RegexBuilder(self).rule(rule)


class _RegexBuilder:
    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.depth: dict[tuple[str, str], int] = {}

    def rule(self, rule: Rule) -> str:
        key = (rule.module, rule.name.lower())
        cached = self.catalogue._regex_cache.get(key)
        if cached is not None:
            return cached
        depth = self.depth.get(key, 0)
        if depth > RECURSION_DEPTH:
            return "(?!)"  # deeper nesting than the ruling allows: matches nothing
        self.depth[key] = depth + 1
        try:
            if isinstance(rule.node, Prose):
                raise AbnfError(f"{rule.module}: {rule.name} is prose (<{rule.node.text}>); a ruling must define it")
            body = self.node(rule.node, rule.module)
        finally:
            self.depth[key] = depth
        if depth == 0 and not any(d for d in self.depth.values()):
            self.catalogue._regex_cache[key] = body
        return body

    def node(self, node: Node, module: str) -> str:
        if isinstance(node, Ref):
            return self.group(self.rule(self.catalogue.resolve(module, node.name)))
        if isinstance(node, Alt):
            chars = _single_chars(node, self.catalogue, module, frozenset())  # all alternatives one character
            if chars is not None:
                return _class(chars)
            # Python's alternation is ordered, not longest-match: a Lark terminal built from
            # "toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum" would stop after one letter.
            # Trying the alternatives that can match the most first gives maximal munch for the ABNF
            # of these RFCs (rulings.md, "Alternatives"); the language is unchanged.
            items = sorted(node.items, key=lambda item: -_max_len(item, self.catalogue, module, frozenset()))
            # One-character alternatives whose characters start no other alternative (qdtext's
            # %x21 / %x23-5B / ... beside LWS and UTF8-NONASCII) go first as one class: where they stand
            # cannot change what matches, and one class test per character is what makes long
            # quoted strings and header values fast.
            singles: set[int] = set()
            others: list[Node] = []
            for item in items:
                chars = _single_chars(item, self.catalogue, module, frozenset())
                if chars is None:
                    others.append(item)
                else:
                    singles |= chars
            if singles and others and all(
                (first := _first_chars(item, self.catalogue, module, frozenset())) is not None and not first & singles
                for item in others
            ):
                return "(?:" + "|".join([_class(singles)] + [self.node(item, module) for item in others]) + ")"
            return "(?:" + "|".join(self.node(item, module) for item in items) + ")"
        if isinstance(node, Cat):
            return "".join(self.group(self.node(item, module)) for item in node.items)
        if isinstance(node, Rep):
            inner = self.atom(self.node(node.item, module))
            if (node.low, node.high) == (0, None):
                return inner + "*"
            if (node.low, node.high) == (1, None):
                return inner + "+"
            if (node.low, node.high) == (0, 1):
                return inner + "?"
            if node.low == node.high:
                return inner + f"{{{node.low}}}"
            return inner + f"{{{node.low},{'' if node.high is None else node.high}}}"
        if isinstance(node, Lit):
            if not node.text:
                return ""
            escaped = "".join(_char(c) for c in node.text)
            if node.sensitive or not any(c.isalpha() for c in node.text):
                return escaped
            if len(node.text) == 1:
                return _class({ord(node.text.lower()), ord(node.text.upper())})
            return f"(?i:{escaped})"
        if isinstance(node, Codes):
            if node.high is not None:
                return _class(set(range(node.values[0], node.high + 1)))
            return "".join(_char(chr(v)) for v in node.values)
        if isinstance(node, Prose):
            raise AbnfError(f"{module}: prose value <{node.text}> in a rule; a ruling must define it")
        raise AbnfError(f"unknown node {node!r}")

    @staticmethod
    def group(text: str) -> str:
        """Wrap an alternation so that concatenation keeps its meaning."""
        return f"(?:{text})" if _top_level_bar(text) else text

    @staticmethod
    def atom(text: str) -> str:
        """Make ``text`` a single atom for a quantifier."""
        if len(text) == 1 or _is_single_class(text) or (len(text) == 2 and text[0] == "\\") or _is_escape(text):
            return text
        if text.startswith("(?") and _first_group_end(text) == len(text) - 1:
            return text
        return f"(?:{text})"


def _single_chars(item: Node, catalogue: Catalogue, module: str, seen: frozenset[str]) -> set[int] | None:
    """The characters of a node that always matches exactly one character, or None."""
    if _bounds(item, catalogue, module, seen) != (1, 1):
        return None
    return _first_chars(item, catalogue, module, seen)


_UNBOUNDED = float("inf")


def _bounds(node: Node, catalogue: Catalogue, module: str, seen: frozenset[str]) -> tuple[float, float]:
    """The shortest and the longest string ``node`` can match (``inf``: unbounded, or recursive)."""
    if isinstance(node, Lit):
        return len(node.text), len(node.text)
    if isinstance(node, Codes):
        width = 1 if node.high is not None else len(node.values)
        return width, width
    if isinstance(node, (Alt, Cat)):
        bounds = [_bounds(item, catalogue, module, seen) for item in node.items]
        if isinstance(node, Alt):
            return min(low for low, _ in bounds), max(high for _, high in bounds)
        return sum(low for low, _ in bounds), sum(high for _, high in bounds)
    if isinstance(node, Rep):
        low, high = _bounds(node.item, catalogue, module, seen)
        if node.high is None:
            return node.low * low, (_UNBOUNDED if high > 0 else 0)
        return node.low * low, node.high * high
    if isinstance(node, Ref):
        if node.name in seen:
            return 0, _UNBOUNDED
        rule = catalogue.resolve(module, node.name)
        return _bounds(rule.node, catalogue, rule.module, seen | {node.name})
    return 0, _UNBOUNDED  # prose: reported when the rule is built


def _max_len(node: Node, catalogue: Catalogue, module: str, seen: frozenset[str]) -> float:
    return _bounds(node, catalogue, module, seen)[1]


def _min_len(node: Node, catalogue: Catalogue, module: str, seen: frozenset[str]) -> float:
    return _bounds(node, catalogue, module, seen)[0]


def _first_chars(node: Node, catalogue: Catalogue, module: str, seen: frozenset[str]) -> set[int] | None:
    """The characters a non-empty match of ``node`` can start with; None when unknown or ``node`` can
    match the empty string (then what follows it may start the match)."""
    if _min_len(node, catalogue, module, seen) == 0:
        return None
    if isinstance(node, Lit):
        c = node.text[0]
        return {ord(c)} if node.sensitive else {ord(c.lower()), ord(c.upper())}
    if isinstance(node, Codes):
        return set(range(node.values[0], node.high + 1)) if node.high is not None else {node.values[0]}
    if isinstance(node, Alt):
        found: set[int] = set()
        for item in node.items:
            chars = _first_chars(item, catalogue, module, seen)
            if chars is None:
                return None
            found |= chars
        return found
    if isinstance(node, Cat):
        found = set()
        for item in node.items:
            if _min_len(item, catalogue, module, seen) == 0:
                inner = _first_chars(item.item, catalogue, module, seen) if isinstance(item, Rep) else None
                if inner is None:
                    return None
                found |= inner
                continue
            chars = _first_chars(item, catalogue, module, seen)
            return None if chars is None else found | chars
        return None
    if isinstance(node, Rep):
        return _first_chars(node.item, catalogue, module, seen)
    if isinstance(node, Ref):
        if node.name in seen:
            return None
        rule = catalogue.resolve(module, node.name)
        return _first_chars(rule.node, catalogue, rule.module, seen | {node.name})
    return None


def _char(c: str) -> str:
    """One character for a regex inside a Lark ``/.../`` literal: Lark evaluates ``\\xNN`` escapes before
    compiling, so punctuation is escaped with a backslash (``\\[``, ``\\/``) and only characters that are
    no regex syntax (controls, space, octets above 0x7E) are written ``\\xNN``."""
    code = ord(c)
    if c.isalnum() and code < 128:
        return c
    if 0x21 <= code <= 0x7E:
        return "\\" + c
    if code > 0xFF:  # never an octet (rulings R13), but written correctly all the same
        return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"
    return f"\\x{code:02x}"


def _class(codes: set[int]) -> str:
    if len(codes) == 1:
        return _char(chr(next(iter(codes))))
    ranges: list[tuple[int, int]] = []
    for code in sorted(codes):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1] = (ranges[-1][0], code)
        else:
            ranges.append((code, code))
    parts = []
    for low, high in ranges:
        if low == high:
            parts.append(_char(chr(low)))
        elif high == low + 1:
            parts.append(_char(chr(low)) + _char(chr(high)))
        else:
            parts.append(f"{_char(chr(low))}-{_char(chr(high))}")
    return "[" + "".join(parts) + "]"


def _is_escape(text: str) -> bool:
    return re.fullmatch(r"\\x[0-9a-f]{2}", text) is not None


def _is_single_class(text: str) -> bool:
    if not text.startswith("["):
        return False
    index = 1
    while index < len(text):
        if text[index] == "\\":
            index += 2
            continue
        if text[index] == "]":
            return index == len(text) - 1
        index += 1
    return False


def _structure(text: str) -> Iterator[tuple[int, str, int]]:
    """``(index, character, group depth before it)`` for each character of a regex that is neither escaped
    nor inside a character class: the characters that give the regex its shape."""
    depth = 0
    index = 0
    in_class = False
    while index < len(text):
        c = text[index]
        if c == "\\":
            index += 2
            continue
        if in_class:
            in_class = c != "]"
        elif c == "[":
            in_class = True
        else:
            yield index, c, depth
            depth += (c == "(") - (c == ")")
        index += 1


def _first_group_end(text: str) -> int:
    """Index of the ")" closing the group that opens ``text``, or -1."""
    for index, c, depth in _structure(text):
        if c == ")" and depth == 1:
            return index
    return -1


def _top_level_bar(text: str) -> bool:
    """Whether ``text`` is an alternation at its top level."""
    return any(c == "|" and depth == 0 for _, c, depth in _structure(text))


def load(spec_dir: Path) -> Catalogue:
    """Read every ``*.abnf`` file of ``spec_dir`` (module name = file stem)."""
    modules = {}
    for path in sorted(spec_dir.glob("*.abnf")):
        try:
            modules[path.stem] = read_module(path.stem, path.read_text(encoding="utf-8"))
        except AbnfError:
            raise
        except Exception as error:  # a Lark error: say which file
            raise AbnfError(f"{path.name}: {error}") from error
    return Catalogue(modules)
