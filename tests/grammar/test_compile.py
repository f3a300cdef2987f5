"""The grammar compiler (spec/abnf + grammar/sip-syntax.lark -> grammar/sip.lark) and the ABNF reader.

* drift: regenerating gives exactly the checked-in grammar/sip.lark, and ``--check`` says so;
* traceability: every generated terminal is preceded by the ABNF module, rule and RFC section it comes from;
* compile errors: a terminal with no ABNF rule, or one that matches the empty string, is refused by name;
* the ABNF reader (RFC 5234, RFC 7405) on small modules written for the test, and the regular expressions
  it generates from the real spec/abnf (RFC 3261 token and hostname, RFC 5954 addresses, RFC 5118 examples).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest
from lark import Lark

from sipactors.grammar.abnf import RECURSION_DEPTH, AbnfError, Catalogue, load
from sipactors.grammar.compile import GrammarError, compile_grammar, generate, main, used_terminals

REPO = Path(__file__).resolve().parents[2]
SPEC = REPO / "spec" / "abnf"
SYNTAX = REPO / "grammar" / "sip-syntax.lark"
SIP_LARK = REPO / "grammar" / "sip.lark"

_GENERATED_MARK = "lexical rules, generated from spec/abnf"
_SOURCE = re.compile(
    r"^// (?P<name>[A-Z][A-Z0-9_]*) <- (?P<module>\S+) (?P<rule>\S+) \((?P<section>[^)]*)\)$"
)
_TERMINAL = re.compile(r"^(?P<name>[A-Z][A-Z0-9_]*)(?:\.(?P<priority>-?\d+))?: /(?P<regex>.*)/$")


@lru_cache(maxsize=1)
def spec_catalogue() -> Catalogue:
    return load(SPEC)


def spec_regex(module: str, rule: str) -> re.Pattern[str]:
    catalogue = spec_catalogue()
    return re.compile(catalogue.regex(catalogue.resolve(module, rule)))


def catalogue_of(tmp_path: Path, **modules: str) -> Catalogue:
    """A catalogue of the given modules (name -> ABNF text) plus the RFC 5234 core rules."""
    shutil.copy(SPEC / "rfc5234.abnf", tmp_path / "rfc5234.abnf")
    for name, text in modules.items():
        (tmp_path / f"{name}.abnf").write_text(text, encoding="utf-8")
    return load(tmp_path)


def regex_of(catalogue: Catalogue, module: str, rule: str) -> re.Pattern[str]:
    return re.compile(catalogue.regex(catalogue.resolve(module, rule)))


# ----------------------------------------------------------------------------------------------------- drift
def test_regenerating_gives_the_checked_in_sip_lark() -> None:
    generated = compile_grammar(SYNTAX.read_text(encoding="utf-8"), load(SPEC))
    checked_in = SIP_LARK.read_text(encoding="utf-8")
    if generated != checked_in:
        import difflib

        diff = "".join(
            list(
                difflib.unified_diff(
                    checked_in.splitlines(keepends=True), generated.splitlines(keepends=True),
                    "grammar/sip.lark (checked in)", "grammar/sip.lark (regenerated)",
                )
            )[:60]
        )
        pytest.fail(f"grammar/sip.lark is stale: run `python -m sipactors.grammar`\n{diff}")


def test_check_option_exits_0_on_the_checkout() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sipactors.grammar", "--check"],
        cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "up to date" in result.stdout


def test_check_option_exits_1_on_a_stale_grammar_and_writing_makes_it_current(tmp_path: Path) -> None:
    out = tmp_path / "sip.lark"
    assert main(["--out", str(out)]) == 0  # writes the grammar
    assert out.read_text(encoding="utf-8") == SIP_LARK.read_text(encoding="utf-8")
    assert main(["--check", "--out", str(out)]) == 0
    out.write_text(out.read_text(encoding="utf-8") + "// edited by hand\n", encoding="utf-8")
    assert main(["--check", "--out", str(out)]) == 1
    assert main(["--out", str(out)]) == 0
    assert main(["--check", "--out", str(out)]) == 0


# ---------------------------------------------------------------------------------------------- traceability
def generated_terminals() -> list[tuple[re.Match[str], str, re.Match[str]]]:
    """``(source comment, rule text, terminal definition)`` for every generated terminal of sip.lark."""
    lines = SIP_LARK.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if _GENERATED_MARK in line)
    found = []
    for index in range(start + 1, len(lines)):
        definition = _TERMINAL.match(lines[index])
        if definition is None:
            continue
        source = _SOURCE.match(lines[index - 2])
        written = lines[index - 1]
        assert source is not None and source["name"] == definition["name"], (
            f"sip.lark line {index + 1}: terminal {definition['name']} is not preceded by "
            f"'// {definition['name']} <- MODULE RULE (SECTION)': {lines[index - 2]!r}"
        )
        assert written.startswith("//   "), f"sip.lark line {index}: no ABNF text above {definition['name']}"
        found.append((source, written[5:], definition))
    return found


def test_every_terminal_the_syntax_uses_is_generated_once() -> None:
    names = [definition["name"] for _, _, definition in generated_terminals()]
    assert len(names) == len(set(names))
    assert names == sorted(names), "generated terminals come in alphabetical order (deterministic output)"
    assert names == used_terminals(SYNTAX.read_text(encoding="utf-8"))


def test_generated_terminals_name_module_rule_and_rfc_section() -> None:
    catalogue = spec_catalogue()
    modules = {path.stem for path in SPEC.glob("*.abnf")}
    problems = []
    for source, written, definition in generated_terminals():
        name, module, rule = source["name"], source["module"], source["rule"]
        if module not in modules:
            problems.append(f"{name}: module {module!r} is no file of spec/abnf")
            continue
        if rule.lower() not in catalogue.modules[module].rules:
            problems.append(f"{name}: {module}.abnf defines no rule {rule!r}")
            continue
        if not written.startswith(f"{rule} ") and not written.startswith(f"{rule}="):
            problems.append(f"{name}: the ABNF text shown is not rule {rule}: {written[:60]!r}")
        # The regex is the one compiled from the rule the comment names.
        if catalogue.regex(catalogue.resolve(module, rule)) != definition["regex"]:
            problems.append(f"{name}: its regex is not the one compiled from {module}:{rule}")
        number = re.fullmatch(r"rfc(\d+)", module)
        if number is not None and not re.fullmatch(rf"RFC {number[1]} §\S+", source["section"]):
            problems.append(f"{name}: section {source['section']!r} is not a section of RFC {number[1]}")
    assert not problems, "\n".join(problems)


def _ruling_of_each_rule() -> dict[str, str]:
    """rulings.abnf: rule name -> the heading ``Rn`` above it."""
    current = None
    owner = {}
    for line in (SPEC / "rulings.abnf").read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^;\s*(R\d+)\b", line)
        if heading:
            current = heading[1]
            continue
        rule = re.match(r"^([A-Za-z][A-Za-z0-9-]*)\s*=", line)
        if rule and current:
            owner[rule[1].lower()] = current
    return owner


def test_ruling_terminals_name_their_ruling_and_rfc_section() -> None:
    owner = _ruling_of_each_rule()
    problems = []
    for source, written, _ in generated_terminals():
        if source["module"] != "rulings":
            continue
        ruling = owner[source["rule"].lower()]
        comment = f"{source.group(0)} {written}"
        cited = set(re.findall(r"\bR\d+\b", comment))
        if cited != {ruling}:
            problems.append(
                f"{source['name']}: rule {source['rule']} is {ruling}, the comment cites {sorted(cited)}"
            )
        if not re.search(r"RFC \d+ §", source["section"]):
            problems.append(f"{source['name']}: section {source['section']!r} names no RFC section")
    assert not problems, "\n".join(problems)


# -------------------------------------------------------------------------------------------- compile errors
MINI = """\
; @imports: rfc5234
; RFC 9999 §4.2
word = 1*ALPHA
number = 1*DIGIT
digits-or-nothing = *DIGIT
"""


def test_a_small_grammar_compiles_and_loads(tmp_path: Path) -> None:
    catalogue = catalogue_of(tmp_path, mini=MINI)
    syntax = '// @abnf-search: mini rfc5234\n// @priority WORD 2\nhead: WORD SP NUMBER\nSP: " "\n'
    text = compile_grammar(syntax, catalogue)
    assert "// NUMBER <- mini number (RFC 9999 §4.2)\n//   number = 1*DIGIT\nNUMBER: /[0-9]+/\n" in text
    assert "WORD.2: /[A-Za-z]+/" in text
    tree = Lark(text, parser="lalr", start="head").parse("abc 123")
    assert [str(token) for token in tree.children] == ["abc", " ", "123"]


def test_a_terminal_without_an_abnf_rule_is_refused_by_name(tmp_path: Path) -> None:
    catalogue = catalogue_of(tmp_path, mini=MINI)
    syntax = '// @abnf-search: mini rfc5234\nhead: WORD SP NO_SUCH_RULE\nSP: " "\n'
    with pytest.raises(GrammarError, match=r"NO_SUCH_RULE.*'no-such-rule'"):
        compile_grammar(syntax, catalogue)


def test_an_explicit_abnf_directive_naming_a_missing_rule_is_refused(tmp_path: Path) -> None:
    catalogue = catalogue_of(tmp_path, mini=MINI)
    syntax = "// @abnf-search: mini rfc5234\n// @abnf NUM = mini:numeral\nhead: WORD NUM\n"
    with pytest.raises(GrammarError, match=r"NUM \(mini:numeral\)"):
        compile_grammar(syntax, catalogue)
    renamed = "// @abnf-search: mini rfc5234\n// @abnf NUM = mini:number\nhead: WORD NUM\n"
    assert "// NUM <- mini number (RFC 9999 §4.2)" in compile_grammar(renamed, catalogue)


def test_a_terminal_that_matches_the_empty_string_is_refused(tmp_path: Path) -> None:
    catalogue = catalogue_of(tmp_path, mini=MINI)
    syntax = '// @abnf-search: mini rfc5234\nhead: WORD SP DIGITS_OR_NOTHING\nSP: " "\n'
    with pytest.raises(GrammarError, match=r"DIGITS_OR_NOTHING.*empty string"):
        compile_grammar(syntax, catalogue)


def test_directives_for_unused_terminals_and_unknown_modules_are_refused(tmp_path: Path) -> None:
    catalogue = catalogue_of(tmp_path, mini=MINI)
    with pytest.raises(GrammarError, match="GHOST"):
        generate("// @abnf-search: mini rfc5234\n// @priority GHOST 3\nhead: WORD\n", catalogue)
    with pytest.raises(GrammarError, match="unknown module 'nowhere'"):
        generate("// @abnf-search: nowhere\nhead: WORD\n", catalogue)


def test_a_grammar_lark_cannot_load_is_refused(tmp_path: Path) -> None:
    catalogue = catalogue_of(tmp_path, mini=MINI)
    with pytest.raises(GrammarError, match="does not load"):
        compile_grammar("// @abnf-search: mini rfc5234\nstart: WORD\n", catalogue)  # no `head` rule


# ----------------------------------------------------------------------------------------------- ABNF reader
def test_rule_names_are_case_insensitive_rfc5234_s2_1(tmp_path: Path) -> None:
    catalogue = catalogue_of(tmp_path, m='Greeting = "hi"\nboth = GREETING greeting\n')
    assert catalogue.resolve("m", "GREETING").name == "Greeting"
    assert regex_of(catalogue, "m", "Both").fullmatch("hiHI")


def test_a_rule_defined_twice_is_an_error_whatever_its_case(tmp_path: Path) -> None:
    with pytest.raises(AbnfError, match="defined twice"):
        catalogue_of(tmp_path, m='rule = "a"\nRULE = "b"\n')


def test_incremental_alternatives_rfc5234_s3_3(tmp_path: Path) -> None:
    catalogue = catalogue_of(tmp_path, m='ruleset = "a"\nruleset =/ "b"\nRuleSet =/ "cd"\n')
    ruleset = regex_of(catalogue, "m", "ruleset")
    verdicts = [bool(ruleset.fullmatch(s)) for s in ("a", "b", "cd", "c", "ab")]
    assert verdicts == [True, True, True, False, False]


def test_an_incremental_alternative_extends_the_rule_of_an_imported_module(tmp_path: Path) -> None:
    # As RFC 6665 does for RFC 3261 (extension-method, message-header): the extension adds to the base rule.
    catalogue = catalogue_of(
        tmp_path,
        base='; RFC 1 §1\nmessage-header = "To"\nmessage = message-header ":"\n',
        ext='; @imports: base\n; RFC 2 §2\nmessage-header =/ "Event"\n',
    )
    message = regex_of(catalogue, "base", "message")
    assert message.fullmatch("Event:") and message.fullmatch("to:") and not message.fullmatch("From:")


def test_an_incremental_alternative_needs_an_initial_rule(tmp_path: Path) -> None:
    with pytest.raises(AbnfError, match="extends a rule defined nowhere"):
        catalogue_of(tmp_path, m='; @imports: rfc5234\norphan =/ "x"\n')


def test_quoted_strings_are_case_insensitive_unless_marked_s_rfc7405(tmp_path: Path) -> None:
    catalogue = catalogue_of(tmp_path, m='plain = "aBc"\nsensitive = %s"aBc"\ninsensitive = %i"aBc"\n')
    plain, sensitive, insensitive = (
        regex_of(catalogue, "m", rule) for rule in ("plain", "sensitive", "insensitive")
    )
    for text in ("abc", "ABC", "aBc", "AbC"):
        assert plain.fullmatch(text) and insensitive.fullmatch(text)
    assert sensitive.fullmatch("aBc")
    assert not sensitive.fullmatch("abc") and not sensitive.fullmatch("ABC")


def test_num_val_ranges_and_concatenations_rfc5234_s2_3(tmp_path: Path) -> None:
    catalogue = catalogue_of(
        tmp_path,
        m="range = %x41-43\ncrlf = %d13.10\nbinary = %b1000001\nword = %x53.49.50\nhigh = %x80-BF\n",
    )
    in_range = regex_of(catalogue, "m", "range")
    assert [bool(in_range.fullmatch(c)) for c in "@ABCD"] == [False, True, True, True, False]
    assert regex_of(catalogue, "m", "crlf").fullmatch("\r\n")
    assert not regex_of(catalogue, "m", "crlf").fullmatch("\n")
    assert regex_of(catalogue, "m", "binary").fullmatch("A")
    word = regex_of(catalogue, "m", "word")
    assert word.fullmatch("SIP") and not word.fullmatch("sip")  # a num-val is an exact value
    # Octets are characters U+0000-U+00FF (ISO-8859-1 decoding, rulings R13): %x80-BF is one octet each.
    high = regex_of(catalogue, "m", "high")
    assert high.fullmatch("\x80") and high.fullmatch("\xbf")
    assert not high.fullmatch("\x7f") and not high.fullmatch("\xc0")


def test_a_num_val_above_xff_does_not_match_unrelated_octets(tmp_path: Path) -> None:
    catalogue = catalogue_of(tmp_path, m="smiley = %x263A\n")
    try:
        smiley = regex_of(catalogue, "m", "smiley")
    except AbnfError:
        return  # refusing a value that can never be one octet (R13) is fine too
    assert not smiley.fullmatch("&3a")


def test_repetition_forms_rfc5234_s3_6_s3_7(tmp_path: Path) -> None:
    catalogue = catalogue_of(
        tmp_path,
        m='; @imports: rfc5234\nthree = 3DIGIT\nhex = 1*4HEXDIG\nupto = *2"x"\natleast = 2*"y"\n'
        'any = *"z"\noptional = ["a"] "b"\ngroup = ("a" / "b") "c"\n',
    )

    def verdicts(rule: str, *texts: str) -> list[bool]:
        pattern = regex_of(catalogue, "m", rule)
        return [bool(pattern.fullmatch(text)) for text in texts]

    assert verdicts("three", "123", "12", "1234", "12a") == [True, False, False, False]
    assert verdicts("hex", "f", "0aF9", "", "12345", "g") == [True, True, False, False, False]
    assert verdicts("upto", "", "x", "xX", "xxx") == [True, True, True, False]
    assert verdicts("atleast", "y", "yy", "yyyyy") == [False, True, True]
    assert verdicts("any", "", "zzzz") == [True, True]
    assert verdicts("optional", "b", "ab", "a") == [True, True, False]
    assert verdicts("group", "ac", "bc", "c", "abc") == [True, True, False, False]


def test_comments_and_continuation_lines_rfc5234_s3_1_s3_9(tmp_path: Path) -> None:
    text = (
        "; a module comment\n"
        "; RFC 9999 §3\n"
        'greeting = "hello"   ; a comment after a rule\n'
        '           SP name    ; a continuation line\n'
        "       ; an indented comment line inside the rule\n"
        '           [ "!" ]\n'
        "\n"
        "; RFC 9999 §4\n"
        'name = 1*ALPHA ; the last rule has no final line end'
    )
    catalogue = catalogue_of(tmp_path, m="; @imports: rfc5234\n" + text)
    greeting = regex_of(catalogue, "m", "greeting")
    assert greeting.fullmatch("hello world!") and greeting.fullmatch("Hello Bob")
    assert not greeting.fullmatch("hello") and not greeting.fullmatch("hello world!!")
    assert catalogue.resolve("m", "greeting").section == "RFC 9999 §3"
    assert catalogue.resolve("m", "name").section == "RFC 9999 §4"
    written = catalogue.resolve("m", "greeting").text  # whitespace collapsed, for the comment in sip.lark
    assert written.startswith('greeting = "hello"') and "SP name" in written and '[ "!" ]' in written


def test_the_text_of_a_rule_stops_at_its_last_line(tmp_path: Path) -> None:
    module = 'first = "a"\n\n; R9 a heading that belongs to the next rule\nsecond = "b"\n'
    catalogue = catalogue_of(tmp_path, m=module)
    assert catalogue.resolve("m", "first").text == 'first = "a"'


def test_reader_errors_name_the_module_and_the_rule(tmp_path: Path) -> None:
    folders = {name: tmp_path / name for name in ("imports", "syntax", "rules")}
    for folder in folders.values():
        folder.mkdir()
    with pytest.raises(AbnfError, match="m: imports unknown module nowhere"):
        catalogue_of(folders["imports"], m="; @imports: nowhere\nx = %x41\n")
    with pytest.raises(AbnfError, match=r"m\.abnf"):
        catalogue_of(folders["syntax"], m='x = "a" /\n')  # an alternation without its second element
    catalogue = catalogue_of(folders["rules"], m="x = <described in prose>\ny = undefined-rule\n")
    with pytest.raises(AbnfError, match="prose"):
        catalogue.regex(catalogue.resolve("m", "x"))
    with pytest.raises(AbnfError, match="undefined-rule"):
        catalogue.regex(catalogue.resolve("m", "y"))


def test_rulings_use_directive_replaces_a_rule_in_every_module(tmp_path: Path) -> None:
    catalogue = catalogue_of(
        tmp_path,
        rulings="; @use: fixed address\n",
        fixed='address = "good"\n',
        old='address = "bad"\nhost = address\n',
    )
    assert regex_of(catalogue, "old", "host").fullmatch("good")
    assert not regex_of(catalogue, "old", "host").fullmatch("bad")
    # And in the real spec: RFC 3261's IPv4address and IPv6address are RFC 5954's (rulings R1).
    assert spec_catalogue().resolve("rfc3261", "IPv4address").module == "rfc5954"
    assert spec_catalogue().resolve("rfc3261", "IPv6address").module == "rfc5954"


def test_longest_alternative_is_tried_first_rulings_r15(tmp_path: Path) -> None:
    catalogue = catalogue_of(tmp_path, m='short-first = "a" / "ab" / "abc"\n')
    assert regex_of(catalogue, "m", "short-first").match("abcd").group(0) == "abc"


def test_comment_nesting_is_bounded_by_recursion_depth_rulings_r14() -> None:
    comment = spec_regex("rfc3261", "comment")
    deepest = RECURSION_DEPTH + 1  # the outermost comment plus RECURSION_DEPTH nested ones
    assert comment.fullmatch("(" * deepest + "x" + ")" * deepest)
    assert comment.fullmatch("(Windows; U)")
    assert not comment.fullmatch("(" * (deepest + 1) + "x" + ")" * (deepest + 1))


# ----------------------------------------------------------------------------------------- generated regexes
def test_rfc3261_token() -> None:
    token = spec_regex("rfc3261", "token")
    for text in ("INVITE", "z9hG4bK776asdhds", "!interesting-Method0123456789_*+`.%indeed'~"):
        assert token.fullmatch(text), text
    for text in ("", "a b", "a;b", "a,b", '"q"', "a:b", "a/b", "<a>", "é"):
        assert not token.fullmatch(text), text


def test_hostname_is_matched_maximally_rulings_r15() -> None:
    hostname = spec_regex("rfc3261", "hostname")
    # RFC order (toplabel = ALPHA / ALPHA *( alphanum / "-" ) alphanum) would stop at "example.c".
    assert hostname.match("example.com").group(0) == "example.com"
    assert hostname.match("chair-dnrc.example.com;unknownparam").group(0) == "chair-dnrc.example.com"
    assert hostname.fullmatch("example.com.")
    for text in ("-example.com", "example-.com", "example.123", "exa_mple.com"):
        assert not hostname.fullmatch(text), text


def test_ipv4address_rfc5954() -> None:
    ipv4 = spec_regex("rfc3261", "IPv4address")  # resolves to RFC 5954's (rulings R1)
    for text in ("192.0.2.1", "0.0.0.0", "255.255.255.255", "10.99.199.249"):
        assert ipv4.fullmatch(text), text
    for text in ("256.1.1.1", "1.2.3.256", "444.555.666.777", "1.2.3.04", "1.2.3", "1.2.3.4.5"):
        assert not ipv4.fullmatch(text), text
    assert ipv4.match("192.0.2.45").group(0) == "192.0.2.45"  # longest dec-octet first (R15)


def test_ipv6reference_examples_of_rfc5118() -> None:
    reference = spec_regex("rfc3261", "IPv6reference")
    for text in (
        "[2001:db8::10]",  # §4.1
        "[2001:db8::9:1]",
        "[2001:db8::10:5070]",  # §4.3: a port-like last group is part of the address
        "[::ffff:192.0.2.1]",  # §4.9 IPv4-mapped
        "[2001:db8::192.0.2.1]",  # §4.10, correct form
        "[::1]",
        "[::]",
    ):
        assert reference.fullmatch(text), text
    for text in (
        "2001:db8::10",  # no brackets
        "[2001:db8::10",  # §4.2 style: unbalanced
        "[2001:db8:::192.0.2.1]",  # §4.10: the extra colon RFC 5954 removes (rulings R1)
        "[2001:db8::10::1]",
        "[1:2:3:4:5:6:7:8:9]",
        "[::ffff:256.0.2.1]",
    ):
        assert not reference.fullmatch(text), text
    assert reference.match("[2001:db8::10]:5070").group(0) == "[2001:db8::10]"
