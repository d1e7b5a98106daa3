"""The server at its edges, in front of the real Guard: bodies that nest too deep or arrive too slowly,
answers UTF-8 cannot carry, and a /healthz that tells when a deployment or an audit file is down."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")
guard_module = pytest.importorskip("cosa_guard.guard")

from cosa_guard.backends.fake import ScriptedBackend  # noqa: E402
from cosa_guard.config import SafetyConfig  # noqa: E402
from cosa_guard.deployments import DeploymentRegistry  # noqa: E402
from cosa_guard.server import create_app  # noqa: E402
from cosa_guard.testing.deployments import write_signed_deployment  # noqa: E402
from cosa_guard.testing.server import serve_in_thread  # noqa: E402

CONFIG = SafetyConfig(id="game", version=1, text="Fictional violence is fine.", allow=["violence"])
BROKEN = "a broken \ud83d emoji"  # what json.loads makes of an upstream's "\ud83d" escape


def _spec(**overrides: Any) -> dict[str, Any]:
    return {
        "routes": {"fallback": {"kind": "scripted", "model": "echo"}},
        "judge": {"kind": "scripted"},
        "injection": {"enabled": False},
        **overrides,
    }


def _guard(registry: DeploymentRegistry) -> Any:
    return guard_module.Guard(
        registry, backend_factory=lambda spec, base: ScriptedBackend([BROKEN], chunk_size=4)
    )


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str, Path]]:
    path, key = write_signed_deployment(
        tmp_path, CONFIG, **_spec(audit={"path": "audit.jsonl", "include_text": True})
    )
    app = create_app(
        _guard(DeploymentRegistry.load(path)), body_timeout_s=0.2, watch_interval_s=None, close_guard=True
    )
    with serve_in_thread(app) as url:
        yield url, key, tmp_path / "audit.jsonl"


def _post(url: str, key: str, body: bytes) -> Any:
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    return httpx.post(url + "/v1/chat/completions", content=body, headers=headers, timeout=10)


def test_deeply_nested_json_is_a_400_in_openais_shape(served: tuple[str, str, Path]) -> None:
    url, key, _ = served
    response = _post(url, key, b"[" * 100_000 + b"]" * 100_000)
    assert response.status_code == 400
    assert (
        response.json()["error"]["code"] == "invalid_json" and "nested" in response.json()["error"]["message"]
    )


def test_a_body_that_does_not_arrive_in_time_is_a_408(served: tuple[str, str, Path]) -> None:
    url, key, _ = served
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        sock.sendall(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {key}\r\nContent-Length: 100\r\n\r\n".encode()
            + b'{"messages": '  # ... and the rest never comes
        )
        head = sock.recv(4096).decode()
    assert head.startswith("HTTP/1.1 408") and "request_timeout" in head


def test_a_lone_surrogate_in_the_answer_is_sent_as_a_replacement_character(
    served: tuple[str, str, Path],
) -> None:
    url, key, audit = served
    body = json.dumps({"messages": [{"role": "user", "content": "hi"}]}).encode()
    plain = _post(url, key, body)
    assert plain.status_code == 200
    assert plain.json()["choices"][0]["message"]["content"] == "a broken \ufffd emoji"
    stream = _post(
        url, key, json.dumps({"messages": [{"role": "user", "content": "hi"}], "stream": True}).encode()
    )
    events = [json.loads(line[6:]) for line in stream.text.splitlines() if line.startswith("data: {")]
    assert not [e for e in events if "error" in e]
    sent = "".join(e["choices"][0]["delta"].get("content") or "" for e in events)
    assert sent == "a broken \ufffd emoji" and events[-1]["cosa_guard"]["decision"] == "allowed"
    _eventually(lambda: audit.exists() and len(audit.read_text(encoding="utf-8").splitlines()) == 2)
    records = [json.loads(line) for line in audit.read_text(encoding="utf-8").splitlines()]
    assert [(r["decision"], r["response"]) for r in records] == [("allowed", sent)] * 2


def test_healthz_is_degraded_while_a_deployment_cannot_serve_and_503_when_none_can(tmp_path: Path) -> None:
    write_signed_deployment(tmp_path, CONFIG, **_spec())
    path, _ = write_signed_deployment(tmp_path, CONFIG.model_copy(update={"id": "kids"}), **_spec())
    registry = DeploymentRegistry.load(path)
    game = registry.get("game")
    past = datetime.now(UTC) - timedelta(days=1)
    expired = replace(game, config=game.config.model_copy(update={"expires_at": past}))  # served since before
    for deployments, status, code in (
        ([expired, registry.get("kids")], "degraded", 200),
        ([expired], "degraded", 503),
    ):
        app = create_app(_guard(DeploymentRegistry(deployments)), watch_interval_s=None, close_guard=True)
        with serve_in_thread(app) as url:
            health = httpx.get(url + "/healthz")
        assert (health.status_code, health.json()["status"]) == (code, status)
        assert health.json()["unservable"] == {"game": "the deployment's config has expired"}


def test_healthz_and_metrics_show_an_audit_file_that_cannot_be_written(tmp_path: Path) -> None:
    (tmp_path / "audit.jsonl").mkdir()  # a directory where the audit file should be
    path, _ = write_signed_deployment(tmp_path, CONFIG, **_spec(audit={"path": "audit.jsonl"}))
    app = create_app(_guard(DeploymentRegistry.load(path)), watch_interval_s=None, close_guard=True)
    with serve_in_thread(app) as url:
        health = httpx.get(url + "/healthz").json()
        metrics = httpx.get(url + "/metrics").text
    assert health["status"] == "degraded" and health["unservable"] == {}  # the calls still run, unaudited
    (audit,) = health["audit"]
    assert (audit["sink"], audit["ok"], audit["error"]) == ("audit.jsonl", False, "Is a directory")
    assert 'cosa_guard_audit_up{sink="audit.jsonl"} 0.0' in metrics
    assert 'cosa_guard_audit_write_errors_total{sink="audit.jsonl"}' in metrics


def _eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.02)
