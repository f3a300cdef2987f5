"""DESIGN §1, sans-IO core: message/, fsm/ and roles/ never import socket, time, threading, asyncio or
random (nor their relatives). Time comes in as an argument; effects go out as data."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sipactors"
FORBIDDEN = {
    "socket", "socketserver", "ssl", "select", "selectors", "time", "datetime", "threading", "_thread",
    "multiprocessing", "concurrent", "asyncio", "random", "secrets", "subprocess", "signal",
}
CORE = ["message", "fsm", "roles"]


def _modules() -> list[Path]:
    return sorted(path for folder in CORE if (PACKAGE / folder).is_dir() for path in (PACKAGE / folder).rglob("*.py"))


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_core_packages_exist() -> None:
    assert len(_modules()) >= 10


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_core_module_imports_no_io_clock_thread_or_randomness(path: Path) -> None:
    assert not (_imports(path) & FORBIDDEN), f"{path.name} imports {sorted(_imports(path) & FORBIDDEN)}"
