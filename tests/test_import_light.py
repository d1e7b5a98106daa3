"""A bare `import cosa_guard` must not load any heavy optional dependency."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = [
    "torch",
    "transformers",
    "vllm",
    "fastapi",
    "uvicorn",
    "starlette",
    "langchain_core",
    "sentence_transformers",
    "onnxruntime",
    "matplotlib",
    "trl",
    "peft",
    "numpy",
    "prometheus_client",
    "opentelemetry",
]


def test_bare_import_loads_no_heavy_module() -> None:
    code = (
        "import sys, json, cosa_guard, cosa_guard.cli; "
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


def test_cli_help_lists_commands() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cosa_guard", "--help"], capture_output=True, text=True, check=True
    )
    assert "COMMAND" in out.stdout
