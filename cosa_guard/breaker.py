"""The circuit breaker that decides whether a deployment's primary route may take a call:

    CLOSED ──N consecutive failures (or slow calls)──► OPEN ──reset_after_s──► HALF_OPEN
      ▲                                                 ▲                        │ one probe
      └──────────────── probe succeeds ─────────────────┴──── probe fails ───────┘

While the breaker is not closed, the guard sends traffic to the cascade (or fails fast when the
deployment has none). Everything runs on one event loop and no method awaits, so the state needs
no lock.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable

from cosa_guard.settings import BreakerSpec


class BreakerState(str, enum.Enum):
    CLOSED = "closed"
    HALF_OPEN = "half_open"
    OPEN = "open"


class CircuitBreaker:
    """Counts consecutive primary failures; opens after `failure_threshold`, probes after `reset_after_s`.

    `acquire()` asks for permission before each primary call; the caller then reports exactly one
    of `record_success`, `record_failure` or `release` (the call was abandoned, for example
    because the client went away, which says nothing about the primary's health).
    """

    __slots__ = (
        "_clock",
        "_failures",
        "_on_change",
        "_opened_at",
        "_probing",
        "_state",
        "failure_threshold",
        "reset_after_s",
        "slow_call_s",
    )

    def __init__(
        self,
        failure_threshold: int = 5,
        reset_after_s: float = 30.0,
        slow_call_s: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_after_s <= 0:
            raise ValueError("reset_after_s must be positive")
        self.failure_threshold = failure_threshold
        self.reset_after_s = reset_after_s
        self.slow_call_s = slow_call_s
        self._clock = clock
        self._on_change = on_change
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @classmethod
    def from_spec(
        cls,
        spec: BreakerSpec,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_change: Callable[[BreakerState], None] | None = None,
    ) -> CircuitBreaker:
        return cls(
            spec.failure_threshold, spec.reset_after_s, spec.slow_call_s, clock=clock, on_change=on_change
        )

    @property
    def state(self) -> BreakerState:
        return self._state

    @property
    def consecutive_failures(self) -> int:
        return self._failures

    def acquire(self) -> bool:
        """May this call use the primary? In HALF_OPEN only one probe at a time gets a yes."""
        if self._state is BreakerState.CLOSED:
            return True
        if self._state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self.reset_after_s:
                return False
            self._set(BreakerState.HALF_OPEN)
        if self._probing:
            return False
        self._probing = True
        return True

    def record_success(self, duration_s: float | None = None) -> None:
        """The primary answered. A call slower than `slow_call_s` counts as a failure."""
        if self.slow_call_s is not None and duration_s is not None and duration_s > self.slow_call_s:
            self.record_failure()
            return
        self._failures = 0
        self._probing = False
        if self._state is not BreakerState.CLOSED:
            self._set(BreakerState.CLOSED)

    def record_failure(self) -> None:
        if self._state is BreakerState.HALF_OPEN:
            self._trip()
            return
        if self._state is BreakerState.OPEN:
            return  # a late failure of a call admitted before the trip; the clock keeps running
        self._failures += 1
        if self._failures >= self.failure_threshold:
            self._trip()

    def release(self) -> None:
        """The admitted call was abandoned without an outcome: let another request probe."""
        self._probing = False

    def _trip(self) -> None:
        self._probing = False
        self._opened_at = self._clock()
        self._set(BreakerState.OPEN)

    def _set(self, state: BreakerState) -> None:
        self._state = state
        if state is BreakerState.CLOSED:
            self._failures = 0
        if self._on_change is not None:
            self._on_change(state)
