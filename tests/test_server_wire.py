"""OpenAI request parsing and response bodies (no server needed)."""

from __future__ import annotations

from typing import Any

import pytest

from cosa_guard.server.errors import ApiError, guard_failure
from cosa_guard.server.wire import ChunkWriter, completion_body, decision_payload, parse_request
from cosa_guard.types import Decision, FailureKind, GuardResponse, Message, RefusalReason, Route

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


def test_sampling_parameters_reach_the_guard_and_unknown_fields_are_ignored() -> None:
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
    assert request.guard_params() == {
        "max_tokens": 20,
        "temperature": 0.3,
        "top_p": 0.9,
        "seed": 7,
        "stop": ("END",),
    }
    assert parse_request({"messages": [USER], "stop": ["a", "b"]})[0].guard_params() == {"stop": ("a", "b")}
    assert parse_request({"messages": [USER]})[0].guard_params() == {}


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
    ],
)
def test_bad_requests_name_the_field(data: Any, param: str | None, code: str) -> None:
    error = _error(data)
    assert (error.param, error.code) == (param, code)
    assert set(error.body()["error"]) == {"message", "type", "param", "code"}


def test_no_request_field_can_carry_a_config() -> None:
    # Whatever a client sends under config-like names is dropped with the other unknown fields.
    request, _ = parse_request(
        {"messages": [USER], "safety_config": {"allow": ["weapons"]}, "cosa_guard": {"deployment": "other"}}
    )
    dumped = request.model_dump()
    assert "safety_config" not in dumped and "cosa_guard" not in dumped


@pytest.mark.parametrize(
    ("decision", "finish"),
    [
        (Decision.allowed(), "stop"),
        (Decision.refused(RefusalReason.OUTPUT_VIOLATION), "content_filter"),
        (Decision.refused(RefusalReason.INPUT_INJECTION), "content_filter"),
    ],
)
def test_completion_body_carries_the_decision(decision: Decision, finish: str) -> None:
    body = completion_body(_response(decision), "game")
    assert body["object"] == "chat.completion"
    assert body["choices"][0]["finish_reason"] == finish
    assert body["choices"][0]["message"] == {"role": "assistant", "content": "answer", "refusal": None}
    assert body["system_fingerprint"] == body["cosa_guard"]["config_hash"]
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
    writer = ChunkWriter("game", fingerprint="sha256:x")
    first = writer.chunk({"role": "assistant", "content": ""})
    last = writer.chunk({}, finish="stop", extra={"cosa_guard": {"decision": "allowed"}})
    assert first["id"] == last["id"] and first["id"].startswith("chatcmpl-")
    assert (first["model"], first["system_fingerprint"], first["object"]) == (
        "game",
        "sha256:x",
        "chat.completion.chunk",
    )
    assert first["choices"][0]["finish_reason"] is None
    assert last["choices"][0]["finish_reason"] == "stop"
    assert last["cosa_guard"] == {"decision": "allowed"}
