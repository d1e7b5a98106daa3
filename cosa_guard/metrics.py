"""Prometheus metrics for the guard, or nothing when prometheus_client is not installed.

prometheus_client comes with the `server` extra and is imported only when metrics are built, so
`import cosa_guard` stays light. Label children are cached, so one observation costs a dict
lookup plus the counter and histogram updates.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any, Protocol

from cosa_guard._optional import require
from cosa_guard.errors import MissingExtraError

logger = logging.getLogger("cosa_guard.metrics")

# prometheus_client's own switch: when set, every process writes its samples to files in that folder.
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LATENCY_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BREAKER_VALUES = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


STAGES = ("input", "generate", "judge")
_NO_TIMINGS: Mapping[str, float] = {}


class Metrics(Protocol):
    def observe(
        self,
        deployment: str,
        decision: str,
        route: str,
        latency_s: float,
        timings_ms: Mapping[str, float] = _NO_TIMINGS,
    ) -> None: ...

    def breaker_state(self, deployment: str, state: str) -> None: ...


class AuditMetrics(Protocol):
    """What an audit sink reports; `sink` is the audit file's name."""

    def audit_records(self, sink: str, outcome: str, count: int) -> None:
        """`outcome`: `written` or `dropped`."""
        ...

    def audit_write_error(self, sink: str) -> None: ...

    def audit_up(self, sink: str, up: bool) -> None: ...


class NoopMetrics:
    def observe(
        self,
        deployment: str,
        decision: str,
        route: str,
        latency_s: float,
        timings_ms: Mapping[str, float] = _NO_TIMINGS,
    ) -> None:
        pass

    def breaker_state(self, deployment: str, state: str) -> None:
        pass

    def audit_records(self, sink: str, outcome: str, count: int) -> None:
        pass

    def audit_write_error(self, sink: str) -> None:
        pass

    def audit_up(self, sink: str, up: bool) -> None:
        pass


class PrometheusMetrics:
    """Guard metrics on a prometheus_client registry.

    `cosa_guard_decisions_total{deployment,decision,route}`,
    `cosa_guard_request_seconds{deployment,route}`, `cosa_guard_stage_seconds{deployment,stage}`
    (time spent in the input guard, the model and the judge, for the calls that reached them) and
    `cosa_guard_breaker_state{deployment}` (0 closed, 1 half-open, 2 open); for the audit files,
    `cosa_guard_audit_records_total{sink,outcome}` (written, dropped),
    `cosa_guard_audit_write_errors_total{sink}` and `cosa_guard_audit_up{sink}` (1 writing, 0 failing).
    """

    def __init__(self, registry: Any = None, namespace: str = "cosa_guard") -> None:
        prom = require("prometheus_client", "server", "Prometheus metrics")
        kwargs: dict[str, Any] = {"namespace": namespace}
        if registry is not None:
            kwargs["registry"] = registry
        self.registry = registry if registry is not None else prom.REGISTRY
        self._decisions = prom.Counter(
            "decisions", "Guarded calls by decision and route", ["deployment", "decision", "route"], **kwargs
        )
        self._latency = prom.Histogram(
            "request_seconds",
            "Guarded call latency, end to end",
            ["deployment", "route"],
            buckets=LATENCY_BUCKETS,
            **kwargs,
        )
        self._stages = prom.Histogram(
            "stage_seconds",
            "Time per guarded call spent in the input guard, the model and the judge",
            ["deployment", "stage"],
            buckets=LATENCY_BUCKETS,
            **kwargs,
        )
        self._stage_children: dict[tuple[str, str], Any] = {}
        self._breaker = prom.Gauge(
            "breaker_state",
            "Primary route breaker: 0 closed, 1 half-open, 2 open",
            ["deployment"],
            multiprocess_mode="max",  # with several server workers: open if any worker's breaker is
            **kwargs,
        )
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}
        self._audit_records = prom.Counter(
            "audit_records", "Audit records by outcome (written, dropped)", ["sink", "outcome"], **kwargs
        )
        self._audit_errors = prom.Counter(
            "audit_write_errors", "Failed attempts to write the audit file", ["sink"], **kwargs
        )
        self._audit_up = prom.Gauge(
            "audit_up",
            "1 while the audit file is being written, 0 while writing it fails",
            ["sink"],
            multiprocess_mode="livemin",  # with several server workers: 0 if any live worker's audit fails
            **kwargs,
        )

    def observe(
        self,
        deployment: str,
        decision: str,
        route: str,
        latency_s: float,
        timings_ms: Mapping[str, float] = _NO_TIMINGS,
    ) -> None:
        key = (deployment, decision, route)
        children = self._children.get(key)
        if children is None:
            children = (
                self._decisions.labels(deployment, decision, route),
                self._latency.labels(deployment, route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(latency_s)
        for stage in STAGES:
            ms = timings_ms.get(stage, 0.0)
            if ms > 0.0:
                child = self._stage_children.get((deployment, stage))
                if child is None:
                    child = self._stage_children[(deployment, stage)] = self._stages.labels(deployment, stage)
                child.observe(ms / 1000.0)

    def breaker_state(self, deployment: str, state: str) -> None:
        self._breaker.labels(deployment).set(BREAKER_VALUES.get(state, -1.0))

    def audit_records(self, sink: str, outcome: str, count: int) -> None:
        self._audit_records.labels(sink, outcome).inc(count)

    def audit_write_error(self, sink: str) -> None:
        self._audit_errors.labels(sink).inc()

    def audit_up(self, sink: str, up: bool) -> None:
        self._audit_up.labels(sink).set(1.0 if up else 0.0)


_default: PrometheusMetrics | NoopMetrics | None = None


def default_metrics() -> PrometheusMetrics | NoopMetrics:
    """Process-wide metrics on prometheus_client's default registry (what `/metrics` serves), or no-ops.

    The one object serves as `Metrics` (the guard's) and `AuditMetrics` (the audit sinks').
    """
    global _default
    if _default is None:
        try:
            _default = PrometheusMetrics()
        except MissingExtraError:
            logger.info("prometheus_client is not installed; guard metrics are off")
            _default = NoopMetrics()
    return _default


def exposition() -> tuple[bytes, str]:
    """What `/metrics` answers (body, content type): this process's registry, or every worker's sums.

    With several server workers (`MULTIPROC_ENV` set) a scrape reaches one of them, so the answer
    is read from all workers' sample files rather than from this process alone.
    """
    prom = require("prometheus_client", "server", "the /metrics endpoint")
    registry = prom.REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        multiprocess = require("prometheus_client.multiprocess", "server", "the /metrics endpoint")
        registry = prom.CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    return prom.generate_latest(registry), prom.CONTENT_TYPE_LATEST
