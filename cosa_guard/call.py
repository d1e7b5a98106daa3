"""One guarded call in flight: what the pipeline learns as it runs, and the response and record it ends as.

The pipeline (`cosa_guard.pipeline`) fills a `Call` stage by stage; `response()` is what the
caller gets and `audit_record()` what the deployment's audit log keeps. Both read the same
fields, so the caller and the auditor always see one outcome.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from cosa_guard.audit import AuditRecord
from cosa_guard.injection.base import Finding
from cosa_guard.prompts import with_instructions
from cosa_guard.routing import Routes
from cosa_guard.tracing import Span, Stage, start_span
from cosa_guard.types import Decision, FailureKind, GuardResponse, Message, Route, Usage, Verdict

__all__ = ["Call"]


@dataclass(slots=True)
class Call:
    rt: Routes
    request_id: str
    received: tuple[Message, ...]  # the client's messages, for the audit record
    stream: bool
    started: float = field(default_factory=time.perf_counter)
    stage: str = "input"
    route: Route = Route.NONE
    model: str = ""
    text: str = ""  # the model's answer, before any judging
    verdict: Verdict | None = None
    decision: Decision | None = None  # set once, by the pipeline, when the call is decided
    timings: dict[str, float] = field(default_factory=lambda: {"input": 0.0, "generate": 0.0, "judge": 0.0})
    findings: tuple[Finding, ...] = ()
    input_score: float | None = None
    notes: list[str] = field(default_factory=list)
    instructions: str = ""  # the application's instructions, rendered below the config
    breaker_pending: bool = False  # the primary was admitted and its outcome is not recorded yet
    cancelled: bool = False
    usage: Usage | None = None  # what the model that produced `text` reported, when it did
    span: Span | None = None  # the call's span: OpenTelemetry's and an observer's, when there are

    def model_messages(self, messages: tuple[Message, ...]) -> tuple[Message, ...]:
        """What a model is sent: the one system message (config, then app instructions), then the turns."""
        system = self.rt.system
        if self.instructions:
            system = Message("system", with_instructions(system.content, self.instructions))
        return (system, *messages)

    def begin_span(self, name: str) -> None:
        deployment = self.rt.deployment
        self.span = start_span(
            name,
            attributes={
                "cosa_guard.deployment": deployment.id,
                "cosa_guard.config_hash": deployment.config_hash,
                "cosa_guard.request_id": self.request_id,
            },
        )

    def enter(self, stage: str, route: Route, model: str) -> None:
        """A backend starts answering: from here on a failure is this route's."""
        self.stage, self.route, self.model, self.text = stage, route, model, ""

    def lap(self, stage: str, since: float) -> None:
        self.timings[stage] = self.timings.get(stage, 0.0) + (time.perf_counter() - since) * 1000.0

    @contextmanager
    def step(self, stage: str, span_name: str) -> Iterator[None]:
        """One step of the call: a child span named `span_name`, its time added to `stage`, also on errors."""
        started = time.perf_counter()
        try:
            with Stage(self.span, span_name):
                yield
        finally:
            self.lap(stage, started)

    def response(self) -> GuardResponse:
        decision = self.decision or Decision.failed(FailureKind.BACKEND, "no decision was reached")
        self.timings["total"] = (time.perf_counter() - self.started) * 1000.0
        return GuardResponse(
            text=self.text if decision.is_allowed else self.rt.deployment.refusal_text,
            decision=decision,
            route=self.route,
            deployment_id=self.rt.deployment.id,
            config_hash=self.rt.deployment.config_hash,
            model=self.model,
            categories=self.verdict.categories if self.verdict is not None else frozenset(),
            verdict=self.verdict,
            timings_ms=dict(self.timings),
            request_id=self.request_id,
            usage=self.usage,
            # Signed rules are the reviewed ones (`rules.config_rules`); nothing to derive per call.
            rules_reviewed=bool(self.rt.deployment.config.rules),
        )

    def audit_record(self, label: str, elapsed: float) -> AuditRecord:
        rt = self.rt
        include_text = rt.deployment.spec.audit.include_text
        decision = self.decision
        return AuditRecord(
            ts=time.time(),
            request_id=self.request_id,
            deployment=rt.deployment.id,
            config_hash=rt.deployment.config_hash,
            decision=label,
            route=self.route.value,
            latency_ms=elapsed * 1000.0,
            categories=tuple(sorted(self.verdict.categories)) if self.verdict is not None else (),
            score=self.verdict.score if self.verdict is not None else None,
            rule=self.verdict.rule if self.verdict is not None else None,
            rules_reviewed=bool(rt.deployment.config.rules),
            model=self.model,
            fail_open=decision.fail_open if decision is not None else False,
            stream=self.stream,
            detail=decision.detail if decision is not None else "",
            input_score=self.input_score,
            input_findings=tuple(_finding(f) for f in self.findings),
            notes=tuple(self.notes),
            timings_ms=dict(self.timings),
            prompt_sha256=_digest(*(part for m in self.received for part in (m.role, m.content))),
            response_sha256=_digest(self.text) if self.text else "",
            prompt=[m.to_dict() for m in self.received] if include_text else None,
            response=self.text if include_text else None,
        )


def _digest(*texts: str) -> str:
    """sha256 over the texts, each followed by a separator that cannot occur in UTF-8 (0xFF)."""
    h = hashlib.sha256()
    for text in texts:
        h.update(text.encode("utf-8", "surrogatepass"))
        h.update(b"\xff")
    return h.hexdigest()


def _finding(finding: Finding) -> Mapping[str, Any]:
    return {
        "detector": finding.detector,
        "reason": finding.reason,
        "message_index": finding.message_index,
        "span": list(finding.span) if finding.span is not None else None,
        "score": finding.score,
    }
