"""The RFC 4475 / RFC 5118 torture corpus in ../shared/conformance, with the manifest's expectations."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.conftest import SHARED

CONFORMANCE = SHARED / "conformance"


@dataclass(frozen=True)
class Case:
    folder: str
    entry: dict[str, Any]
    data: bytes

    @property
    def name(self) -> str:
        return f"{self.folder}/{self.entry['name']}"

    @property
    def allowed(self) -> list[str]:
        return list(self.entry["reactions"]) + list(self.entry.get("tolerated", []))


def wire_ready_5118(data: bytes) -> bytes:
    """RFC 5118's archive is not wire-ready (conformance/README.md): CRLF line ends, an empty line after the
    headers, a Content-Length that matches the body. None of this touches the IPv6 references under test."""
    text = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if b"\r\n\r\n" not in text:
        text = text if text.endswith(b"\r\n") else text + b"\r\n"
        text += b"\r\n"
    head, _, body = text.partition(b"\r\n\r\n")
    head = re.sub(rb"(?im)^(Content-Length|l)([ \t]*:[ \t]*)\d+", lambda m: m.group(1) + m.group(2) + str(len(body)).encode(), head)
    return head + b"\r\n\r\n" + body


def load(folder: str) -> list[Case]:
    path = CONFORMANCE / folder
    manifest = tomllib.loads((path / "manifest.toml").read_text(encoding="utf-8"))
    cases = []
    for entry in manifest["message"]:
        data = (path / entry["file"]).read_bytes()
        if folder == "rfc5118":
            data = wire_ready_5118(data)
        cases.append(Case(folder, entry, data))
    return cases


def all_cases() -> list[Case]:
    return load("rfc4475") + load("rfc5118")


def status_allowed(status: int, allowed: list[str]) -> bool:
    """Does a response with ``status`` meet one of the manifest's reaction tokens?"""
    for token in allowed:
        if token == str(status):
            return True
        if len(token) == 3 and token.endswith("xx") and token[0] == str(status)[0]:
            return True
        if token == "error" and status >= 400:
            return True
        if token == "accept" and status != 400:
            return True
    return False


def corpus_path(folder: str, name: str) -> Path:
    return CONFORMANCE / folder / name
