"""The build under test is whole: in the compiled build (setup.py with ``SIPACTORS_MYPYC=1``, ``make
compiled``) every module ``[tool.sipactors] compiled`` lists is a mypyc extension module, and the functions the
parser's differential tests call (``sipactors.message.parse``, hot path == Lark oracle) are compiled ones; in
the pure build none is. ``SIPACTORS_MYPYC`` in the environment of the test run says which build is expected
(``make test-compiled`` sets it); without it, the build is taken to be compiled exactly when mypyc's shared
library (``sipactors._native__mypyc``) is present, and must then be compiled throughout (no module left to
its .py file by a stale or partial build).
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import tomllib
from importlib.machinery import EXTENSION_SUFFIXES
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
COMPILED: list[str] = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["sipactors"]["compiled"]
SHARED_LIBRARY = "sipactors._native__mypyc"


def _expected_compiled() -> bool:
    asked = os.environ.get("SIPACTORS_MYPYC")
    if asked is not None:
        return asked not in ("", "0")
    return importlib.util.find_spec(SHARED_LIBRARY) is not None


def _module_name(path: str) -> str:
    return path.removesuffix(".py").replace("/", ".")


def _is_extension(module_name: str) -> bool:
    origin = importlib.import_module(module_name).__file__ or ""
    return any(origin.endswith(suffix) for suffix in EXTENSION_SUFFIXES)


def test_the_compiled_list_names_existing_modules_of_the_package() -> None:
    assert COMPILED and len(set(COMPILED)) == len(COMPILED)
    for path in COMPILED:
        assert path.startswith("sipactors/") and (REPO / path).is_file(), path
    assert "sipactors/message/oracle.py" not in COMPILED  # the Lark oracle is the reference, left as written


@pytest.mark.parametrize("path", COMPILED)
def test_each_listed_module_is_built_as_the_build_says(path: str) -> None:
    compiled = _expected_compiled()
    assert _is_extension(_module_name(path)) == compiled, (
        f"{path}: {'not ' if compiled else ''}an extension module in the {'compiled' if compiled else 'pure'} build"
    )


def test_the_differential_tests_run_on_the_build_s_parser() -> None:
    """tests/message/test_differential.py compares ``sipactors.message.parse`` (and the header parsers it
    reaches) with the Lark oracle: in the compiled build those are mypyc's functions (builtins to Python),
    so the comparison checks the compiled parser."""
    from sipactors.message import headers, message, parse

    compiled = _expected_compiled()
    for function in (parse, message.parse, headers.parse_value, headers.parse_uri):
        assert inspect.isbuiltin(function) == compiled, f"{function!r} in the {'compiled' if compiled else 'pure'} build"
    if compiled:
        assert importlib.util.find_spec(SHARED_LIBRARY) is not None, "mypyc's shared library is missing"


def test_no_module_outside_the_list_is_compiled() -> None:
    """A module dropped from the list must not stay compiled: an extension module left beside its .py by an
    earlier build shadows the .py (``make compiled`` deletes them all first)."""
    listed = {path.removesuffix(".py") for path in COMPILED}
    stale = [
        str(path.relative_to(REPO)) for path in (REPO / "sipactors").rglob("*.so")
        if not path.name.startswith("_native__mypyc") and str(path.relative_to(REPO)).split(".")[0] not in listed
    ]
    assert stale == []
