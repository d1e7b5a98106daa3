"""Audit sinks: JSON lines written off the event loop, drained on close."""

from __future__ import annotations

import errno
import json
import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from cosa_guard.audit import AuditRecord, AuditSink, JsonlAuditSink, MemoryAuditSink
from cosa_guard.metrics import PrometheusMetrics


def record(i: int, **kw: object) -> AuditRecord:
    return AuditRecord(
        ts=1.0,
        request_id=f"r{i}",
        deployment="game",
        config_hash="sha256:ab",
        decision="allowed",
        route="cascade",
        latency_ms=1.5,
        **kw,  # type: ignore[arg-type]
    )


def test_sinks_satisfy_the_protocol(tmp_path: Path) -> None:
    sink = JsonlAuditSink(tmp_path / "a.jsonl")
    assert isinstance(sink, AuditSink) and isinstance(MemoryAuditSink(), AuditSink)
    sink.close()


def test_jsonl_writes_one_line_per_record_and_close_drains(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "audit.jsonl"
    sink = JsonlAuditSink(path, batch=7)
    for i in range(100):
        sink.emit(record(i, categories=("weapons",), timings_ms={"total": 2.0}))
    sink.close()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [x["request_id"] for x in lines] == [f"r{i}" for i in range(100)]
    assert lines[0]["categories"] == ["weapons"] and lines[0]["timings_ms"] == {"total": 2.0}
    assert "prompt" not in lines[0] and "response" not in lines[0]


def test_flush_makes_records_visible_without_closing(tmp_path: Path) -> None:
    sink = JsonlAuditSink(tmp_path / "a.jsonl")
    sink.emit(record(1, prompt=[{"role": "user", "content": "héllo"}], response="ok"))
    sink.flush()
    line = json.loads((tmp_path / "a.jsonl").read_text(encoding="utf-8"))
    assert line["prompt"] == [{"role": "user", "content": "héllo"}] and line["response"] == "ok"
    sink.close()


def test_a_lone_surrogate_in_a_kept_prompt_neither_stops_the_writer_nor_breaks_json(tmp_path: Path) -> None:
    sink = JsonlAuditSink(tmp_path / "a.jsonl")
    sink.emit(record(1, prompt=[{"role": "user", "content": "hi \ud800"}]))
    sink.emit(record(2))
    sink.close()
    lines = [json.loads(line) for line in (tmp_path / "a.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [x["request_id"] for x in lines] == ["r1", "r2"]  # the next client's record is kept too
    assert lines[0]["prompt"][0]["content"] == "hi \ud800"


def test_appends_across_sinks(tmp_path: Path) -> None:
    for i in range(2):
        sink = JsonlAuditSink(tmp_path / "a.jsonl")
        sink.emit(record(i))
        sink.close()
    assert len((tmp_path / "a.jsonl").read_text().splitlines()) == 2


def test_emit_after_close_is_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    sink = JsonlAuditSink(tmp_path / "a.jsonl")
    sink.close()
    sink.close()  # idempotent
    with caplog.at_level(logging.ERROR, logger="cosa_guard.audit"):
        sink.emit(record(1))
    assert sink.dropped == 1 and "dropped" in caplog.text


# --- The writer never dies silently -------------------------------------------------------------------


def _eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    """Wait for the writer thread to get somewhere (it runs on its own clock)."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the audit writer never got there"
        time.sleep(0.005)


def _metrics() -> tuple[PrometheusMetrics, Callable[[str, dict[str, str]], float | None]]:
    prom = pytest.importorskip("prometheus_client")
    registry = prom.CollectorRegistry()
    return PrometheusMetrics(registry=registry), registry.get_sample_value


class _FullDisk:
    """`os` as the sink sees it, with a disk that fills up after `room` bytes until `free()`."""

    def __init__(self, room: int) -> None:
        self.room = room
        self.full_errors = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(os, name)

    def write(self, fd: int, data: bytes) -> int:
        if self.room <= 0:
            self.full_errors += 1
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        taken = min(self.room, len(data))  # the OS writes what fits, stopping inside a record
        self.room -= taken
        return os.write(fd, data[:taken])

    def free(self) -> None:
        self.room = 1 << 40


def test_a_full_disk_loses_nothing_and_is_reported_until_it_recovers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import cosa_guard.audit as audit_module

    disk = _FullDisk(room=1000)
    monkeypatch.setattr(audit_module, "os", disk)
    metrics, sample = _metrics()
    path = tmp_path / "a.jsonl"
    with caplog.at_level(logging.WARNING, logger="cosa_guard.audit"):
        sink = JsonlAuditSink(path, batch=7, retry_s=0.01, metrics=metrics)
        for i in range(600):
            sink.emit(record(i))
        _eventually(lambda: disk.full_errors >= 2)
        health = sink.health()
        assert not health.ok and health.error == "No space left on device" and health.write_errors >= 1
        assert sample("cosa_guard_audit_up", {"sink": "a.jsonl"}) == 0.0
        assert (sample("cosa_guard_audit_write_errors_total", {"sink": "a.jsonl"}) or 0) >= 1
        disk.free()
        assert sink.flush()
    sink.close()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [x["request_id"] for x in lines] == [f"r{i}" for i in range(600)]  # every one, once, in order
    assert sink.health().ok and sink.health().dropped == 0
    assert sample("cosa_guard_audit_up", {"sink": "a.jsonl"}) == 1.0
    assert sample("cosa_guard_audit_records_total", {"sink": "a.jsonl", "outcome": "written"}) == 600
    assert caplog.text.count("cannot write the audit file") == 1 and "written again" in caplog.text


def test_an_audit_path_that_is_a_directory_is_reported_and_the_backlog_is_bounded(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "audit"
    path.mkdir()
    metrics, sample = _metrics()
    with caplog.at_level(logging.ERROR, logger="cosa_guard.audit"):
        sink = JsonlAuditSink(path, retry_s=0.01, max_backlog=10, metrics=metrics)
        for i in range(25):
            sink.emit(record(i))
        _eventually(lambda: sink.health().write_errors > 0)
    health = sink.health()
    assert not health.ok and health.error == "Is a directory"
    assert health.dropped == 15 and health.backlog == 10  # new records are dropped once the backlog is full
    assert sample("cosa_guard_audit_records_total", {"sink": "audit", "outcome": "dropped"}) == 15
    assert "cannot write the audit file" in caplog.text and "backlog of 10 records is full" in caplog.text
    path.rmdir()  # the operator fixes it: the kept records are written
    assert sink.flush()
    sink.close()
    kept = [json.loads(x)["request_id"] for x in path.read_text().splitlines()]
    assert kept == [f"r{i}" for i in range(10)]
