"""Audit sinks: JSON lines written off the event loop, drained on close."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from cosa_guard.audit import AuditRecord, AuditSink, JsonlAuditSink, MemoryAuditSink


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
