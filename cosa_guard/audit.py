"""Audit records: one JSON line per guarded call, written off the event loop.

`AuditSink.emit` is synchronous and never blocks: the guard calls it from a `finally` block, so a
record is written even when the caller disconnects or cancels the call. `JsonlAuditSink` hands
records to a writer thread that serialises and appends them in batches (at most `interval_s`
after they were emitted); `close()` drains it.
Raw prompt and response text is recorded only when the deployment opts in (`audit.include_text`).
"""

from __future__ import annotations

import collections
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

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
    when `batch` lines are waiting, and writes and flushes what it finds. `flush()` and `close()`
    write everything emitted so far before they return.
    """

    def __init__(self, path: str | Path, *, batch: int = 512, interval_s: float = 0.05) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._batch = batch
        self._interval_s = interval_s
        self._pending: collections.deque[str] = collections.deque()
        self._wake = threading.Event()
        self._written = threading.Condition()
        self._emitted = 0
        self._done = 0
        self._closed = False
        self.dropped = 0
        self._thread = threading.Thread(
            target=self._run, name=f"cosa-guard-audit:{self.path.name}", daemon=True
        )
        self._thread.start()

    def emit(self, record: AuditRecord) -> None:
        if self._closed:
            self.dropped += 1
            logger.error("audit sink %s is closed; record %s dropped", self.path, record.request_id)
            return
        try:
            line = _ENCODER.encode(record.to_dict())
        except (TypeError, ValueError):
            self.dropped += 1
            logger.exception("audit record %s could not be serialised", record.request_id)
            return
        self._pending.append(line)
        self._emitted += 1
        if len(self._pending) >= self._batch:
            self._wake.set()

    def flush(self, timeout: float = 5.0) -> bool:
        """Block until every record emitted so far is on disk; False if that took longer than `timeout`."""
        target = self._emitted
        self._wake.set()
        with self._written:
            return self._written.wait_for(
                lambda: self._done >= target or not self._thread.is_alive(), timeout
            )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        self._thread.join()

    def _run(self) -> None:
        # A lone surrogate (sent by a client, kept with `include_text`) is not UTF-8: written as a
        # backslash escape it is the JSON escape for the same character, where a strict encoder
        # would kill this thread and every record after it.
        with self.path.open("a", encoding="utf-8", errors="backslashreplace") as fh:
            while True:
                self._wake.wait(self._interval_s)
                self._wake.clear()
                stopping = self._closed
                self._write(fh)
                if stopping:
                    self._write(fh)  # anything emitted while the flag was being read
                    return

    def _write(self, fh: Any) -> None:
        lines = []
        while self._pending:
            lines.append(self._pending.popleft())
        try:
            if lines:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
        except OSError:
            self.dropped += len(lines)
            logger.exception("could not write %d audit records to %s", len(lines), self.path)
        with self._written:
            self._done += len(lines)
            self._written.notify_all()
