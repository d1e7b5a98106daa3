"""What the server tests in front of the real `Guard` share: their optional imports, config and audit reads.

The module-level `importorskip`s skip every test module that imports from here when an extra is missing.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")
guard_module = pytest.importorskip("cosa_guard.guard")

from cosa_guard.config import SafetyConfig  # noqa: E402

REFUSAL = "Not in this studio."
CONFIG = SafetyConfig(
    id="game", version=1, text="Fictional violence is fine.", allow=["violence"], refusal=REFUSAL
)


def wait_for_audit(
    path: Path, done: Callable[[list[dict[str, Any]]], bool], timeout: float = 5.0
) -> list[dict[str, Any]]:
    """The audit records at `path` (written by a background thread) once `done` holds, else the last read."""
    deadline = time.monotonic() + timeout
    records: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        if path.exists():
            records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
            if done(records):
                return records
        time.sleep(0.02)
    return records
