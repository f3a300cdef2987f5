"""Where the run-time data files live: the checkout's grammar/ and models/, or the installed package's copy."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

_REPO = Path(__file__).resolve().parent.parent


def _locate(folder: str, package: str, name: str) -> Path:
    # A checkout is preferred so that a regenerated grammar is seen without reinstalling.
    candidate = _REPO / folder / name
    if (_REPO / "pyproject.toml").is_file() and candidate.is_file():
        return candidate
    resource = resources.files(package) / name
    with resources.as_file(resource) as path:
        return Path(path)


def grammar_file(name: str) -> Path:
    """Path of a file in grammar/ (e.g. ``sip.lark``)."""
    return _locate("grammar", "sipactors._grammar", name)


def model_file(name: str) -> Path:
    """Path of a file in models/."""
    return _locate("models", "sipactors._models", name)
