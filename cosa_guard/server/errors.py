"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`, plus the guard decision.

OpenAI clients (the `openai` SDK, LangChain's ChatOpenAI, LiteLLM) map the HTTP status to an
exception class and show `error.message`, so every failure the server reports goes through
`ApiError` and keeps that shape. A guard failure adds the decision under `cosa_guard`, so a
client can tell an outage (503/504, fail closed) from a block (200, `content_filter`) and from a
request it must change (413 too large, 400 unsendable text). A failure's message is the decision's
fixed detail and the request id: never an exception's text, an upstream URL or any model text.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from cosa_guard.types import DecisionKind, FailureKind, GuardResponse

# The guard's decision label (`allowed`, `refused:<reason>`, `failed:<kind>`) on every answer and
# guard failure, for clients that keep headers but drop unknown body fields (LangChain's ChatOpenAI).
DECISION_HEADER = "x-cosa-guard-decision"
RULE_HEADER = "x-cosa-guard-rule"  # the number of the config rule that decided, when one did

# Seconds a client should wait before retrying a 429 (a key's calls in flight) or a 503 (the model
# or judge unavailable, no deployment loaded): short, since both clear as soon as a call ends.
RETRY_AFTER_S = 1

# A timeout is the gateway's deadline passing; a request the guard will not serve is the client's
# to change; any other failure is the service being unavailable.
FAILURE_STATUS: Mapping[FailureKind | None, int] = {
    FailureKind.TIMEOUT: 504,
    FailureKind.TOO_LARGE: 413,
    FailureKind.INVALID_REQUEST: 400,
}


class ApiError(Exception):
    """An error response. `extra` adds top-level fields next to `error` (the guard decision)."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})
        if status in (429, 503):
            self.headers.setdefault("Retry-After", str(RETRY_AFTER_S))

    def body(self) -> dict[str, Any]:
        error = {"message": self.message, "type": self.type, "param": self.param, "code": self.code}
        return {"error": error, **self.extra}

    def encode(self) -> bytes:
        return json.dumps(self.body(), ensure_ascii=False).encode("utf-8")


def unauthorized(message: str) -> ApiError:
    return ApiError(
        401,
        message,
        type="invalid_request_error",
        code="invalid_api_key",
        headers={"WWW-Authenticate": 'Bearer realm="cosa-guard"'},
    )


def guard_failure(response: GuardResponse, payload: Mapping[str, Any]) -> ApiError:
    """A failed decision as an error: the caller gets no model text, only why (fail closed)."""
    decision = response.decision
    if decision.kind is not DecisionKind.FAILED:
        raise ValueError(f"not a failure: {decision.label}")
    failure = decision.failure.value if decision.failure is not None else "unknown"
    status = FAILURE_STATUS.get(decision.failure, 503)
    detail = f": {decision.detail}" if decision.detail else ""
    if status < 500:
        message = f"the request was not served ({failure}{detail})"
    else:
        message = (
            f"the guard could not produce a checked answer ({failure}{detail}); no unchecked text is returned"
        )
    return ApiError(
        status,
        f"{message} [request {response.request_id}]",
        type="invalid_request_error" if status < 500 else "server_error",
        code=f"guard_{failure}",
        extra={"cosa_guard": dict(payload)},
        headers={DECISION_HEADER: decision.label},
    )
