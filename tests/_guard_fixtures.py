"""Shared builders for the guard's tests: real signed deployments, scripted backends and judges."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from cosa_guard.audit import MemoryAuditSink
from cosa_guard.backends.base import Backend
from cosa_guard.config import SafetyConfig
from cosa_guard.deployments import DeploymentRegistry
from cosa_guard.guard import Guard
from cosa_guard.injection.base import InputCheck
from cosa_guard.judges.base import Judge
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.metrics import NoopMetrics
from cosa_guard.settings import BackendSpec, InjectionSpec, JudgeSpec
from cosa_guard.testing.deployments import write_signed_deployment
from cosa_guard.types import Message

MARKER = "FORBIDDEN"  # a response containing it is judged to be about weapons, which the config disallows
REFUSAL = "Sorry, this service cannot help with that."
BOTH_ROUTES = {
    "primary": {"kind": "scripted", "model": "primary"},
    "fallback": {"kind": "scripted", "model": "fallback"},
}
CASCADE_ONLY = {"fallback": {"kind": "scripted", "model": "fallback"}}
PRIMARY_ONLY = {"primary": {"kind": "scripted", "model": "primary"}}


def config(version: int = 1, allow: Sequence[str] = ("violence",)) -> SafetyConfig:
    return SafetyConfig(
        id="game",
        version=version,
        text="Fictional violence is fine for this game studio. Nothing else is unlocked.",
        allow=tuple(allow),
        refusal=REFUSAL,
    )


def registry(
    tmp_path: Path, *, version: int = 1, routes: Mapping[str, Any] = CASCADE_ONLY, **spec: Any
) -> DeploymentRegistry:
    path, _ = write_signed_deployment(tmp_path, config(version), routes=dict(routes), **spec)
    return DeploymentRegistry.load(path)


class PassInputGuard:
    """An input guard that lets everything through and remembers what it saw."""

    def __init__(self) -> None:
        self.seen: list[tuple[Message, ...]] = []

    async def check(self, messages: Sequence[Message], spec: InjectionSpec) -> InputCheck:
        self.seen.append(tuple(messages))
        return InputCheck(tuple(messages))


def by_model(backends: Mapping[str, Backend]) -> Callable[[BackendSpec, Path], Backend]:
    """A backend factory that hands out the scripted backend named by each spec's `model`."""

    def factory(spec: BackendSpec, base_dir: Path) -> Backend:
        return backends[spec.model]

    return factory


def guard_over(
    reg: DeploymentRegistry,
    backends: Mapping[str, Backend] | Callable[[BackendSpec, Path], Backend],
    *,
    judge: Judge | None = None,
    sink: Any = None,
    input_guard: Any = None,
    metrics: Any = None,
) -> Guard:
    """A Guard over `reg` with scripted parts: backends by spec `model`, a marker-flagging judge."""
    the_judge = judge if judge is not None else ScriptedJudge(flags={MARKER: "weapons"})

    def judges(spec: JudgeSpec, base_dir: Path) -> Judge:
        return the_judge

    return Guard(
        reg,
        backend_factory=backends if callable(backends) else by_model(backends),
        judge_factory=judges,
        input_guard=input_guard if input_guard is not None else PassInputGuard(),
        audit=sink if sink is not None else MemoryAuditSink(),
        metrics=metrics if metrics is not None else NoopMetrics(),
    )


def make_guard(
    tmp_path: Path,
    backends: Mapping[str, Backend],
    *,
    judge: Judge | None = None,
    routes: Mapping[str, Any] = CASCADE_ONLY,
    sink: Any = None,
    input_guard: Any = None,
    **spec: Any,
) -> Guard:
    """A signed deployment `game` in `tmp_path` (spec fields as keywords) served by `guard_over`."""
    reg = registry(tmp_path, routes=routes, **spec)
    return guard_over(reg, backends, judge=judge, sink=sink, input_guard=input_guard)


USER = [{"role": "user", "content": "Describe the final battle of my game."}]
