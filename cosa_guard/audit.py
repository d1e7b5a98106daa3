"""Audit records: one JSON line per guarded call, written off the event loop.

`AuditSink.emit` is synchronous and never blocks: the guard calls it from a `finally` block, so a
record is written even when the caller disconnects or cancels the call. `JsonlAuditSink` hands
records to a writer thread that serialises and appends them in batches; `close()` drains it.
Raw prompt and response text is recorded only when the deployment opts in (`audit.include_text`).
"""

from __future__ import annotations

import json
import logging
import queue
import threading
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
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
    input_findings: tuple[Mapping[str, Any], ...] = ()
    notes: tuple[str, ...] = ()  # what the privilege rule and the input guard did to the request
    timings_ms: Mapping[str, float] = field(default_factory=dict)
    prompt_sha256: str = ""  # digests let an auditor match records to logs without storing text
    response_sha256: str = ""
    prompt: list[dict[str, str]] | None = None
    response: str | None = None

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.prompt is None:
            del data["prompt"]
        if self.response is None:
            del data["response"]
        return data


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


_STOP = object()


class JsonlAuditSink:
    """Appends records as JSON lines to `path` from a background thread, flushing after every batch."""

    def __init__(self, path: str | Path, *, batch: int = 256) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._batch = batch
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
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
        self._queue.put(record)

    def flush(self, timeout: float = 5.0) -> None:
        """Block until every record emitted so far is on disk (tests and shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()

    def _run(self) -> None:
        with self.path.open("a", encoding="utf-8") as fh:
            while True:
                items = [self._queue.get()]
                while len(items) < self._batch:
                    try:
                        items.append(self._queue.get_nowait())
                    except queue.Empty:
                        break
                stop = self._write(fh, items)
                if stop:
                    return

    def _write(self, fh: Any, items: list[object]) -> bool:
        lines = []
        waiters = []
        stop = False
        for item in items:
            if isinstance(item, AuditRecord):
                try:
                    lines.append(json.dumps(item.to_dict(), ensure_ascii=False, default=str))
                except (TypeError, ValueError):
                    self.dropped += 1
                    logger.exception("audit record %s could not be serialised", item.request_id)
            elif isinstance(item, threading.Event):
                waiters.append(item)
            elif item is _STOP:
                stop = True
        try:
            if lines:
                fh.write("\n".join(lines) + "\n")
                fh.flush()
        except OSError:
            self.dropped += len(lines)
            logger.exception("could not write %d audit records to %s", len(lines), self.path)
        for waiter in waiters:
            waiter.set()
        return stop
