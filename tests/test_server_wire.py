"""OpenAI request parsing and response bodies (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from cosa_guard.server.errors import ApiError, guard_failure
from cosa_guard.server.wire import ChunkWriter, completion_body, decision_payload, parse_request
from cosa_guard.types import (
    Decision,
    FailureKind,
    GenerationParams,
    GuardResponse,
    Message,
    RefusalReason,
    Route,
)

USER = {"role": "user", "content": "hi"}


def _response(decision: Decision, text: str = "answer") -> GuardResponse:
    return GuardResponse(
        text=text,
        decision=decision,
        route=Route.CASCADE,
        deployment_id="game",
        config_hash="sha256:" + "ab" * 32,
        categories=frozenset({"violence", "drugs"}),
        request_id="r1",
    )


def _error(data: Any) -> ApiError:
    with pytest.raises(ApiError) as info:
        parse_request(data)
    assert info.value.status == 400
    return info.value


def test_sampling_parameters_reach_the_guard_and_labels_are_accepted() -> None:
    request, messages = parse_request(
        {
            "model": "game",
            "messages": [USER],
            "max_tokens": 10,
            "max_completion_tokens": 20,  # the newer name wins
            "temperature": 0.3,
            "top_p": 0.9,
            "seed": 7,
            "stop": "END",
            "user": "u-1",
            "stream_options": {"include_usage": True},
        }
    )
    assert messages == (Message("user", "hi"),)
    assert request.guard_params() == GenerationParams(
        max_tokens=20, temperature=0.3, top_p=0.9, seed=7, stop=("END",)
    )
    assert parse_request({"messages": [USER], "stop": ["a", "b"]})[0].guard_params() == GenerationParams(
        stop=("a", "b")
    )
    assert parse_request({"messages": [USER]})[0].guard_params() == GenerationParams()


def test_developer_role_is_a_system_message_and_content_parts_are_joined() -> None:
    _, messages = parse_request(
        {
            "messages": [
                {"role": "developer", "content": "be terse"},
                {
                    "role": "user",
                    "content": [{"type": "text", "text": "a "}, {"type": "text", "text": "duel"}],
                },
            ]
        }
    )
    assert messages == (Message("system", "be terse"), Message("user", "a duel"))


@pytest.mark.parametrize(
    ("data", "param", "code"),
    [
        ([USER], None, "invalid_body"),
        ({"messages": []}, "messages", "invalid_value"),
        ({"messages": [USER], "n": 2}, "n", "invalid_value"),
        ({"messages": [USER], "temperature": 3}, "temperature", "invalid_value"),
        ({"messages": [USER], "max_tokens": 0}, "max_tokens", "invalid_value"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0", "invalid_value"),
        ({"messages": [USER, {"role": "wizard", "content": "x"}]}, "messages.1", "invalid_value"),
        ({"messages": [USER], "tools": [{"type": "function"}]}, "tools", "unsupported_parameter"),
        ({"messages": [USER], "tool_choice": "auto"}, "tool_choice", "unsupported_parameter"),
        ({"messages": [USER], "functions": [{"name": "f"}]}, "functions", "unsupported_parameter"),
        ({"messages": [USER], "function_call": "auto"}, "function_call", "unsupported_parameter"),
        (
            {"messages": [USER], "response_format": {"type": "json_object"}},
            "response_format",
            "unsupported_parameter",
        ),
        (
            {"messages": [USER], "response_format": {"type": "json_schema", "json_schema": {"name": "x"}}},
            "response_format",
            "unsupported_parameter",
        ),
        ({"messages": [USER], "logprobs": True}, "logprobs", "unsupported_parameter"),
        ({"messages": [USER], "top_logprobs": 3}, "top_logprobs", "unsupported_parameter"),
        ({"messages": [USER], "modalities": ["text", "audio"]}, "modalities", "unsupported_parameter"),
        ({"messages": [USER], "audio": {"voice": "alloy"}}, "audio", "unsupported_parameter"),
        ({"messages": [USER], "frequency_penalty": 0.5}, "frequency_penalty", "unsupported_parameter"),
        ({"messages": [USER], "logit_bias": {"42": 5}}, "logit_bias", "unsupported_parameter"),
        (
            {"messages": [USER], "stream_options": {"include_usage": "maybe"}},
            "stream_options.include_usage",
            "invalid_value",
        ),
        ({"messages": [USER], "stream_options": {"bogus": True}}, "stream_options.bogus", "invalid_value"),
        ({"messages": [USER], "top_k": 5}, "top_k", "unknown_parameter"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
            "messages.0.content.0",
            "unsupported_content",
        ),
        (
            {
                "messages": [
                    USER,
                    {"role": "user", "content": [{"type": "text", "text": "hear"}, {"type": "input_audio"}]},
                ]
            },
            "messages.1.content.1",
            "unsupported_content",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "file"}]}]},
            "messages.0.content.0",
            "unsupported_content",
        ),
        (
            {"messages": [USER, {"role": "assistant", "content": None, "tool_calls": [{"id": "1"}]}]},
            "messages.1.tool_calls",
            "unsupported_content",
        ),
    ],
)
def test_bad_requests_name_the_field(data: Any, param: str | None, code: str) -> None:
    error = _error(data)
    assert (error.param, error.code) == (param, code)
    assert set(error.body()["error"]) == {"message", "type", "param", "code"}
    if param is not None:
        assert param.split(".")[-1] in error.message or "content[" in error.message


@pytest.mark.parametrize(
    "extra",
    [
        {"response_format": {"type": "text"}},
        {"logprobs": False, "top_logprobs": 0},
        {"tool_choice": "none", "parallel_tool_calls": False, "tools": []},
        {"frequency_penalty": 0, "presence_penalty": 0.0, "logit_bias": {}},
        {"modalities": ["text"], "store": False, "metadata": {"k": "v"}, "service_tier": "auto"},
        {"stream": True, "stream_options": {"include_usage": True}},
    ],
)
def test_fields_at_their_default_or_without_effect_are_accepted(extra: dict[str, Any]) -> None:
    request, messages = parse_request({"messages": [USER], **extra})
    assert messages == (Message("user", "hi"),)
    assert request.guard_params() == GenerationParams()


def test_include_usage_is_read_from_stream_options() -> None:
    assert parse_request({"messages": [USER], "stream_options": {"include_usage": True}})[0].include_usage
    assert not parse_request({"messages": [USER], "stream_options": {}})[0].include_usage
    assert not parse_request({"messages": [USER]})[0].include_usage


@pytest.mark.parametrize("name", ["safety_config", "cosa_guard", "config"])
def test_no_request_field_can_carry_a_config(name: str) -> None:
    # Config-like names are refused like every field the server does not define.
    error = _error({"messages": [USER], name: {"allow": ["weapons"], "deployment": "other"}})
    assert (error.param, error.code) == (name, "unknown_parameter")


@pytest.mark.parametrize(
    ("decision", "finish"),
    [
        (Decision.allowed(), "stop"),
        (Decision.refused(RefusalReason.OUTPUT_VIOLATION), "content_filter"),
        (Decision.refused(RefusalReason.INPUT_INJECTION), "content_filter"),
    ],
)
def test_completion_body_carries_the_decision(decision: Decision, finish: str) -> None:
    usage = {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5, "estimated": False}
    body = completion_body(_response(decision), "game", usage)
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["finish_reason"] == finish
    refusal = None if decision.is_allowed else "answer"
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "answer", "refusal": refusal}
    assert body["system_fingerprint"] == f"{body['cosa_guard']['config_hash']};decision={decision.label}"
    assert body["usage"] == usage
    assert body["cosa_guard"]["decision"] == decision.kind.value
    assert body["cosa_guard"]["reason"] == (decision.reason.value if decision.reason else None)
    assert body["cosa_guard"]["categories"] == ["drugs", "violence"]
    assert body["id"] == "chatcmpl-r1"


@pytest.mark.parametrize(
    ("failure", "status"), [(FailureKind.TIMEOUT, 504), (FailureKind.BACKEND, 503), (FailureKind.JUDGE, 503)]
)
def test_failures_become_server_errors_without_text(failure: FailureKind, status: int) -> None:
    response = _response(Decision.failed(failure, "details"), text="unchecked model text")
    error = guard_failure(response, decision_payload(response))
    body = error.body()
    assert error.status == status
    assert body["error"]["code"] == f"guard_{failure.value}"
    assert body["cosa_guard"]["decision"] == "failed"
    assert "unchecked model text" not in error.encode().decode()
    with pytest.raises(ValueError):
        guard_failure(_response(Decision.allowed()), {})


def test_chunks_of_one_stream_share_id_model_and_fingerprint() -> None:
    writer = ChunkWriter("game", "sha256:x", request_id="r9")
    first = writer.chunk({"role": "assistant", "content": ""})
    last = writer.chunk({}, finish="stop", extra={"cosa_guard": {"decision": "allowed"}}, fingerprint="fp")
    assert first["id"] == last["id"] == "chatcmpl-r9"
    assert "usage" not in first and last["system_fingerprint"] == "fp"
    assert (first["model"], first["system_fingerprint"], first["object"]) == (
        "game",
        "sha256:x",
        "chat.completion.chunk",
    )
    assert first["choices"][0]["finish_reason"] is None
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["cosa_guard"] == {"decision": "allowed"}


def test_a_stream_with_include_usage_ends_with_a_usage_chunk() -> None:
    writer = ChunkWriter("game", "sha256:x", include_usage=True)
    assert writer.chunk({"content": "a"})["usage"] is None
    usage = writer.usage_chunk({"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2})
    assert usage["choices"] == [] and usage["usage"]["total_tokens"] == 2
    assert usage["id"] == writer.id
