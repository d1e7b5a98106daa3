"""Audit records: one JSON line per guarded call, written off the event loop.

`AuditSink.emit` is synchronous and never blocks: the guard calls it from a `finally` block, so a
record is written even when the caller disconnects or cancels the call. `JsonlAuditSink` hands
records to a writer thread that appends them in batches (at most `interval_s` after they were
emitted); `close()` drains it. A failing file (full disk, a directory, no permission) never stops
the writer: it keeps what it could not write, retries, and says so through `health()`, the log
and the metrics; what does not fit its bounded backlog is dropped and counted (docs/guard.md).
Raw prompt and response text is recorded only when the deployment opts in (`audit.include_text`).
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import json
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from cosa_guard.metrics import AuditMetrics, default_metrics

logger = logging.getLogger("cosa_guard.audit")


@dataclass(slots=True)
class AuditRecord:
    """What is known about one call when it ends. `decision` is a `Decision.label` or `cancelled`."""

    ts: float
    request_id: str
    deployment: str
    config_hash: str
    decision: str
    route: str
    latency_ms: float
    categories: tuple[str, ...] = ()
    score: float | None = None
    # The config rule that decided the call ({number, text}: signed config text, never the prompt's)
    # and whether the config's rules were reviewed (False: derived from its text at load).
    rule: Mapping[str, Any] | None = None
    rules_reviewed: bool = False
    model: str = ""
    fail_open: bool = False
    stream: bool = False
    detail: str = ""
    input_score: float | None = None  # the input guard's attack score, when it ran
    input_findings: tuple[Mapping[str, Any], ...] = ()
    notes: tuple[str, ...] = ()  # what the privilege rule and the input guard did to the request
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    prompt_sha256: str = ""  # digests let an auditor match records to logs without storing text
    response_sha256: str = ""
    prompt: list[dict[str, str]] | None = None
    response: str | None = None

    def to_dict(self) -> dict[str, Any]:
        # Shallow on purpose: every field is JSON-ready, and dataclasses.asdict's deep copy costs
        # more than the rest of the record on the hot path.
        data = {name: getattr(self, name) for name in _FIELDS}
        if self.prompt is None:
            del data["prompt"]
        if self.response is None:
            del data["response"]
        return data


_FIELDS = tuple(f.name for f in fields(AuditRecord))
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)  # built once: json.dumps builds one per call

DEFAULT_MAX_BACKLOG = 100_000


@dataclass(frozen=True, slots=True)
class AuditHealth:
    """How an audit sink is doing: what /healthz and `Guard.audit_health()` report."""

    sink: str  # the audit file's name
    ok: bool  # False while writing fails (or the writer stopped)
    written: int
    dropped: int  # records lost: the backlog was full, the sink was closed, or closing could not write them
    write_errors: int  # failed attempts to open or write the file
    backlog: int  # records accepted and not yet on disk
    error: str = ""  # the last failure, e.g. "No space left on device"


def sink_health(sink: AuditSink) -> AuditHealth | None:
    """`sink.health()`, for sinks that report it (JsonlAuditSink does); None for others."""
    health = getattr(sink, "health", None)
    return health() if callable(health) else None


@runtime_checkable
class AuditSink(Protocol):
    def emit(self, record: AuditRecord) -> None:
        """Accept a record without blocking or raising."""
        ...

    def close(self) -> None:
        """Write everything accepted so far and release the sink."""
        ...


class MemoryAuditSink:
    """Keeps records in a list: for tests."""

    def __init__(self) -> None:
        self.records: list[AuditRecord] = []

    def emit(self, record: AuditRecord) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass


class JsonlAuditSink:
    """Appends records as JSON lines to `path` from a background thread.

    `emit` serialises the record (a few microseconds in C) and appends the line to a deque: it
    neither locks nor wakes the writer, so the writer thread never competes with the event loop
    for the GIL except to hand lines to the OS. The writer wakes every `interval_s`, or at once
    when `batch` lines are waiting, and appends what it finds with `os.write` on an O_APPEND file.

    Failures: text UTF-8 cannot carry (a lone surrogate) is written as its JSON escape; a write that
    fails or stops short keeps the unwritten bytes and is retried (after `retry_s`), so a full disk loses
    nothing until the backlog reaches `max_backlog` records. From then on each new record is
    dropped and counted (the oldest are kept: they are the ones an auditor will look for first).
    `health()`, the log (once per outage, and when writing resumes) and `metrics` say so.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        batch: int = 512,
        interval_s: float = 0.05,
        retry_s: float = 1.0,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
        metrics: AuditMetrics | None = None,
    ) -> None:
        self.path = Path(path)
        self._name = self.path.name
        self._batch = batch
        self._interval_s = interval_s
        self._retry_s = max(retry_s, interval_s)
        self._max_backlog = max_backlog
        self._metrics = metrics if metrics is not None else default_metrics()
        self._pending: collections.deque[str] = collections.deque()
        self._unwritten: collections.deque[bytes] = collections.deque()  # encoded, not yet on disk
        self._wake = threading.Event()
        self._written_cv = threading.Condition()
        self._fd: int | None = None
        self._emitted = 0
        self._done = 0  # records written or dropped by the writer
        self._closed = False
        self.written = 0
        self.dropped = 0
        self.write_errors = 0
        self._error = ""
        self._failing = False
        self._drops_logged = False
        self._metrics.audit_up(self._name, True)
        try:  # at once, so that a path that cannot be written shows before the first record
            self._open()
        except OSError as exc:
            self._failed(exc)
        self._thread = threading.Thread(target=self._run, name=f"cosa-guard-audit:{self._name}", daemon=True)
        self._thread.start()

    def emit(self, record: AuditRecord) -> None:
        if self._closed:
            self._drop(1, f"audit sink {self.path} is closed; record {record.request_id} dropped")
            return
        if len(self._pending) + len(self._unwritten) >= self._max_backlog:
            self._drop(1, f"audit backlog of {self._max_backlog} records is full; new records are dropped")
            return
        try:
            line = _ENCODER.encode(record.to_dict())
        except (TypeError, ValueError, RecursionError):
            self._drop(1, f"audit record {record.request_id} could not be serialised")
            return
        self._pending.append(line)
        self._emitted += 1
        if len(self._pending) >= self._batch:
            self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every record emitted so far is on disk (or dropped); False after `timeout`."""
        target = self._emitted
        self._wake.set()
        with self._written_cv:
            return self._written_cv.wait_for(
                lambda: self._done >= target or not self._thread.is_alive(), timeout
            )

    def health(self) -> AuditHealth:
        alive = self._thread.is_alive() or self._closed
        return AuditHealth(
            sink=self._name,
            ok=alive and not self._failing,
            written=self.written,
            dropped=self.dropped,
            write_errors=self.write_errors,
            backlog=len(self._pending) + len(self._unwritten),
            error=self._error if self._failing else ("" if alive else "the writer thread stopped"),
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()

    def _drop(self, count: int, why: str) -> None:
        self.dropped += count
        self._metrics.audit_records(self._name, "dropped", count)
        if not (self._failing and self._drops_logged):  # once per outage, not once per request
            self._drops_logged = self._failing
            logger.error("%s (%d dropped so far)", why, self.dropped)

    def _run(self) -> None:
        while True:
            self._wake.wait(self._retry_s if self._failing else self._interval_s)
            self._wake.clear()
            stopping = self._closed
            try:
                self._write()
                if stopping:
                    self._write()  # anything emitted while the flag was being read
            except Exception as exc:  # a writer that dies would lose every later record unnoticed
                self._failed(exc)
            if stopping:
                self._give_up()
                return

    def _write(self) -> None:
        while self._pending:
            # A lone surrogate (a client's, kept with `include_text`) is not UTF-8: written as a
            # backslash escape it is the JSON escape for the same character.
            self._unwritten.append((self._pending.popleft() + "\n").encode("utf-8", "backslashreplace"))
        try:
            self._append()
        finally:
            self._settle()

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        return self._fd

    def _append(self) -> None:
        """Write the backlog (with none, only open the file: has it recovered?); OSError on failure."""
        fd = self._open()
        while self._unwritten:
            blob = b"".join(itertools.islice(self._unwritten, self._batch))
            self._consume(os.write(fd, blob))
        if self._failing:
            logger.warning(
                "audit file %s is written again (after %d failed attempts; %d records dropped)",
                self.path,
                self.write_errors,
                self.dropped,
            )
        self._failing = False
        self._metrics.audit_up(self._name, True)

    def _consume(self, sent: int) -> None:
        """Remove the `sent` bytes that reached the file from the front of the backlog."""
        records = 0
        while sent and self._unwritten:
            head = self._unwritten[0]
            if sent >= len(head):
                self._unwritten.popleft()
                sent -= len(head)
                records += 1
            else:
                self._unwritten[0] = head[sent:]  # the rest of a record the OS took only part of
                sent = 0
        if records:
            self.written += records
            self._metrics.audit_records(self._name, "written", records)

    def _settle(self) -> None:
        with self._written_cv:
            self._done = self._emitted - len(self._pending) - len(self._unwritten)
            self._written_cv.notify_all()

    def _failed(self, exc: Exception) -> None:
        self.write_errors += 1
        self._metrics.audit_write_error(self._name)
        self._error = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
        if self._fd is not None:  # reopen next time: the file may have been replaced or fixed
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None
        if not self._failing:
            self._failing = True
            self._drops_logged = False
            self._metrics.audit_up(self._name, False)
            logger.error(
                "cannot write the audit file %s (%s); keeping up to %d records and retrying every %gs",
                self.path,
                self._error,
                self._max_backlog,
                self._retry_s,
                exc_info=not isinstance(exc, OSError),
            )

    def _give_up(self) -> None:
        """At close: what could not be written is lost; say how much."""
        lost = len(self._pending) + len(self._unwritten)
        self._pending.clear()
        self._unwritten.clear()
        if lost:
            self._drop(lost, f"closing {self.path} with {lost} records that could not be written")
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._settle()
