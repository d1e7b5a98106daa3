"""One client cannot hurt another (issue 15, item 4): the breaker, request limits and the event loop.

- Only upstream faults count against the primary's breaker: a client's bad requests (an upstream
  400, text that cannot be encoded, a bug) fall over to the cascade but never open it.
- A request over `limits` is answered `failed:too_large` before any check or model runs.
- A long turn's injection rules run off the event loop: another deployment's small call is served
  while they are still running.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest
from _guard_fixtures import BOTH_ROUTES, CASCADE_ONLY, USER, PassInputGuard, config, guard_over, make_guard

from cosa_guard.backends.fake import ScriptedBackend
from cosa_guard.deployments import DeploymentRegistry
from cosa_guard.errors import BackendRequestError, BackendTimeoutError, UpstreamStatusError
from cosa_guard.guard import Guard
from cosa_guard.injection import detector
from cosa_guard.settings import LimitsSpec
from cosa_guard.testing.deployments import write_signed_deployment
from cosa_guard.types import FinalEvent, GuardResponse, Route


async def _run(guard: Guard, stream: bool, messages: Any = USER) -> GuardResponse:
    if not stream:
        return await guard.chat("game", messages)
    events = [e async for e in guard.stream("game", messages)]
    assert isinstance(events[-1], FinalEvent)
    return events[-1].response


# --- the breaker -----------------------------------------------------------------------------------

CLIENT_FAULTS = {
    "upstream 400 (max_tokens too large)": BackendRequestError("HTTP 400: max_tokens is too large", 400),
    "unencodable text": UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"),
    "a bug": ValueError("not an upstream problem"),
}
UPSTREAM_FAULTS = {
    "upstream 503": UpstreamStatusError("HTTP 503", 503),
    "upstream timeout": BackendTimeoutError("read timeout"),
    "connection refused": ConnectionRefusedError("refused"),
}


def _breaker_guard(tmp_path: Path, error: BaseException) -> tuple[Guard, ScriptedBackend]:
    primary = ScriptedBackend([error], name="primary")
    backends = {"primary": primary, "fallback": ScriptedBackend(["from the cascade"], name="fallback")}
    guard = make_guard(
        tmp_path, backends, routes=BOTH_ROUTES, breaker={"failure_threshold": 2, "reset_after_s": 60}
    )
    return guard, primary


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fault", list(CLIENT_FAULTS))
async def test_client_faults_never_open_the_breaker(tmp_path: Path, fault: str, stream: bool) -> None:
    guard, primary = _breaker_guard(tmp_path, CLIENT_FAULTS[fault])
    for _ in range(5):  # each falls over to the cascade within its own call
        assert (await _run(guard, stream)).route is Route.CASCADE
    primary.replies = ["the primary answers"]
    response = await _run(guard, stream)  # an innocent client still gets the primary
    assert response.route is Route.COSALIGN
    assert response.text == "the primary answers"


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize("fault", list(UPSTREAM_FAULTS))
async def test_upstream_faults_open_the_breaker(tmp_path: Path, fault: str, stream: bool) -> None:
    guard, primary = _breaker_guard(tmp_path, UPSTREAM_FAULTS[fault])
    for _ in range(2):
        await _run(guard, stream)
    primary.replies = ["the primary answers"]
    assert (await _run(guard, stream)).route is Route.CASCADE  # open: the primary is not tried
    assert len(primary.calls) == 2


# --- request limits --------------------------------------------------------------------------------


def test_default_limits_are_far_beyond_a_chat() -> None:
    limits = LimitsSpec()
    assert (limits.max_turn_chars, limits.max_request_chars) == (100_000, 400_000)
    assert limits.max_concurrency_per_key == 128


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("sizes", "label", "named"),
    [
        ((100,), "allowed", None),
        ((101,), "failed:too_large", "messages[0] has 101 characters; limits.max_turn_chars is 100"),
        ((100, 100, 100), "failed:too_large", "limits.max_request_chars is 250"),
    ],
)
async def test_oversize_requests_are_answered_before_any_check(
    tmp_path: Path, stream: bool, sizes: tuple[int, ...], label: str, named: str | None
) -> None:
    backend = ScriptedBackend(["an answer"], name="fallback")
    seen = PassInputGuard()
    guard = make_guard(
        tmp_path,
        {"fallback": backend},
        input_guard=seen,
        limits={"max_turn_chars": 100, "max_request_chars": 250},
    )
    messages = [{"role": "user", "content": "x" * size} for size in sizes]
    response = await _run(guard, stream, messages)
    assert response.decision.label == label
    if named is not None:
        assert named in response.decision.detail
        assert (seen.seen, backend.calls) == ([], [])  # no check and no model ran


# --- the event loop --------------------------------------------------------------------------------


async def test_a_long_turn_is_checked_off_the_loop_while_another_deployment_is_served(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for deployment in ("big", "small"):
        path, _ = write_signed_deployment(
            tmp_path, config(), deployment, routes=CASCADE_ONLY, injection={"classifier": False}
        )
    guard = guard_over(
        DeploymentRegistry.load(path),
        {"fallback": ScriptedBackend(["an answer"])},
        input_guard=detector.InjectionDetector(),
    )
    inside, release = threading.Event(), threading.Event()
    released_in_time: list[bool] = []
    real = detector.normalise

    def normalise(text: str) -> Any:
        if len(text) > 10_000:
            inside.set()
            # On the loop this would stall every call, the small one too, until the wait gives up.
            released_in_time.append(release.wait(timeout=10))
        return real(text)

    monkeypatch.setattr(detector, "normalise", normalise)
    big = asyncio.create_task(guard.chat("big", [{"role": "user", "content": "a long turn " * 5_000}]))
    assert await asyncio.to_thread(inside.wait, 10)
    small = await guard.chat("small", USER)
    assert small.decision.is_allowed
    assert not big.done()  # the small call was served while the long turn was still being checked
    release.set()
    assert (await big).decision.is_allowed
    assert released_in_time == [True]


async def test_short_turns_stay_on_the_loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[int] = []
    real = detector.normalise

    def normalise(text: str) -> Any:
        threads.append(threading.get_ident())
        return real(text)

    monkeypatch.setattr(detector, "normalise", normalise)
    verdicts = await detector.InjectionDetector().scan(["hello there"], use_classifier=False)
    assert not verdicts[0].attack
    assert threads == [threading.get_ident()]  # a thread hop would cost more than the check


async def test_a_long_application_prompt_is_checked_off_the_loop_and_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cosa_guard import privilege

    guard = make_guard(tmp_path, {"fallback": ScriptedBackend(["an answer"])})
    threads: list[int] = []
    real = privilege.scan

    def scan(text: str, *args: Any) -> Any:
        threads.append(threading.get_ident())
        return real(text, *args)

    monkeypatch.setattr(privilege, "scan", scan)
    prompt = "Answer from the context below.\n" + "The museum opens at nine on weekdays. " * 200
    messages = [{"role": "system", "content": prompt}, *USER]
    for _ in range(3):  # clients re-send the same system prompt every turn
        assert (await guard.chat("game", messages)).decision.is_allowed
    assert len(threads) == 1 and threads[0] != threading.get_ident()
