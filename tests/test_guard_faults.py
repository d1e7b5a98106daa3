"""The fault matrix of the guard issue: every fault, through chat and stream, ends in a typed decision
within the deadline plus a small margin, and never with unjudged cascade text."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from _guard_fixtures import MARKER, REFUSAL, USER, make_guard

from cosa_guard.backends.fake import ScriptedBackend
from cosa_guard.errors import BackendError, BackendTimeoutError, JudgeError, JudgeParseError
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.judges.llm import LLMJudge
from cosa_guard.types import FinalEvent, GuardResponse, TextDelta

DEADLINE_S = 0.3
MARGIN_S = 0.3
UNJUDGED = f"an unjudged answer with {MARKER} in it"

Fault = Callable[[], tuple[ScriptedBackend, object]]

# fault -> the decision it must produce ("chat|stream" where the two differ)
FAULTS: dict[str, tuple[Fault, str]] = {
    "backend raises": (
        lambda: (ScriptedBackend([BackendError("500 from upstream")]), None),
        "failed:backend",
    ),
    "backend times out": (
        lambda: (ScriptedBackend([BackendTimeoutError("upstream timeout")]), None),
        "failed:timeout",
    ),
    "backend hangs past the deadline": (
        lambda: (ScriptedBackend([UNJUDGED], delay=30), None),
        "failed:timeout",
    ),
    # generate() has nothing to stall (the answer is judged and refused); only the stream stalls.
    "stream stalls past the deadline": (
        lambda: (ScriptedBackend([UNJUDGED], chunk_size=4, chunk_delay=0.2), None),
        "refused:output_violation|failed:timeout",
    ),
    "judge crashes": (
        lambda: (ScriptedBackend([UNJUDGED]), ScriptedJudge([RuntimeError("segfault")])),
        "failed:judge",
    ),
    "judge output malformed": (
        lambda: (ScriptedBackend([UNJUDGED]), LLMJudge(ScriptedBackend(["Well, it depends"], name="judge"))),
        "failed:judge",
    ),
    "judge parse error": (
        lambda: (ScriptedBackend([UNJUDGED]), ScriptedJudge([JudgeParseError("?")])),
        "failed:judge",
    ),
    "judge hangs past the deadline": (
        lambda: (ScriptedBackend([UNJUDGED]), ScriptedJudge(flags={}, delay=30)),
        "failed:timeout",
    ),
    "judge error": (
        lambda: (ScriptedBackend([UNJUDGED]), ScriptedJudge([JudgeError("down")])),
        "failed:judge",
    ),
}


def guard_for(tmp_path: Path, fault: Fault, mode: str):  # type: ignore[no-untyped-def]
    backend, judge = fault()
    backend.name = "fallback"
    return make_guard(
        tmp_path,
        {"fallback": backend},
        judge=judge,
        deadline_s=DEADLINE_S,
        stream={"mode": mode},  # type: ignore[arg-type]
    )


def check(response: GuardResponse, label: str, elapsed: float) -> None:
    assert response.decision.label == label
    assert response.text == REFUSAL and MARKER not in response.text
    assert elapsed < DEADLINE_S + MARGIN_S


@pytest.mark.parametrize("name", sorted(FAULTS))
async def test_chat(tmp_path: Path, name: str) -> None:
    fault, labels = FAULTS[name]
    guard = guard_for(tmp_path, fault, "buffer")
    started = time.perf_counter()
    response = await guard.chat("game", USER)
    check(response, labels.split("|")[0], time.perf_counter() - started)


@pytest.mark.parametrize("mode", ["buffer", "holdback"])
@pytest.mark.parametrize("name", sorted(FAULTS))
async def test_stream(tmp_path: Path, name: str, mode: str) -> None:
    fault, labels = FAULTS[name]
    guard = guard_for(tmp_path, fault, mode)
    started = time.perf_counter()
    events = [e async for e in guard.stream("game", USER)]
    elapsed = time.perf_counter() - started
    final = events[-1]
    assert isinstance(final, FinalEvent)
    shown = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert MARKER not in shown
    check(final.response, labels.split("|")[-1], elapsed)
