"""The demo deployment: signed once under COSA_GUARD_HOME, same API key across runs, and it loads."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from cosa_guard.demo import DEMO_DEPLOYMENT_ID, demo_config, demo_home, ensure_demo_deployment
from cosa_guard.deployments import DeploymentRegistry
from cosa_guard.review import lint


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("COSA_GUARD_HOME", str(tmp_path))
    return tmp_path / "demo"


def test_demo_home_follows_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COSA_GUARD_HOME", str(tmp_path / "cg"))
    assert demo_home() == tmp_path / "cg" / "demo"
    monkeypatch.delenv("COSA_GUARD_HOME")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert demo_home() == tmp_path / "xdg" / "cosa_guard" / "demo"


def test_the_bundled_demo_config_is_clean() -> None:
    config = demo_config()
    assert config.id == DEMO_DEPLOYMENT_ID and config.allow == ("violence",)
    assert lint(config.model_dump(mode="json")).issues == ()


def test_first_run_signs_a_deployment_that_loads(home: Path) -> None:
    demo = ensure_demo_deployment()
    assert demo.deployments_path == home / "deployments.yaml"
    registry = DeploymentRegistry.load(demo.deployments_path)
    deployment = registry.by_api_key(demo.api_key)
    assert deployment.id == demo.deployment_id == DEMO_DEPLOYMENT_ID
    assert deployment.config_hash == demo_config().hash
    assert deployment.spec.routes.fallback is not None and deployment.spec.routes.fallback.model == "embedded"
    assert stat.S_IMODE(os.stat(home / "api_key").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(home / "keys" / "reviewer").st_mode) == 0o600
    assert demo.api_key not in demo.deployments_path.read_text(encoding="utf-8")
    assert "DEMO" in demo.notice and str(home) in demo.notice


def test_later_runs_keep_the_key_and_do_not_re_sign(home: Path) -> None:
    first = ensure_demo_deployment()
    bundle = home / "bundles" / f"{DEMO_DEPLOYMENT_ID}.json"
    signed = bundle.read_bytes()
    second = ensure_demo_deployment()
    assert second.api_key == first.api_key
    assert bundle.read_bytes() == signed  # a re-sign would carry a new timestamp and signature


def test_a_stale_deployment_is_re_signed_with_the_same_key(home: Path) -> None:
    first = ensure_demo_deployment()
    document = yaml.safe_load(first.deployments_path.read_text(encoding="utf-8"))
    document["deployments"][DEMO_DEPLOYMENT_ID]["routes"] = {"fallback": {"kind": "scripted"}}
    first.deployments_path.write_text(yaml.safe_dump(document), encoding="utf-8")
    again = ensure_demo_deployment()
    assert again.api_key == first.api_key
    deployment = DeploymentRegistry.load(again.deployments_path).by_api_key(again.api_key)
    assert deployment.spec.routes.fallback is not None and deployment.spec.routes.fallback.kind == "onnx"


def test_an_explicit_directory(tmp_path: Path) -> None:
    demo = ensure_demo_deployment(tmp_path / "elsewhere")
    assert demo.deployments_path.parent == tmp_path / "elsewhere"
    assert DeploymentRegistry.load(demo.deployments_path).ids() == (DEMO_DEPLOYMENT_ID,)
