"""The vocabulary shared by every module: messages, completions, verdicts, decisions, guard results.

All are frozen, slotted dataclasses: they are created on every call, so they stay cheap.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant", "tool"]
ROLES: frozenset[str] = frozenset({"system", "user", "assistant", "tool"})
# OpenAI's newer name for the application's instructions: the same privilege as `system`.
ROLE_ALIASES: Mapping[str, Role] = {"developer": "system"}


@dataclass(frozen=True, slots=True)
class Message:
    """One chat turn, in OpenAI's shape."""

    role: Role
    content: str
    name: str | None = None
    tool_call_id: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Message:
        role = data.get("role")
        role = ROLE_ALIASES.get(role, role) if isinstance(role, str) else role
        if role not in ROLES:
            raise ValueError(f"message role must be one of {sorted(ROLES | set(ROLE_ALIASES))}, got {role!r}")
        content = data.get("content")
        if content is None:
            content = ""
        elif isinstance(content, list):  # OpenAI content parts: keep the text parts
            content = "".join(str(p.get("text", "")) for p in content if isinstance(p, Mapping))
        elif not isinstance(content, str):
            raise ValueError(f"message content must be a string, got {type(content).__name__}")
        return cls(role=role, content=content, name=data.get("name"), tool_call_id=data.get("tool_call_id"))

    def to_dict(self) -> dict[str, str]:
        out = {"role": self.role, "content": self.content}
        if self.name is not None:
            out["name"] = self.name
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


MessageLike = Message | Mapping[str, Any]


def as_messages(messages: Any) -> tuple[Message, ...]:
    """Accept Messages or OpenAI-style dicts; always return a tuple of Message."""
    return tuple(m if isinstance(m, Message) else Message.from_dict(m) for m in messages)


@dataclass(frozen=True, slots=True)
class GenerationParams:
    """Sampling parameters passed to a backend. `extra` carries backend-specific options."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_kwargs(cls, **kwargs: Any) -> GenerationParams:
        known = {k: kwargs.pop(k) for k in ("max_tokens", "temperature", "top_p", "seed") if k in kwargs}
        stop = kwargs.pop("stop", ())
        if isinstance(stop, str):
            stop = (stop,)
        return cls(**known, stop=tuple(stop or ()), extra=kwargs)

    def to_kwargs(self) -> dict[str, Any]:
        """The parameters that are set, as keyword arguments (`from_kwargs` in reverse); `extra` last."""
        out: dict[str, Any] = {
            k: v
            for k in ("max_tokens", "temperature", "top_p", "seed")
            if (v := getattr(self, k)) is not None
        }
        if self.stop:
            out["stop"] = list(self.stop)
        out.update(self.extra)
        return out


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Completion:
    """What a backend returns for one call."""

    text: str
    model: str
    finish_reason: str = "stop"
    usage: Usage | None = None


@dataclass(frozen=True, slots=True)
class Chunk:
    """One streamed piece of a completion."""

    text: str
    finish_reason: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """A judge's opinion of one response under one config.

    `categories` are the risk categories found in the response; `complies` is the subset rule
    (categories ⊆ allowed, `other` never allowed); `score` is the probability that the response
    violates the config; `scores` holds per-category probabilities where the judge has them.
    """

    categories: frozenset[str]
    complies: bool
    score: float
    reason: str = ""
    scores: Mapping[str, float] = field(default_factory=dict)
    judge: str = ""
    # The config rule that decided the verdict (rule judges only): its number and text as signed.
    rule_number: int | None = None
    rule_text: str = ""

    @property
    def rule(self) -> dict[str, Any] | None:
        """The deciding rule as decisions carry it, `{"number", "text"}`; None when no rule decided.

        The text is the config's own (signed) rule text, never prompt or answer text.
        """
        return None if self.rule_number is None else {"number": self.rule_number, "text": self.rule_text}


class DecisionKind(str, enum.Enum):
    ALLOWED = "allowed"
    REFUSED = "refused"
    FAILED = "failed"


class RefusalReason(str, enum.Enum):
    INPUT_INJECTION = "input_injection"
    OUTPUT_VIOLATION = "output_violation"
    FLOOR = "floor"
    SYSTEM_MESSAGE = "system_message"


class FailureKind(str, enum.Enum):
    TIMEOUT = "timeout"
    BACKEND = "backend"
    JUDGE = "judge"
    CONFIG = "config"
    AUDIT = "audit"  # the deployment requires its audit log, and it cannot be written
    # The request itself cannot be served (the client's fault, checked before any model is called).
    TOO_LARGE = "too_large"
    INVALID_REQUEST = "invalid_request"


@dataclass(frozen=True, slots=True)
class Decision:
    """The outcome of one guarded call. A block (`refused`) is never confused with an outage (`failed`)."""

    kind: DecisionKind
    reason: RefusalReason | None = None
    failure: FailureKind | None = None
    detail: str = ""
    fail_open: bool = False  # allowed only because the deployment explicitly fails open

    @classmethod
    def allowed(cls, detail: str = "", *, fail_open: bool = False) -> Decision:
        return cls(DecisionKind.ALLOWED, detail=detail, fail_open=fail_open)

    @classmethod
    def refused(cls, reason: RefusalReason, detail: str = "") -> Decision:
        return cls(DecisionKind.REFUSED, reason=reason, detail=detail)

    @classmethod
    def failed(cls, failure: FailureKind, detail: str = "") -> Decision:
        return cls(DecisionKind.FAILED, failure=failure, detail=detail)

    @property
    def is_allowed(self) -> bool:
        return self.kind is DecisionKind.ALLOWED

    @property
    def label(self) -> str:
        """`allowed`, `refused:<reason>` or `failed:<kind>`: one token for logs and metrics."""
        if self.reason is not None:
            return f"{self.kind.value}:{self.reason.value}"
        if self.failure is not None:
            return f"{self.kind.value}:{self.failure.value}"
        return self.kind.value


class Route(str, enum.Enum):
    COSALIGN = "cosalign"  # a config-following model answered with the config in its system prompt
    CASCADE = "cascade"  # generate, judge, refuse on violation
    NONE = "none"  # no model was called (blocked at input, unknown deployment, ...)


@dataclass(frozen=True, slots=True)
class GuardResponse:
    """The result of `Guard.chat`: always a normal object, whatever happened."""

    text: str
    decision: Decision
    route: Route
    deployment_id: str
    config_hash: str
    model: str = ""
    categories: frozenset[str] = frozenset()
    verdict: Verdict | None = None
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    request_id: str = ""
    # The token counts the model that wrote the answer reported (None: no model answered, the call
    # streamed, or the backend reports none). They count the model's answer even when `text` is
    # the refusal that replaced it.
    usage: Usage | None = None
    # Whether the config's rules were reviewed and signed (False: derived from its text at load).
    rules_reviewed: bool = False

    @property
    def rule(self) -> dict[str, Any] | None:
        """The config rule that decided the call, `{"number", "text"}`, when a rule judge decided it."""
        return self.verdict.rule if self.verdict is not None else None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """Stream event: model text released to the caller (judged as the deployment's stream mode says)."""

    text: str


@dataclass(frozen=True, slots=True)
class FinalEvent:
    """Last stream event, always exactly one: the decision for the call.

    `response` is what `chat` would return. When the decision is not `allowed` the caller shows
    `response.text` (the deployment's refusal) instead of any text it was streamed;
    `cosa_guard.streaming.StreamFold` does that bookkeeping.
    """

    response: GuardResponse


StreamEvent = TextDelta | FinalEvent
