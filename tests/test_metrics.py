"""Prometheus metrics on a private registry; no-ops without prometheus-client."""

from __future__ import annotations

import pytest

from cosa_guard import metrics as metrics_module
from cosa_guard.errors import MissingExtraError
from cosa_guard.metrics import NoopMetrics, PrometheusMetrics, default_metrics

prometheus_client = pytest.importorskip("prometheus_client")


def test_counts_decisions_and_latency_per_label() -> None:
    registry = prometheus_client.CollectorRegistry()
    m = PrometheusMetrics(registry)
    m.observe("game", "allowed", "cascade", 0.002)
    m.observe("game", "allowed", "cascade", 0.004)
    m.observe(
        "game", "refused:output_violation", "cascade", 0.5, {"input": 0.0, "generate": 3.0, "judge": 40.0}
    )
    labels = {"deployment": "game", "decision": "allowed", "route": "cascade"}
    assert registry.get_sample_value("cosa_guard_decisions_total", labels) == 2
    latency = {"deployment": "game", "route": "cascade"}
    assert registry.get_sample_value("cosa_guard_request_seconds_count", latency) == 3
    assert registry.get_sample_value("cosa_guard_request_seconds_bucket", {**latency, "le": "0.005"}) == 2
    stage = {"deployment": "game", "stage": "judge"}
    assert registry.get_sample_value("cosa_guard_stage_seconds_sum", stage) == pytest.approx(0.04)
    assert registry.get_sample_value("cosa_guard_stage_seconds_count", {**stage, "stage": "input"}) is None


def test_breaker_gauge() -> None:
    registry = prometheus_client.CollectorRegistry()
    m = PrometheusMetrics(registry)
    m.breaker_state("game", "open")
    assert registry.get_sample_value("cosa_guard_breaker_state", {"deployment": "game"}) == 2.0
    m.breaker_state("game", "closed")
    assert registry.get_sample_value("cosa_guard_breaker_state", {"deployment": "game"}) == 0.0


def test_default_is_a_process_singleton_and_falls_back_to_noop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics_module, "_default", None)

    def missing(*args: object, **kw: object) -> object:
        raise MissingExtraError("prometheus_client", "server")

    monkeypatch.setattr(metrics_module, "PrometheusMetrics", missing)
    noop = default_metrics()
    assert isinstance(noop, NoopMetrics) and default_metrics() is noop
