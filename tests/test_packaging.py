"""``pip install .`` into a fresh venv outside the repository works, and the installed package finds the
data files it loads at run time (grammar/sip.lark, grammar/abnf.lark, shipped as ``sipactors/_grammar/``).

How, and why this way:

* the source is copied to a temporary folder first: setuptools builds in the source tree (``build/``,
  ``*.egg-info``), and the checkout must stay clean; the copy also proves the build needs nothing outside
  the files a clean clone has;
* the wheel is built with ``pip wheel`` and build isolation, exactly as ``pip install .`` does: the build
  backend (``[build-system] requires``) comes from the package indexes pip is configured with;
* the fresh venv (``--without-pip``; the test venv's pip installs into it with ``--python``) gets the wheel
  with ``--no-deps --no-index``. The runtime dependencies are the test venv's own installed copies, linked
  into a folder that a ``.pth`` file adds to the fresh venv: only the distributions the wheel's
  ``Requires-Dist`` names (and what they require), so a dependency missing from pyproject.toml fails here,
  and ``pip check`` confirms the declared requirements are met. No network is needed for this part.
  (``--system-site-packages`` would not do: it exposes the base interpreter's packages, not this venv's.)
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
_NOT_SOURCE = shutil.ignore_patterns(
    ".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__", ".hypothesis", ".pytest_cache",
    ".ruff_cache", ".mypy_cache",
)
BRANCH = "z9hG4bK776asdhds"  # the top Via branch of examples/invite.sip


def _run(args: list[str | Path], cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    # SIPACTORS_MYPYC too: this checks the default (pure) install, whichever build the suite runs on
    skip = ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "SIPACTORS_MYPYC")
    env = {k: v for k, v in os.environ.items() if k not in skip}
    env["PIP_NO_INPUT"] = "1"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def _requires(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        return email.message_from_string(archive.read(name).decode("utf-8")).get_all("Requires-Dist") or []


def _link_dependencies(requirements: list[str], target: Path) -> list[str]:
    """Link the test venv's copies of ``requirements`` (and of what they require) into ``target``."""
    target.mkdir()
    seen: set[str] = set()
    pending = list(requirements)
    while pending:
        requirement = Requirement(pending.pop())
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue  # an extra (e.g. sipactors[test]) or another platform
        key = canonicalize_name(requirement.name)
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = metadata.distribution(requirement.name)
        except metadata.PackageNotFoundError:
            pytest.fail(f"the wheel requires {requirement}, which the test environment does not have")
        pending.extend(dist.requires or [])
        for top in {Path(str(f)).parts[0] for f in dist.files or ()}:
            if top in ("..", "__pycache__") or (target / top).exists():
                continue
            (target / top).symlink_to(Path(str(dist.locate_file(top))).resolve())
    return sorted(seen)


@pytest.mark.slow
def test_pip_install_into_a_fresh_venv_outside_the_repo(tmp_path: Path) -> None:
    source = tmp_path / "source"
    shutil.copytree(REPO, source, ignore=_NOT_SOURCE, symlinks=True)
    wheels = tmp_path / "wheels"
    built = _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", wheels, source], cwd=tmp_path)
    assert built.returncode == 0, f"pip wheel failed:\n{built.stdout}\n{built.stderr}"
    (wheel,) = wheels.glob("sipactors-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    for data in ("_grammar/sip.lark", "_grammar/abnf.lark", "_models/README.md"):
        assert f"sipactors/{data}" in names, f"sipactors/{data} is not in the wheel"
    assert "sipactors/store/sqlite.py" in names, "sipactors.store is not in the wheel (pyproject.toml packages)"

    venv = tmp_path / "venv"
    created = _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    assert created.returncode == 0, created.stderr
    python = venv / "bin" / "python"
    (site_packages,) = (venv / "lib").glob("python3*/site-packages")
    linked = _link_dependencies(_requires(wheel), tmp_path / "dependencies")
    assert {"lark", "pykka", "transitions"} <= set(linked)
    (site_packages / "sipactors-test-dependencies.pth").write_text(f"{tmp_path / 'dependencies'}\n")

    pip = [sys.executable, "-m", "pip", "--python", python]
    installed = _run([*pip, "install", "--no-deps", "--no-index", wheel], cwd=tmp_path)
    assert installed.returncode == 0, f"pip install failed:\n{installed.stdout}\n{installed.stderr}"
    checked = _run([*pip, "check"], cwd=tmp_path)
    assert checked.returncode == 0, f"pip check: {checked.stdout}{checked.stderr}"

    # Run from a folder outside the repository, on a copy of the sample message.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy(REPO / "examples" / "invite.sip", elsewhere / "invite.sip")
    script = venv / "bin" / "sipactors"
    for options in ([], ["--oracle"]):  # the hot path's regexes and Lark's parser both come from sip.lark
        result = _run([script, "check", "--no-color", *options, "invite.sip"], cwd=elsewhere, timeout=120)
        assert result.returncode == 0, f"sipactors check {options}:\n{result.stdout}\n{result.stderr}"
        assert BRANCH in result.stdout
        assert "well formed" in result.stdout

    result = _run([script, "users", "list", "--store", "memory:"], cwd=elsewhere, timeout=120)
    assert result.returncode == 0 and "no users" in result.stdout, result.stderr

    probe = (
        "import sipactors, sipactors._resources as r\n"
        "from sipactors.grammar.abnf import read_module\n"
        "print(sipactors.__file__)\n"
        "print(r.grammar_file('sip.lark'))\n"
        "print(r.grammar_file('abnf.lark'))\n"
        "print(r.model_file('README.md'))\n"
        "print(sorted(read_module('m', 'a = \"b\"\\n').rules))\n"  # abnf.lark found and loaded by Lark
    )
    result = _run([python, "-c", probe], cwd=elsewhere, timeout=120)
    assert result.returncode == 0, result.stderr
    package, sip_lark, abnf_lark, readme, rules = result.stdout.splitlines()
    installed_package = site_packages.resolve() / "sipactors"
    assert Path(package).resolve().parent == installed_package
    for path, name in ((sip_lark, "sip.lark"), (abnf_lark, "abnf.lark"), (readme, "README.md")):
        resolved = Path(path).resolve()
        assert resolved.is_relative_to(venv.resolve()), f"{name} found at {path}, not inside the venv"
        assert not resolved.is_relative_to(REPO), f"{name} found in the repository: {path}"
        assert resolved.parent.name in ("_grammar", "_models") and resolved.parent.parent == installed_package
    assert rules == "['a']"
