"""Unjudged text never leaves through an error (issue 15, item 1).

Every failure path gets an exception whose text carries a secret, as an upstream error body or a
`UnicodeEncodeError` over the rendered config would: the decision, the response, the audit record
(with `include_text: false`), the HTTP error body and the ordinary logs must not show it. Only the
`cosa_guard.detail` logger, off by default, may, and only once it is turned on.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from _guard_fixtures import BOTH_ROUTES, USER, PassInputGuard, config, guard_over, registry

from cosa_guard.audit import MemoryAuditSink
from cosa_guard.backends.fake import ScriptedBackend
from cosa_guard.backends.openai import OpenAIBackend
from cosa_guard.errors import BackendError, BackendRequestError, JudgeParseError, UpstreamStatusError
from cosa_guard.failures import DETAIL_LOGGER, is_upstream_fault
from cosa_guard.guard import Guard
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.testing.deployments import write_signed_deployment
from cosa_guard.types import FinalEvent, GenerationParams, GuardResponse, Message

SECRET = "model text nobody judged: the launch codes are 0000"
URL = "http://10.1.2.3:8000/v1/chat/completions"
LEAKY = BackendError(f"HTTP 500 from {URL}: {SECRET}")


class FailingInputGuard(PassInputGuard):
    async def check(self, messages: Any, spec: Any) -> Any:
        raise UnicodeEncodeError("utf-8", SECRET, 0, 1, "surrogates not allowed")


def _everything(guard: Guard, response: GuardResponse, sink: MemoryAuditSink, logs: str) -> str:
    """All a client, an auditor and an operator with default logging can read about the call."""
    records = json.dumps([r.to_dict() for r in sink.records], ensure_ascii=False)
    return "\n".join([response.text, response.decision.detail, records, logs])


async def _run(guard: Guard, stream: bool) -> GuardResponse:
    if not stream:
        return await guard.chat("game", USER)
    final = [e async for e in guard.stream("game", USER) if isinstance(e, FinalEvent)]
    return final[0].response


# path -> (primary, fallback, judge, input guard, the label it must end with)
PATHS: dict[str, tuple[Any, Any, Any, Any, str]] = {
    "primary, then the cascade": (LEAKY, LEAKY, None, None, "failed:backend"),
    "cascade backend": (None, LEAKY, None, None, "failed:backend"),
    "judge": (None, "an answer", JudgeParseError(f"the judge answered {SECRET!r}"), None, "failed:judge"),
    "input guard": (None, "an answer", None, FailingInputGuard(), "failed:judge"),
}


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("path", list(PATHS))
async def test_no_failure_path_shows_exception_text(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, path: str, stream: bool
) -> None:
    primary, fallback, judge_error, input_guard, label = PATHS[path]
    routes = BOTH_ROUTES if primary is not None else {"fallback": BOTH_ROUTES["fallback"]}
    backends = {"primary": ScriptedBackend([primary or "x"]), "fallback": ScriptedBackend([fallback])}
    judge = ScriptedJudge([judge_error]) if judge_error is not None else None
    sink = MemoryAuditSink()
    guard = guard_over(
        registry(tmp_path, routes=routes, audit={"include_text": False}),
        backends,
        judge=judge,
        sink=sink,
        input_guard=input_guard,
    )
    caplog.set_level(logging.DEBUG)  # even everything else at DEBUG leaves the detail log off
    response = await _run(guard, stream)
    assert response.decision.label == label
    assert response.decision.detail  # still says which stage failed, and how
    seen = _everything(guard, response, sink, caplog.text)
    assert SECRET not in seen
    assert URL not in seen
    assert not [r for r in caplog.records if r.name == DETAIL_LOGGER]


async def test_the_detail_log_has_the_exception_once_turned_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    guard = guard_over(registry(tmp_path), {"fallback": ScriptedBackend([LEAKY])})
    caplog.set_level(logging.DEBUG, logger=DETAIL_LOGGER)
    response = await guard.chat("game", USER)
    [record] = [r for r in caplog.records if r.name == DETAIL_LOGGER]
    assert SECRET in record.getMessage()
    assert response.request_id in record.getMessage()
    assert "may contain" in record.getMessage()


async def test_a_lone_surrogate_is_a_typed_decision_that_quotes_nothing(tmp_path: Path) -> None:
    backend = ScriptedBackend(["never"])
    sink = MemoryAuditSink()
    guard = guard_over(registry(tmp_path), {"fallback": backend}, sink=sink)
    response = await guard.chat("game", [{"role": "user", "content": "hi \ud800 there"}])
    assert response.decision.label == "failed:invalid_request"
    assert response.decision.detail == "messages[0] is not valid Unicode text: it holds a lone surrogate"
    assert backend.calls == []  # rejected before any model: it can count against no breaker
    [record] = sink.records
    assert record.decision == "failed:invalid_request"
    assert "Fictional violence" not in json.dumps(record.to_dict())  # nothing of the rendered config


def _upstream(status: int, body: dict[str, Any]) -> OpenAIBackend:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body)

    return OpenAIBackend(
        "m", base_url=URL.removesuffix("/chat/completions"), transport=httpx.MockTransport(handler)
    )


@pytest.mark.parametrize(
    ("status", "kind", "fault"),
    [
        (400, BackendRequestError, False),
        (422, BackendRequestError, False),
        (500, UpstreamStatusError, True),
        (401, UpstreamStatusError, True),
        (429, UpstreamStatusError, True),
    ],
)
async def test_openai_statuses_are_typed_by_whose_fault_they_are(
    status: int, kind: type[BackendError], fault: bool
) -> None:
    backend = _upstream(status, {"error": {"message": SECRET}})
    with pytest.raises(kind) as info:
        await backend.generate([Message("user", "hi")], GenerationParams(max_tokens=10**9))
    assert isinstance(info.value, BackendRequestError | UpstreamStatusError)
    assert info.value.status == status
    assert is_upstream_fault(info.value) is fault


async def test_openai_backend_rejects_unencodable_text_without_sending_it() -> None:
    sent: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        return httpx.Response(200, json={})

    backend = OpenAIBackend("m", base_url="http://u/v1", transport=httpx.MockTransport(handler))
    with pytest.raises(BackendRequestError) as info:
        await backend.generate([Message("system", SECRET), Message("user", "\udc80")], GenerationParams())
    assert not is_upstream_fault(info.value)
    assert sent == []


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, str]]:
    pytest.importorskip("fastapi")
    pytest.importorskip("uvicorn")
    from cosa_guard.server import create_app
    from cosa_guard.testing.server import serve_in_thread

    path, key = write_signed_deployment(
        tmp_path,
        config(),
        routes={"primary": {"kind": "openai", "model": "m", "base_url": URL}},
        injection={"enabled": False},
    )
    leaky = _upstream(500, {"error": {"message": SECRET}})
    guard = Guard.from_file(path, backend_factory=lambda spec, base: leaky)
    with serve_in_thread(create_app(guard, watch_interval_s=None, close_guard=True)) as url:
        yield url, key


@pytest.mark.parametrize("stream", [False, True])
def test_a_503_names_the_failure_and_request_never_the_upstream(
    served: tuple[str, str], stream: bool
) -> None:
    url, key = served
    response = httpx.post(
        url + "/v1/chat/completions",
        json={"messages": USER, "stream": stream},
        headers={"authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "guard_backend"
    assert "HTTP 500" in error["message"]
    request_id = response.json()["cosa_guard"]["request_id"]
    assert request_id and request_id in error["message"]
    assert SECRET not in response.text and "10.1.2.3" not in response.text
