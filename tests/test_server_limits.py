"""The server's side of issue 15, item 4: 413 for an oversize request, 400 for unsendable text, 429
once an API key has `limits.max_concurrency_per_key` calls in flight, while other keys are served."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx")

from _guard_fixtures import CASCADE_ONLY, config  # noqa: E402

from cosa_guard.backends.fake import ScriptedBackend  # noqa: E402
from cosa_guard.deployments import DeploymentRegistry, LoadedDeployment, ReloadReport  # noqa: E402
from cosa_guard.guard import Guard  # noqa: E402
from cosa_guard.server import create_app  # noqa: E402
from cosa_guard.testing.deployments import write_signed_deployment  # noqa: E402
from cosa_guard.testing.server import serve_in_thread  # noqa: E402
from cosa_guard.types import Decision, FinalEvent, GuardResponse, Message, Route, StreamEvent, TextDelta  # noqa: E402


def _post(url: str, key: str, body: dict[str, Any] | bytes) -> Any:
    headers = {"authorization": f"Bearer {key}", "content-type": "application/json"}
    if isinstance(body, bytes):
        return httpx.post(url + "/v1/chat/completions", content=body, headers=headers, timeout=20)
    return httpx.post(url + "/v1/chat/completions", json=body, headers=headers, timeout=20)


# --- 413 and 400 from the guard's own checks ---------------------------------------------------------


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[tuple[str, str]]:
    path, key = write_signed_deployment(
        tmp_path,
        config(),
        routes=CASCADE_ONLY,
        judge={"kind": "scripted"},
        injection={"enabled": False},
        limits={"max_turn_chars": 50},
    )
    guard = Guard.from_file(path, backend_factory=lambda spec, base: ScriptedBackend(["an answer"]))
    with serve_in_thread(create_app(guard, watch_interval_s=None, close_guard=True)) as url:
        yield url, key


@pytest.mark.parametrize("stream", [False, True])
def test_a_turn_over_the_limit_is_413_naming_the_limit(guarded: tuple[str, str], stream: bool) -> None:
    url, key = guarded
    response = _post(url, key, {"messages": [{"role": "user", "content": "x" * 51}], "stream": stream})
    assert response.status_code == 413
    error = response.json()["error"]
    assert (error["code"], error["type"]) == ("guard_too_large", "invalid_request_error")
    assert "limits.max_turn_chars is 50" in error["message"]
    assert response.json()["cosa_guard"]["label"] == "failed:too_large"
    assert _post(url, key, {"messages": [{"role": "user", "content": "x" * 50}]}).status_code == 200


def test_a_lone_surrogate_is_400_and_quotes_nothing(guarded: tuple[str, str]) -> None:
    url, key = guarded
    response = _post(url, key, b'{"messages": [{"role": "user", "content": "secret \\ud800"}]}')
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "guard_invalid_request"
    assert "secret" not in response.text and "Fictional violence" not in response.text


# --- 429 per API key -------------------------------------------------------------------------------


@dataclass
class GatedGuard:
    """Answers at once, except a call whose prompt is `wait`: it holds its slot until `gate` opens."""

    registry: DeploymentRegistry
    entered: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)

    def by_api_key(self, api_key: str) -> LoadedDeployment:
        return self.registry.by_api_key(api_key)

    def _answer(self, deployment_id: str) -> GuardResponse:
        deployment = self.registry.get(deployment_id)
        return GuardResponse("ok", Decision.allowed(), Route.CASCADE, deployment_id, deployment.config_hash)

    async def _hold(self, messages: Sequence[Message]) -> None:
        if messages[-1].content == "wait":
            self.entered.set()
            await asyncio.to_thread(self.gate.wait, 10)

    async def warm_up(self) -> None:
        pass

    async def chat(
        self, deployment_id: str, messages: Sequence[Message], *_: Any, **__: Any
    ) -> GuardResponse:
        await self._hold(messages)
        return self._answer(deployment_id)

    async def stream(
        self, deployment_id: str, messages: Sequence[Message], *_: Any, **__: Any
    ) -> AsyncIterator[StreamEvent]:
        yield TextDelta("ok")  # the response has started: the slot must be held until it ends
        await self._hold(messages)
        yield FinalEvent(self._answer(deployment_id))

    async def reload(self) -> ReloadReport:
        return ReloadReport()

    async def aclose(self) -> None:
        pass


@dataclass
class Gated:
    url: str
    guard: GatedGuard
    keys: dict[str, str]
    app: Any


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[Gated]:
    _, busy = write_signed_deployment(tmp_path, config(), "busy", limits={"max_concurrency_per_key": 1})
    path, other = write_signed_deployment(tmp_path, config(), "other", limits={"max_concurrency_per_key": 1})
    guard = GatedGuard(DeploymentRegistry.load(path))
    app = create_app(guard, watch_interval_s=None)
    with serve_in_thread(app) as url:
        yield Gated(url, guard, {"busy": busy, "other": other}, app)
    guard.gate.set()


def _wait_until(condition: Any) -> None:
    deadline = time.monotonic() + 10
    while not condition():
        assert time.monotonic() < deadline, "the condition never became true"
        time.sleep(0.01)


@pytest.mark.parametrize("stream", [False, True])
def test_a_key_over_its_concurrency_gets_429_and_others_are_served(gated: Gated, stream: bool) -> None:
    busy, other = gated.keys["busy"], gated.keys["other"]
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(
            _post, gated.url, busy, {"messages": [{"role": "user", "content": "wait"}], "stream": stream}
        )
        assert gated.guard.entered.wait(10)
        refused = _post(gated.url, busy, {"messages": [{"role": "user", "content": "hi"}]})
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert "limits.max_concurrency_per_key" in refused.json()["error"]["message"]
        assert _post(gated.url, other, {"messages": [{"role": "user", "content": "hi"}]}).status_code == 200
        gated.guard.gate.set()
        assert held.result().status_code == 200
    slots = gated.app.state.key_slots
    _wait_until(lambda: slots.in_flight(busy) == 0)  # given back once the response has ended
    assert _post(gated.url, busy, {"messages": [{"role": "user", "content": "hi"}]}).status_code == 200


def test_a_request_refused_after_taking_its_slot_gives_it_back(gated: Gated) -> None:
    busy = gated.keys["busy"]
    assert _post(gated.url, busy, b"{not json").status_code == 400  # refused after the slot was taken
    _wait_until(lambda: gated.app.state.key_slots.in_flight(busy) == 0)
    assert _post(gated.url, busy, {"messages": [{"role": "user", "content": "hi"}]}).status_code == 200
