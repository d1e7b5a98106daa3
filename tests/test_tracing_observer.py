"""A step observer set with `observe` sees a guarded call's steps, as OpenTelemetry does."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest
from _guard_fixtures import USER, make_guard

from cosa_guard.backends.fake import FailingBackend, ScriptedBackend
from cosa_guard.tracing import Step, observe
from cosa_guard.types import FinalEvent

ANSWER = "The hero swings the sword and the dragon falls, and the kingdom celebrates until dawn."


class Recorder:
    """Records `start name parent` and `end name` events, with each step's attributes."""

    def __init__(self) -> None:
        self.events: list[tuple[str, ...]] = []
        self.attributes: dict[str, dict[str, str]] = {}

    def start(self, name: str, attributes: Mapping[str, str] | None) -> Step:
        return _Step(self, name, "", attributes)


class _Step:
    def __init__(self, recorder: Recorder, name: str, parent: str, attributes: Mapping[str, str] | None):
        self.recorder, self.name = recorder, name
        recorder.events.append(("start", name, parent))
        recorder.attributes.setdefault(name, {}).update(attributes or {})

    def start(self, name: str, attributes: Mapping[str, str] | None) -> Step:
        return _Step(self.recorder, name, self.name, attributes)

    def end(self, attributes: Mapping[str, str] | None, *, failed: bool) -> None:
        self.recorder.events.append(("end", self.name, "failed" if failed else "ok"))
        self.recorder.attributes[self.name].update(attributes or {})


async def test_a_chat_reports_its_steps_in_order(tmp_path: Path) -> None:
    guard = make_guard(tmp_path, {"fallback": ScriptedBackend([ANSWER], name="fallback")})
    recorder = Recorder()
    with observe(recorder):
        response = await guard.chat("game", USER)
    assert recorder.events == [
        ("start", "cosa_guard.chat", ""),
        ("start", "cosa_guard.input_scan", "cosa_guard.chat"),
        ("end", "cosa_guard.input_scan", "ok"),
        ("start", "cosa_guard.generate", "cosa_guard.chat"),
        ("end", "cosa_guard.generate", "ok"),
        ("start", "cosa_guard.judge", "cosa_guard.chat"),
        ("end", "cosa_guard.judge", "ok"),
        ("end", "cosa_guard.chat", "ok"),
    ]
    assert recorder.attributes["cosa_guard.chat"] == {
        "cosa_guard.deployment": "game",
        "cosa_guard.config_hash": response.config_hash,
        "cosa_guard.request_id": response.request_id,
        "cosa_guard.route": "cascade",
        "cosa_guard.decision": "allowed",
        "cosa_guard.categories": "",
    }


async def test_a_stream_keeps_its_observer_when_iterated_outside_the_block(tmp_path: Path) -> None:
    # LangChain's sync API iterates each step in a new task: only the first one sees the observer.
    guard = make_guard(
        tmp_path,
        {"fallback": ScriptedBackend([ANSWER], name="fallback")},
        stream={"mode": "holdback", "window_chars": 24, "overlap_chars": 8},
    )
    recorder = Recorder()
    events = guard.stream("game", USER)
    with observe(recorder):
        await anext(events)
    seen = len(recorder.events)
    final = [event async for event in events][-1]
    assert isinstance(final, FinalEvent) and final.response.decision.is_allowed
    later = [e for e in recorder.events[seen:] if e[:2] == ("start", "cosa_guard.judge")]
    assert later and all(e[2] == "cosa_guard.stream" for e in later)
    assert recorder.events[0] == ("start", "cosa_guard.stream", "")
    assert recorder.events[-1] == ("end", "cosa_guard.stream", "ok")
    assert recorder.attributes["cosa_guard.stream"]["cosa_guard.decision"] == "allowed"


async def test_a_failed_step_ends_failed_with_its_error_type_only(tmp_path: Path) -> None:
    guard = make_guard(tmp_path, {"fallback": FailingBackend("down: " + ANSWER, name="fallback")})
    recorder = Recorder()
    with observe(recorder):
        response = await guard.chat("game", USER)
    assert ("end", "cosa_guard.generate", "failed") in recorder.events
    assert recorder.attributes["cosa_guard.generate"] == {"error.type": "BackendError"}
    assert recorder.attributes["cosa_guard.chat"]["cosa_guard.decision"] == response.decision.label


class Broken:
    def __init__(self, where: str) -> None:
        self.where = where

    def start(self, name: str, attributes: Mapping[str, str] | None) -> Step:
        if self.where == "start":
            raise RuntimeError(ANSWER)
        return self  # type: ignore[return-value]

    def end(self, attributes: Mapping[str, str] | None, *, failed: bool) -> None:
        raise RuntimeError(ANSWER)


@pytest.mark.parametrize("where", ["start", "end"])
async def test_a_failing_observer_never_fails_the_call(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    guard = make_guard(tmp_path, {"fallback": ScriptedBackend([ANSWER], name="fallback")})
    with observe(Broken(where)):
        response = await guard.chat("game", USER)
    assert response.decision.is_allowed and response.text == ANSWER
    assert "step observer Broken failed: RuntimeError" in caplog.text
    assert ANSWER not in caplog.text


async def test_the_observer_sees_only_calls_started_inside_the_block(tmp_path: Path) -> None:
    guard = make_guard(tmp_path, {"fallback": ScriptedBackend([ANSWER], name="fallback")})
    recorder = Recorder()
    with observe(recorder):
        pass
    await guard.chat("game", USER)
    assert recorder.events == []
