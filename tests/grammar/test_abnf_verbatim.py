"""Every rule in spec/abnf/rfcNNNN.abnf must appear verbatim (modulo whitespace) in the RFC text."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
ABNF_DIR = REPO / "spec" / "abnf"
ABNF_FILES = sorted(ABNF_DIR.glob("rfc*.abnf"))

# Page footer, e.g. "Rosenberg, et. al.          Standards Track                   [Page 220]"
_FOOTER = re.compile(r"^\S.*\[Page \d+\]\s*$")
# Page header, e.g. "RFC 3261            SIP: Session Initiation Protocol           June 2002"
_HEADER = re.compile(
    r"^RFC \d+\s.*\s(January|February|March|April|May|June|July|August|September|"
    r"October|November|December)\s+\d{4}\s*$"
)
_WS = re.compile(r"\s+")


def _norm(text: str) -> str:
    return _WS.sub(" ", text).strip()


def split_rules(text: str) -> list[str]:
    """Split ABNF text into rules: a rule starts at a line whose first char is neither
    whitespace nor ';'; indented lines continue it; column-0 ';' comment lines are dropped."""
    rules: list[str] = []
    current: list[str] | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        if line.startswith(";"):
            if current is not None:
                rules.append("\n".join(current))
                current = None
            continue
        if line[0].isspace():
            assert current is not None, f"continuation line without a rule: {line!r}"
            current.append(line)
        else:
            if current is not None:
                rules.append("\n".join(current))
            current = [line]
    if current is not None:
        rules.append("\n".join(current))
    return rules


def _rfc_number(path: Path) -> str:
    m = re.fullmatch(r"rfc(\d+)\.abnf", path.name)
    assert m, path.name
    return m.group(1)


@cache
def normalized_rfc(number: str) -> str:
    raw = (SHARED / "rfc" / f"rfc{number}.txt").read_text(encoding="utf-8", errors="replace")
    kept = [
        ln
        for ln in raw.replace("\f", "\n").splitlines()
        if not (_FOOTER.match(ln) or _HEADER.match(ln))
    ]
    return _norm("\n".join(kept))


_IDS = [p.name for p in ABNF_FILES]


@pytest.mark.parametrize("abnf_file", ABNF_FILES, ids=_IDS)
def test_rules_are_verbatim(abnf_file: Path) -> None:
    number = _rfc_number(abnf_file)
    rfc_txt = SHARED / "rfc" / f"rfc{number}.txt"
    if not rfc_txt.exists():
        pytest.skip(f"{rfc_txt} not available")
    rules = split_rules(abnf_file.read_text(encoding="utf-8"))
    assert rules, f"{abnf_file.name} contains no rules"
    haystack = normalized_rfc(number)
    missing = [r for r in rules if _norm(r) not in haystack]
    assert not missing, f"{len(missing)} rule(s) not verbatim in RFC {number}:\n" + "\n---\n".join(missing)


@pytest.mark.parametrize("abnf_file", ABNF_FILES, ids=_IDS)
def test_header_comments(abnf_file: Path) -> None:
    number = _rfc_number(abnf_file)
    lines = abnf_file.read_text(encoding="utf-8").splitlines()
    assert any(re.match(r"^;\s*@imports:", ln) for ln in lines), f"{abnf_file.name}: no '; @imports:' line"
    assert any(re.match(rf"^; RFC {number} §", ln) for ln in lines), (
        f"{abnf_file.name}: no '; RFC {number} §' section line"
    )
