"""The optional compiled build: with ``SIPACTORS_MYPYC=1`` (``make compiled``), mypyc compiles the hot path of
a message (``[tool.sipactors] compiled`` in pyproject.toml: parser, table machines, actor and transaction
runtime, core, proxy and registrar roles) into C extension modules beside the .py files, as black and mypy
ship themselves. The .py files stay the source of truth, and the default build is pure Python: measured,
the compiled build takes about a fifth off the CPU per message (README, "The compiled build"), short of the
quarter that would pay for a C toolchain and mypy in every install. Everything else about the package is in
pyproject.toml.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path

from setuptools import setup


def _extensions() -> list:  # type: ignore[type-arg]
    if os.environ.get("SIPACTORS_MYPYC", "") in ("", "0"):
        return []
    from mypyc.build import mypycify  # not a build requirement: `make compiled` installs mypy first

    here = Path(__file__).resolve().parent
    compiled = tomllib.loads((here / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["sipactors"]["compiled"]
    # One group named inside the package (sipactors/_native__mypyc.so), so that an editable install, which
    # maps only the package, finds it.
    return mypycify(compiled, group_name="sipactors._native")


setup(ext_modules=_extensions())
