"""Every install the README, CI and the container run is pinned, so a new release cannot turn CI red."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYPROJECTS = ("pyproject.toml", "integrations/langchain/pyproject.toml", "training/pyproject.toml")
_PIP_INSTALL = re.compile(r"pip install ([^&\n\\]*)")


def _pip_installs(path: str) -> list[str]:
    text = (ROOT / path).read_text(encoding="utf-8")
    if path == "README.md":  # its two commands (install-and-run, install-and-test); prose names extras too
        text = "\n".join(line for line in text.splitlines() if line.startswith("python3 -m venv"))
    return [m.group(1).strip() for m in _PIP_INSTALL.finditer(text)]


def _pinned(arguments: str) -> bool:
    """Constrained by constraints.txt, or a single exact pin installed without its dependencies."""
    return "-c constraints.txt" in arguments or ("--no-deps" in arguments and "==" in arguments)


@pytest.mark.parametrize("path", ["README.md", ".ci/run", "Dockerfile"])
def test_every_install_command_is_pinned(path: str) -> None:
    installs = _pip_installs(path)
    assert installs, f"{path} shows no pip install"
    unpinned = [a for a in installs if not _pinned(a)]
    assert unpinned == [], f"{path}: installs without constraints.txt: {unpinned}"


@pytest.mark.parametrize("path", PYPROJECTS)
def test_the_build_backend_is_pinned(path: str) -> None:
    requires = tomllib.loads((ROOT / path).read_text(encoding="utf-8"))["build-system"]["requires"]
    exact = re.compile(r"[A-Za-z0-9_.-]+==[0-9][0-9A-Za-z.]*")
    assert requires and all(exact.fullmatch(r) for r in requires), requires
