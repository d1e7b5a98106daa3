"""OpenAI chat-completions JSON <-> cosa_guard types.

Only what a guarded text chat needs is read from a request: the messages, the sampling
parameters and `stream_options`. Nothing in a request can name, carry or alter a safety config:
the deployment comes from the API key, and client system (and `developer`) messages reach the
guard, whose policy renders them as the application's instructions below the config, drops,
demotes or rejects them. Every other field is accepted or refused by `fields`: none is silently
ignored.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosa_guard.server.errors import DECISION_HEADER, RULE_HEADER, ApiError
from cosa_guard.server.fields import check_fields, check_message
from cosa_guard.types import DecisionKind, GenerationParams, GuardResponse, Message


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    include_usage: bool = False
    include_obfuscation: bool = False  # OpenAI pads chunks against side channels; nothing to pad here


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
    # Usage is in every plain answer; a stream adds its final usage chunk only when asked, as OpenAI does.
    stream_options: StreamOptions | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    def guard_params(self) -> GenerationParams:
        return GenerationParams(
            max_tokens=self.max_completion_tokens or self.max_tokens,
            temperature=self.temperature,
            top_p=self.top_p,
            stop=((self.stop,) if isinstance(self.stop, str) else tuple(self.stop)) if self.stop else (),
            seed=self.seed,
        )


def parse_request(data: Any) -> tuple[ChatRequest, tuple[Message, ...]]:
    """Validate a decoded JSON body; every problem is a 400 naming the offending field."""
    if not isinstance(data, dict):
        raise ApiError(400, "the request body must be a JSON object", code="invalid_body")
    check_fields(data, ChatRequest.model_fields)
    try:
        request = ChatRequest.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        param = ".".join(str(part) for part in first["loc"]) or None
        raise ApiError(
            400, f"invalid request: {param}: {first['msg']}", param=param, code="invalid_value"
        ) from None
    messages = []
    for index, raw in enumerate(request.messages):
        check_message(index, raw)
        try:
            messages.append(Message.from_dict(raw))
        except ValueError as exc:
            raise ApiError(
                400, f"messages[{index}]: {exc}", param=f"messages.{index}", code="invalid_value"
            ) from None
    return request, tuple(messages)


def decision_payload(response: GuardResponse) -> dict[str, Any]:
    """The `cosa_guard` field: what the guard decided and under which config.

    Never prompt or answer text. The one piece of config text is `rule.text`, the signed text of
    the rule that decided the call, which the reviewer approved for callers to see.
    """
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
        "rule": response.rule,
        "rules_reviewed": response.rules_reviewed,
        "request_id": response.request_id,
        "fail_open": decision.fail_open,
    }


def decision_headers(response: GuardResponse) -> dict[str, str]:
    """The decision label, and the deciding rule's number (`3;reviewed=true`) when a rule decided."""
    headers = {DECISION_HEADER: response.decision.label}
    rule = response.rule
    if rule is not None:
        headers[RULE_HEADER] = f"{rule['number']};reviewed={str(response.rules_reviewed).lower()}"
    return headers


def finish_reason(response: GuardResponse) -> str:
    return "stop" if response.decision.kind is DecisionKind.ALLOWED else "content_filter"


def completion_id(request_id: str) -> str:
    return f"chatcmpl-{request_id or uuid.uuid4().hex}"


def fingerprint(config_hash: str, response: GuardResponse | None = None) -> str:
    """`system_fingerprint`: the config hash, then `;decision=<label>` once the call is decided.

    Clients that drop the `cosa_guard` field still see the decision here: LangChain's ChatOpenAI
    keeps `system_fingerprint` in `response_metadata` (and `DECISION_HEADER` with
    include_response_headers=True).
    """
    return config_hash if response is None else f"{config_hash};decision={response.decision.label}"


def completion_body(response: GuardResponse, model: str, usage: Mapping[str, Any]) -> dict[str, Any]:
    """A `chat.completion` object. A refusal is both the content (what chat UIs show) and `refusal`."""
    refused = response.decision.kind is DecisionKind.REFUSED
    return {
        "id": completion_id(response.request_id),
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "system_fingerprint": fingerprint(response.config_hash, response),
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": response.text,
                    "refusal": response.text if refused else None,
                },
                "logprobs": None,
                "finish_reason": finish_reason(response),
            }
        ],
        "usage": dict(usage),
        "cosa_guard": decision_payload(response),
    }


class ChunkWriter:
    """Builds the `chat.completion.chunk` objects of one stream; they share an id, model and creation time.

    With `include_usage` every chunk has `"usage": null` and `usage_chunk` makes the last one, with
    no choices, as OpenAI streams usage.
    """

    __slots__ = ("created", "fingerprint", "id", "include_usage", "model")

    def __init__(
        self, model: str, fingerprint: str, *, request_id: str = "", include_usage: bool = False
    ) -> None:
        self.id = completion_id(request_id)
        self.model = model
        self.fingerprint = fingerprint  # the config hash the stream is served under
        self.include_usage = include_usage
        self.created = int(time.time())

    def chunk(
        self,
        delta: Mapping[str, Any],
        *,
        finish: str | None = None,
        extra: Mapping[str, Any] | None = None,
        fingerprint: str | None = None,
    ) -> dict[str, Any]:
        body = self._base(fingerprint)
        body["choices"] = [{"index": 0, "delta": dict(delta), "logprobs": None, "finish_reason": finish}]
        if self.include_usage:
            body["usage"] = None
        if extra:
            body.update(extra)
        return body

    def usage_chunk(self, usage: Mapping[str, Any]) -> dict[str, Any]:
        body = self._base(None)
        body["choices"] = []
        body["usage"] = dict(usage)
        return body

    def _base(self, fingerprint: str | None) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "chat.completion.chunk",
            "created": self.created,
            "model": self.model,
            "system_fingerprint": fingerprint or self.fingerprint,
        }
