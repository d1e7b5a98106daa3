"""The circuit breaker: opens on consecutive failures, probes once, closes on success."""

from __future__ import annotations

import pytest

from cosa_guard.breaker import BreakerState, CircuitBreaker
from cosa_guard.settings import BreakerSpec


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


def reset_due() -> tuple[CircuitBreaker, Clock]:
    """A breaker tripped open whose reset period has just run out: the next caller probes."""
    b, clock, _ = breaker()
    fail(b, 3)
    clock.now = 10.0
    return b, clock


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
    b, clock = reset_due()
    assert b.acquire()
    b.record_failure()
    assert b.state is BreakerState.OPEN
    clock.now = 19.0
    assert not b.acquire()
    clock.now = 20.0
    assert b.acquire()


def test_abandoned_probe_lets_another_request_probe() -> None:
    b, _ = reset_due()
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
