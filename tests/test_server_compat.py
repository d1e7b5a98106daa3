"""OpenAI compatibility of the server in front of the real `Guard`, with the real `openai` SDK and raw httpx:
usage, refused fields, request ids, the decision where LangChain keeps it, Retry-After, CORS, /readyz.

The backend is scripted and reports token usage like a model server; the scripted judge flags
answers containing `DRUGS` as drug-related, which the config does not allow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from _server_fixtures import CONFIG, REFUSAL, guard_module, httpx, openai, wait_for_audit

from cosa_guard.audit import MemoryAuditSink
from cosa_guard.backends.fake import ScriptedBackend
from cosa_guard.errors import BackendError
from cosa_guard.server import create_app
from cosa_guard.server.usage import estimate_tokens
from cosa_guard.settings import BackendSpec
from cosa_guard.testing.deployments import write_signed_deployment
from cosa_guard.testing.server import serve_in_thread
from cosa_guard.types import Completion, GenerationParams, Message, Usage

PROMPT_TOKENS, COMPLETION_TOKENS = 41, 7  # what the scripted model server reports
ORIGIN = "https://chat.example"


def _reply(messages: Sequence[Message]) -> str:
    prompt = messages[-1].content
    if "boom" in prompt:
        raise BackendError("upstream is down")
    if "drugs" in prompt:
        return "Here is how: DRUGS."
    return f"echo: {prompt}"


class CountingBackend(ScriptedBackend):
    """A scripted model whose `generate` reports usage, as OpenAI-compatible model servers do."""

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        completion = await super().generate(messages, params)
        return Completion(
            completion.text,
            completion.model,
            completion.finish_reason,
            Usage(PROMPT_TOKENS, COMPLETION_TOKENS),
        )


def backend_factory(spec: BackendSpec, base_dir: Path) -> ScriptedBackend:
    return CountingBackend([_reply], name=spec.model or "scripted", chunk_size=8)


@dataclass
class Service:
    url: str
    key: str
    audit_path: Path
    rejected: MemoryAuditSink
    clients: list[Any] = field(default_factory=list)

    def client(self) -> Any:
        client = openai.OpenAI(base_url=self.url + "/v1", api_key=self.key, max_retries=0)
        self.clients.append(client)
        return client

    def post(self, body: dict[str, Any], **headers: str) -> Any:
        return httpx.post(
            self.url + "/v1/chat/completions",
            json=body,
            headers={"Authorization": f"Bearer {self.key}", **headers},
            timeout=10,
        )

    def audit(self, request_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The audit record of `request_id` (written by a background thread), once it is there."""
        records = wait_for_audit(
            self.audit_path, lambda rs: any(r["request_id"] == request_id for r in rs), timeout
        )
        for record in records:
            if record["request_id"] == request_id:
                return record
        raise AssertionError(f"no audit record for {request_id}")


def _serve(tmp_path: Path, **app_options: Any) -> Iterator[Service]:
    path, key = write_signed_deployment(
        tmp_path,
        CONFIG,
        routes={"fallback": {"kind": "scripted", "model": "echo"}},
        judge={"kind": "scripted", "options": {"flags": {"DRUGS": "drugs"}}},
        injection={"enabled": False},
        stream={"mode": "buffer"},
        audit={"path": "audit.jsonl"},
    )
    guard = guard_module.Guard.from_file(path, backend_factory=backend_factory)
    rejected = MemoryAuditSink()
    app = create_app(guard, watch_interval_s=None, close_guard=True, audit=rejected, **app_options)
    with serve_in_thread(app) as url:
        service = Service(url, key, tmp_path / "audit.jsonl", rejected)
        yield service
        for client in service.clients:
            client.close()


@pytest.fixture
def service(tmp_path: Path) -> Iterator[Service]:
    yield from _serve(tmp_path)


