"""Where the run-time data files live: the checkout's grammar/ and models/, or the installed package's copy.

The user's layout keeps ``grammar/`` and ``models/`` at the top of the repository; pyproject.toml ships them
inside the package as ``sipactors/_grammar/`` and ``sipactors/_models/`` (package data, no ``__init__.py``).

* Running from a checkout (``pyproject.toml`` and ``grammar/sip-syntax.lark`` beside the package), the
  top-level folders are used, so that a regenerated grammar is seen without reinstalling.
* Installed (a wheel, ``pip install .``), the files sit next to the package's modules:
  ``Path(sipactors.__file__).parent / "_grammar" / name``. They are plain files on disk, so no
  ``importlib.resources`` lookup of a data-only (namespace) package is needed.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["grammar_file", "model_file"]

#: The ``sipactors`` package folder (this module lives in it, so this is ``Path(sipactors.__file__).parent``).
_PACKAGE = Path(__file__).resolve().parent
#: The checkout root, when the package is run from one.
_REPO = _PACKAGE.parent


def _in_checkout() -> bool:
    return (_REPO / "pyproject.toml").is_file() and (_REPO / "grammar" / "sip-syntax.lark").is_file()


def _locate(folder: str, installed: str, name: str) -> Path:
    if _in_checkout():
        candidate = _REPO / folder / name
        if candidate.is_file():
            return candidate
    candidate = _PACKAGE / installed / name
    if candidate.is_file():
        return candidate
    raise FileNotFoundError(
        f"sipactors data file {name!r} not found: looked in {_REPO / folder} (checkout) "
        f"and {_PACKAGE / installed} (installed package)"
    )


def grammar_file(name: str) -> Path:
    """Path of a file in grammar/ (e.g. ``sip.lark``, ``abnf.lark``)."""
    return _locate("grammar", "_grammar", name)


def model_file(name: str) -> Path:
    """Path of a file in models/."""
    return _locate("models", "_models", name)
