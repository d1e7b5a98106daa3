"""OpenAI chat-completions JSON <-> cosa_guard types.

Only what a guarded text chat needs is read from a request: the messages and the sampling
parameters. Nothing in a request can name, carry or alter a safety config: the deployment comes
from the API key, and client system (and `developer`) messages reach the guard, whose policy
renders them as the application's instructions below the config, drops, demotes or rejects
them. Unknown fields are ignored, as most OpenAI-compatible servers do, so clients that send
`user`, `stream_options` or `metadata` keep working.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosa_guard.server.errors import ApiError
from cosa_guard.types import DecisionKind, GuardResponse, Message


class ChatRequest(BaseModel):
    """The part of an OpenAI chat-completions request the server acts on."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    messages: list[dict[str, Any]] = Field(min_length=1)
    model: str | None = None
    stream: bool = False
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(default=1, ge=1, le=1, description="one choice per request")
    tools: list[Any] | None = None

    def guard_params(self) -> dict[str, Any]:
        params: dict[str, Any] = {}
        max_tokens = self.max_completion_tokens or self.max_tokens
        if max_tokens is not None:
            params["max_tokens"] = max_tokens
        for name in ("temperature", "top_p", "seed"):
            value = getattr(self, name)
            if value is not None:
                params[name] = value
        if self.stop:
            params["stop"] = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop)
        return params


def parse_request(data: Any) -> tuple[ChatRequest, tuple[Message, ...]]:
    """Validate a decoded JSON body; every problem is a 400 naming the offending field."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_body")
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise ApiError(
            400, f"invalid request: {param}: {first['msg']}", param=param, code="invalid_value"
        ) from None
    if request.tools:
        raise ApiError(
            400,
            "tools are not supported by this endpoint: it returns guarded text only",
            param="tools",
            code="unsupported_parameter",
        )
    messages = []
    for index, raw in enumerate(request.messages):
        try:
            messages.append(Message.from_dict(raw))
        except ValueError as exc:
            raise ApiError(
                400, f"messages[{index}]: {exc}", param=f"messages.{index}", code="invalid_value"
            ) from None
    return request, tuple(messages)


def decision_payload(response: GuardResponse) -> dict[str, Any]:
    """The `cosa_guard` field: what the guard decided and under which config. Never any config text."""
    decision = response.decision
    reason = decision.reason or decision.failure
    return {
        "decision": decision.kind.value,
        "reason": reason.value if reason is not None else None,
        "label": decision.label,
        "route": response.route.value,
        "deployment": response.deployment_id,
        "config_hash": response.config_hash,
        "categories": sorted(response.categories),
        "request_id": response.request_id,
        "fail_open": decision.fail_open,
    }


def finish_reason(response: GuardResponse) -> str:
    return "stop" if response.decision.kind is DecisionKind.ALLOWED else "content_filter"


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id or uuid.uuid4().hex}"


def completion_body(response: GuardResponse, model: str) -> dict[str, Any]:
    """A `chat.completion` object; `system_fingerprint` carries the config hash, as OpenAI clients keep it."""
    return {
        "id": completion_id(response.request_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": response.config_hash,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": response.text, "refusal": None},
                "logprobs": None,
                "finish_reason": finish_reason(response),
            }
        ],
        "cosa_guard": decision_payload(response),
    }


class ChunkWriter:
    """Builds the `chat.completion.chunk` objects of one stream; they share an id, model and creation time."""

    __slots__ = ("created", "fingerprint", "id", "model")

    def __init__(self, model: str, fingerprint: str | None = None) -> None:
        self.id = completion_id("")
        self.model = model
        self.fingerprint = fingerprint  # the config hash the stream is served under
        self.created = int(time.time())

    def chunk(
        self,
        delta: Mapping[str, Any],
        *,
        finish: str | None = None,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": self.fingerprint,
            "choices": [{"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish}],
        }
        if extra:
            body.update(extra)
        return body
