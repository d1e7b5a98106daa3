"""The primary route's circuit breaker, driven by a fake clock."""

from __future__ import annotations

from pathlib import Path

import pytest

from cosa_guard.backends.fake import ScriptedBackend
from cosa_guard.config import SafetyConfig
from cosa_guard.deployments import DeploymentRegistry
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.routing import BreakerState, CircuitBreaker, RoutePool
from cosa_guard.settings import BackendSpec, BreakerSpec
from cosa_guard.testing.deployments import write_signed_deployment

CONFIG = SafetyConfig(id="c", version=1, text="Violence in fiction is fine.", allow=("violence",))


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def breaker(**kw: float) -> tuple[CircuitBreaker, Clock, list[BreakerState]]:
    clock = Clock()
    changes: list[BreakerState] = []
    spec = BreakerSpec(failure_threshold=3, reset_after_s=10.0, **kw)  # type: ignore[arg-type]
    return CircuitBreaker.from_spec(spec, clock=clock, on_change=changes.append), clock, changes


def fail(b: CircuitBreaker, times: int) -> None:
    for _ in range(times):
        b.acquire()
        b.record_failure()


def test_opens_after_consecutive_failures_only() -> None:
    b, _, changes = breaker()
    for _ in range(2):
        assert b.acquire()
        b.record_failure()
    assert b.acquire()
    b.record_success()  # a success resets the count
    fail(b, 2)
    assert b.state is BreakerState.CLOSED
    fail(b, 1)
    assert b.state is BreakerState.OPEN and changes == [BreakerState.OPEN]
    assert not b.acquire()


def test_half_open_admits_one_probe_and_closes_on_success() -> None:
    b, clock, changes = breaker()
    fail(b, 3)
    clock.now = 9.9
    assert not b.acquire()
    clock.now = 10.0
    assert b.acquire()
    assert b.state is BreakerState.HALF_OPEN
    assert not b.acquire()  # a second caller while the probe is out goes to the fallback
    b.record_success()
    assert b.state is BreakerState.CLOSED and b.consecutive_failures == 0
    assert changes == [BreakerState.OPEN, BreakerState.HALF_OPEN, BreakerState.CLOSED]


def test_failed_probe_reopens_and_restarts_the_clock() -> None:
    b, clock, _ = breaker()
    fail(b, 3)
    clock.now = 10.0
    assert b.acquire()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    clock.now = 19.0
    assert not b.acquire()
    clock.now = 20.0
    assert b.acquire()


def test_abandoned_probe_lets_another_request_probe() -> None:
    b, clock, _ = breaker()
    fail(b, 3)
    clock.now = 10.0
    assert b.acquire()
    b.release()
    assert b.state is BreakerState.HALF_OPEN
    assert b.acquire()


def test_slow_calls_count_as_failures() -> None:
    b, _, _ = breaker(slow_call_s=1.0)
    for _ in range(3):
        b.acquire()
        b.record_success(duration_s=2.0)
    assert b.state is BreakerState.OPEN


def test_late_failure_while_open_does_not_extend_the_open_period() -> None:
    b, clock, _ = breaker()
    fail(b, 3)
    clock.now = 5.0
    b.record_failure()
    clock.now = 10.0
    assert b.acquire()


def test_rejects_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        CircuitBreaker(failure_threshold=0)
    with pytest.raises(ValueError):
        CircuitBreaker(reset_after_s=0)


async def test_route_pool_shares_equal_specs_and_closes_only_what_is_unused(tmp_path: Path) -> None:
    class Closable(ScriptedBackend):
        closed = False

        async def aclose(self) -> None:
            self.closed = True

    built: list[str] = []

    def backends(spec: BackendSpec, base: Path) -> Closable:
        built.append(spec.model)
        return Closable(name=spec.model)

    same = {"fallback": {"kind": "scripted", "model": "shared"}}
    write_signed_deployment(tmp_path, CONFIG, deployment_id="one", routes=same)
    path, _ = write_signed_deployment(tmp_path, CONFIG, deployment_id="two", routes=same)
    registry = DeploymentRegistry.load(path)
    pool = RoutePool(backends, lambda spec, base: ScriptedJudge(), lambda i, s: None)
    one, two = pool.build(registry.get("one")), pool.build(registry.get("two"))
    assert one.fallback is two.fallback and built == ["shared"]
    assert one.verifier is not None and two.verifier is not None
    assert one.verifier.cache is not two.verifier.cache  # caches stay per deployment
    assert one.system.role == "system" and one.primary is None and one.breaker is None

    shared = one.fallback
    assert isinstance(shared, Closable)
    await pool.close_unused([one])
    assert not shared.closed
    pool.borrowed.add(id(shared))
    await pool.close_unused([])
    assert not shared.closed and pool.backends == {}  # dropped from the pool, but the caller owns it


def test_route_pool_reports_breaker_changes_per_deployment(tmp_path: Path) -> None:
    path, _ = write_signed_deployment(
        tmp_path,
        CONFIG,
        deployment_id="one",
        routes={"primary": {"kind": "scripted", "model": "p"}},
        breaker={"failure_threshold": 1},
    )
    changes: list[tuple[str, BreakerState]] = []
    pool = RoutePool(
        lambda spec, base: ScriptedBackend(),
        lambda spec, base: ScriptedJudge(),
        lambda i, s: changes.append((i, s)),
    )
    routes = pool.build(DeploymentRegistry.load(path).get("one"))
    assert routes.breaker is not None and routes.verifier is None  # nothing judged on a primary-only route
    routes.breaker.acquire()
    routes.breaker.record_failure()
    assert changes == [("one", BreakerState.OPEN)]
