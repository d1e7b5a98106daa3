"""The package imports with langchain-core alone; the agent middleware asks for the `agents` extra."""

from __future__ import annotations

import json
import subprocess
import sys

import cosa_guard_langchain
import pytest


def test_import_needs_only_langchain_core() -> None:
    code = (
        "import sys, json, cosa_guard_langchain; "
        "print(json.dumps(sorted(m for m in ('langchain', 'langgraph') if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_middleware_without_langchain_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "cosa_guard_langchain.middleware", raising=False)
    monkeypatch.setitem(sys.modules, "langchain.agents.middleware", None)
    with pytest.raises(ImportError, match=r"cosa-guard-langchain\[agents\]"):
        cosa_guard_langchain.CosaGuardMiddleware  # noqa: B018


def test_unknown_attributes_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        cosa_guard_langchain.Nope  # type: ignore[attr-defined]  # noqa: B018