def _user(content: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": content}]


# --- usage -----------------------------------------------------------------------------------------


def test_usage_of_an_allowed_answer_is_the_models(service: Service) -> None:
    completion = service.client().chat.completions.create(model="game", messages=_user("a duel"))
    assert completion.choices[0].message.content == "echo: a duel"
    usage = completion.usage
    assert (usage.prompt_tokens, usage.completion_tokens) == (PROMPT_TOKENS, COMPLETION_TOKENS)
    assert usage.total_tokens == PROMPT_TOKENS + COMPLETION_TOKENS
    assert usage.model_extra["estimated"] is False


def test_usage_of_a_refusal_counts_the_refusal_not_the_blocked_answer(service: Service) -> None:
    completion = service.client().chat.completions.create(model="game", messages=_user("drugs please"))
    assert completion.choices[0].finish_reason == "content_filter"
    assert completion.choices[0].message.content == REFUSAL
    usage = completion.usage
    assert usage.prompt_tokens == PROMPT_TOKENS  # the model did read the prompt
    assert usage.completion_tokens == estimate_tokens(REFUSAL) != COMPLETION_TOKENS
    assert usage.model_extra["estimated"] is True


@pytest.mark.parametrize("prompt", ["a duel", "drugs please"])
def test_stream_usage_only_when_asked_and_counting_what_was_streamed(service: Service, prompt: str) -> None:
    client = service.client()
    plain = list(client.chat.completions.create(model="game", messages=_user(prompt), stream=True))
    assert all(chunk.usage is None for chunk in plain)
    chunks = list(
        client.chat.completions.create(
            model="game", messages=_user(prompt), stream=True, stream_options={"include_usage": True}
        )
    )
    *answer, last = chunks
    assert last.choices == [] and last.usage is not None
    assert all(chunk.usage is None for chunk in answer)
    streamed = "".join(c.choices[0].delta.content or "" for c in answer)
    assert streamed in ("echo: a duel", REFUSAL)
    assert last.usage.completion_tokens == estimate_tokens(streamed)
    assert last.usage.prompt_tokens == estimate_tokens(prompt)
    assert last.usage.model_extra["estimated"] is True


# --- fields that cannot be honoured ---------------------------------------------------------------

IMAGE = {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}
AUDIO = {"type": "input_audio", "input_audio": {"data": "UklGRg==", "format": "wav"}}


@pytest.mark.parametrize(
    ("kwargs", "param"),
    [
        ({"response_format": {"type": "json_object"}}, "response_format"),
        ({"logprobs": True, "top_logprobs": 2}, "logprobs"),
        ({"functions": [{"name": "f", "parameters": {"type": "object"}}]}, "functions"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools"),
        ({"messages": _user([{"type": "text", "text": "what is this?"}, IMAGE])}, "messages.0.content.1"),
        ({"messages": _user([AUDIO])}, "messages.0.content.0"),
        ({"extra_body": {"top_k": 4}}, "top_k"),
    ],
)
def test_sdk_gets_a_400_naming_each_field_it_cannot_have(
    service: Service, kwargs: dict[str, Any], param: str
) -> None:
    request = {"model": "game", "messages": _user("a duel"), **kwargs}
    with pytest.raises(openai.BadRequestError) as info:
        service.client().chat.completions.create(**request)
    assert info.value.param == param
    assert param.split(".")[0] in info.value.message
    # Refused before the guard: no model saw it, and the server's own audit says why.
    assert not service.audit_path.exists() or not service.audit_path.read_text()
    assert service.rejected.records[-1].decision == f"rejected:{info.value.code}"


def test_response_format_text_is_honoured(service: Service) -> None:
    completion = service.client().chat.completions.create(
        model="game", messages=_user("a duel"), response_format={"type": "text"}
    )
    assert completion.choices[0].message.content == "echo: a duel"


# --- request ids ------------------------------------------------------------------------------------


def test_the_clients_request_id_is_the_body_id_header_and_audit_record(service: Service) -> None:
    raw = service.client().chat.completions.with_raw_response.create(
        model="game", messages=_user("a duel"), extra_headers={"x-request-id": "trace-42.a:b_c"}
    )
    completion = raw.parse()
    assert raw.headers["x-request-id"] == "trace-42.a:b_c"
    assert completion.id == "chatcmpl-trace-42.a:b_c"
    assert completion.model_extra["cosa_guard"]["request_id"] == "trace-42.a:b_c"
    assert service.audit("trace-42.a:b_c")["decision"] == "allowed"


@pytest.mark.parametrize("client_id", ["has spaces", "x" * 129, "-leading-dash", "a/b", ""])
def test_an_unsafe_client_id_is_replaced_everywhere_alike(service: Service, client_id: str) -> None:
    response = service.post({"messages": _user("a duel")}, **{"x-request-id": client_id})
    request_id = response.headers["x-request-id"]
    assert request_id != client_id and request_id
    assert response.json()["id"] == f"chatcmpl-{request_id}"
    assert service.audit(request_id)["decision"] == "allowed"


def test_a_stream_and_a_rejection_carry_the_id_too(service: Service) -> None:
    with httpx.stream(
        "POST",
        service.url + "/v1/chat/completions",
        json={"messages": _user("a duel"), "stream": True},
        headers={"Authorization": f"Bearer {service.key}", "x-request-id": "s-1"},
    ) as response:
        assert response.headers["x-request-id"] == "s-1"
        events = [json.loads(line[6:]) for line in response.iter_lines() if line.startswith("data: {")]
    assert {event["id"] for event in events} == {"chatcmpl-s-1"}
    assert service.audit("s-1")["stream"] is True
    bad = httpx.post(
        service.url + "/v1/chat/completions",
        json={"messages": _user("hi")},
        headers={"Authorization": "Bearer wrong", "x-request-id": "r-1"},
    )
    assert bad.status_code == 401 and bad.headers["x-request-id"] == "r-1"
    assert service.rejected.records[-1].request_id == "r-1"


# --- the decision where clients that drop unknown fields still see it ------------------------------


def test_the_decision_rides_in_a_header_and_the_system_fingerprint(service: Service) -> None:
    """What LangChain's ChatOpenAI keeps: `system_fingerprint` (response_metadata) and, with
    include_response_headers=True, the headers; `refusal` lands in additional_kwargs."""
    client = service.client()
    allowed = client.chat.completions.with_raw_response.create(model="game", messages=_user("a duel"))
    refused = client.chat.completions.with_raw_response.create(model="game", messages=_user("drugs"))
    config_hash = allowed.parse().model_extra["cosa_guard"]["config_hash"]
    assert allowed.headers["x-cosa-guard-decision"] == "allowed"
    assert allowed.parse().system_fingerprint == f"{config_hash};decision=allowed"
    assert allowed.parse().choices[0].message.refusal is None
    assert refused.headers["x-cosa-guard-decision"] == "refused:output_violation"
    assert refused.parse().system_fingerprint == f"{config_hash};decision=refused:output_violation"
    assert refused.parse().choices[0].message.refusal == REFUSAL


def test_langchain_chat_openai_reads_the_decision_from_the_server(service: Service) -> None:
    """langchain-openai drops unknown top-level fields: the decision reaches it through
    `system_fingerprint` and, with include_response_headers=True, the decision header."""
    langchain_openai = pytest.importorskip("langchain_openai")
    model = langchain_openai.ChatOpenAI(
        base_url=service.url + "/v1",
        api_key=service.key,
        model="game",
        max_retries=0,
        include_response_headers=True,
    )
    allowed = model.invoke("a duel")
    refused = model.invoke("drugs")
    assert allowed.content == "echo: a duel"
    assert allowed.response_metadata["system_fingerprint"].endswith(";decision=allowed")
    assert allowed.response_metadata["headers"]["x-cosa-guard-decision"] == "allowed"
    assert refused.response_metadata["system_fingerprint"].endswith(";decision=refused:output_violation")
    assert refused.response_metadata["headers"]["x-cosa-guard-decision"] == "refused:output_violation"
    assert refused.response_metadata["finish_reason"] == "content_filter"
    streamed = list(model.stream("drugs"))
    assert "".join(str(c.content) for c in streamed) == REFUSAL
    fingerprints = [
        c.response_metadata["system_fingerprint"]
        for c in streamed
        if c.response_metadata.get("system_fingerprint")
    ]
    assert fingerprints[-1].endswith(";decision=refused:output_violation")


def test_a_streams_last_chunk_carries_the_decision_in_its_fingerprint(service: Service) -> None:
    chunks = list(
        service.client().chat.completions.create(model="game", messages=_user("drugs"), stream=True)
    )
    config_hash = chunks[-1].model_extra["cosa_guard"]["config_hash"]
    assert {c.system_fingerprint for c in chunks[:-1]} == {config_hash}  # undecided until the end
    assert chunks[-1].choices[0].finish_reason == "content_filter"
    assert chunks[-1].system_fingerprint == f"{config_hash};decision=refused:output_violation"


def test_a_guard_failure_is_503_with_retry_after_and_the_decision(service: Service) -> None:
    response = service.post({"messages": _user("boom")}, **{"x-request-id": "f-1"})
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.headers["x-cosa-guard-decision"] == "failed:backend"
    assert "[request f-1]" in response.json()["error"]["message"]
    with pytest.raises(openai.InternalServerError):
        service.client().chat.completions.create(model="game", messages=_user("boom"))


# --- CORS and readiness --------------------------------------------------------------------------


@pytest.fixture
def cors_service(tmp_path: Path) -> Iterator[Service]:
    yield from _serve(tmp_path, cors_origins=[ORIGIN])


def _preflight(url: str, origin: str) -> Any:
    return httpx.options(
        url + "/v1/chat/completions",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type,x-stainless-os",
        },
    )


def test_cors_is_off_unless_origins_are_given(service: Service) -> None:
    assert "access-control-allow-origin" not in _preflight(service.url, ORIGIN).headers
    response = service.post({"messages": _user("a duel")}, Origin=ORIGIN)
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers


def test_cors_lets_the_given_origin_call_and_read_the_decision(cors_service: Service) -> None:
    preflight = _preflight(cors_service.url, ORIGIN)
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == ORIGIN
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    response = cors_service.post({"messages": _user("a duel")}, Origin=ORIGIN)
    assert response.headers["access-control-allow-origin"] == ORIGIN
    exposed = response.headers["access-control-expose-headers"].lower()
    assert "x-cosa-guard-decision" in exposed and "x-request-id" in exposed
    assert "access-control-allow-credentials" not in response.headers
    other = _preflight(cors_service.url, "https://evil.example")
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers


def test_readyz_is_ready_while_serving_and_healthz_is_separate(service: Service) -> None:
    ready = httpx.get(service.url + "/readyz")
    assert ready.status_code == 200 and ready.json() == {"status": "ready", "deployments": 1}
    assert httpx.get(service.url + "/healthz").status_code == 200


async def test_readyz_is_503_with_retry_after_before_start_and_after_shutdown(tmp_path: Path) -> None:
    path, _ = write_signed_deployment(
        tmp_path,
        CONFIG,
        routes={"fallback": {"kind": "scripted", "model": "echo"}},
        judge={"kind": "scripted"},
        injection={"enabled": False},
    )
    guard = guard_module.Guard.from_file(path, backend_factory=backend_factory)
    app = create_app(guard, watch_interval_s=None, reload_on_sighup=False, close_guard=True)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        before = await client.get("/readyz")
        async with app.router.lifespan_context(app):
            during = await client.get("/readyz")
        after = await client.get("/readyz")
    assert (before.status_code, before.json()["status"]) == (503, "not started")
    assert during.status_code == 200
    assert (after.status_code, after.json()["status"]) == (503, "shutting down")
    assert before.headers["retry-after"] == after.headers["retry-after"] == "1"
