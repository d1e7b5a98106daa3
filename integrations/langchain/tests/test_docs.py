"""docs/langchain.md stays true to the code: its examples compile, its imports exist, its keys are real."""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from cosa_guard_langchain.chat_model import guard_metadata

from cosa_guard.types import Decision, GuardResponse, Route

DOC = Path(__file__).resolve().parents[3] / "docs" / "langchain.md"
pytestmark = pytest.mark.skipif(not DOC.exists(), reason="docs/ is not part of this checkout")


def python_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(encoding="utf-8"), flags=re.DOTALL)


def test_every_python_example_compiles() -> None:
    blocks = python_blocks()
    assert len(blocks) >= 8
    for block in blocks:
        compile(block, str(DOC), "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)


def test_every_cosa_guard_import_in_the_examples_exists() -> None:
    imported = [
        (node.module, alias.name)
        for block in python_blocks()
        for node in ast.walk(ast.parse(block))
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("cosa_guard")
        for alias in node.names
    ]
    assert ("cosa_guard_langchain", "CosaGuardMiddleware") in imported
    for module, name in imported:
        assert hasattr(importlib.import_module(module), name), f"{module}.{name}"


def test_the_metadata_table_lists_every_key() -> None:
    response = GuardResponse(
        text="", decision=Decision.allowed(), route=Route.CASCADE, deployment_id="d", config_hash="h"
    )
    documented = set(re.findall(r"^\| `([a-z_]+)`", DOC.read_text(encoding="utf-8"), flags=re.MULTILINE))
    assert set(guard_metadata(response)) - {"deployment_id", "request_id"} <= documented
