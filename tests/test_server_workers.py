"""`serve --workers N` in process: what the supervisor hands uvicorn, and what a replacement worker loads."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")

from cosa_guard.cli import main  # noqa: E402
from cosa_guard.config import SafetyConfig  # noqa: E402
from cosa_guard.errors import DeploymentError  # noqa: E402
from cosa_guard.metrics import MULTIPROC_ENV  # noqa: E402
from cosa_guard.server.workers import OPTIONS_ENV, WorkerOptions, create_worker_app  # noqa: E402
from cosa_guard.signing import load_private_key, sign_config  # noqa: E402
from cosa_guard.testing.deployments import write_signed_deployment  # noqa: E402
from cosa_guard.testing.server import free_port  # noqa: E402

CONFIG = SafetyConfig(id="game", version=2, text="Fictional violence is fine.", allow=["violence"])
SPEC: dict[str, Any] = {
    "routes": {"fallback": {"kind": "scripted"}},
    "judge": {"kind": "scripted"},
    "injection": {"enabled": False},
}


def test_workers_may_take_the_worker_start_timeout_to_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvicorn kills a replacement that is not serving after its health-check timeout (5 s by default),
    and with it the SIGHUP restart: loading the category judge takes longer than that."""
    path, _ = write_signed_deployment(tmp_path, CONFIG, **SPEC)
    seen: dict[str, Any] = {}

    def run(app: str, **kwargs: Any) -> None:
        seen.update(kwargs, options=json.loads(os.environ[OPTIONS_ENV]))

    monkeypatch.setattr(uvicorn, "run", run)
    # serve sets both for its workers: recorded here so that they are restored after the test
    monkeypatch.setenv(OPTIONS_ENV, "")
    monkeypatch.setenv(MULTIPROC_ENV, str(tmp_path))
    argv = ["serve", "--deployments", str(path), "--port", str(free_port()), "--workers", "2"]
    assert main([*argv, "--worker-start-timeout", "45", "--body-timeout", "7"]) == 0
    assert seen["timeout_worker_healthcheck"] == 45 and seen["workers"] == 2
    assert seen["options"]["body_timeout_s"] == 7 and seen["options"]["served_ledger"].endswith("served.json")
    assert main(argv) == 0
    assert seen["timeout_worker_healthcheck"] == 120  # the default leaves room for the category judge


def test_a_replacement_worker_never_starts_on_an_older_config_than_the_workers_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = write_signed_deployment(tmp_path, CONFIG, **SPEC)
    options = WorkerOptions(
        deployments=str(path),
        max_body_bytes=1 << 20,
        watch_interval_s=None,
        served_ledger=str(tmp_path / "s.json"),
    )
    monkeypatch.setenv(OPTIONS_ENV, options.to_env())
    assert create_worker_app() is not None  # the first worker serves v2 and records it
    older = CONFIG.model_copy(update={"version": 1})
    key = load_private_key(tmp_path / "keys" / "reviewer")
    sign_config(older, key, reviewer="reviewer").save(tmp_path / "bundles" / "game.json")  # copied back
    with pytest.raises(DeploymentError, match="ConfigDowngradeError"):
        create_worker_app()  # a SIGHUP replacement: uvicorn keeps the old worker serving v2
