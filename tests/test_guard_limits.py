"""What the guard refuses to take in or to serve: oversize and unencodable answers, expired configs,
and calls a deployment's required audit log could not record."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from _guard_fixtures import CASCADE_ONLY, REFUSAL, USER, PassInputGuard, config, guard_over, make_guard

from cosa_guard.audit import JsonlAuditSink
from cosa_guard.backends.fake import ScriptedBackend
from cosa_guard.deployments import DeploymentRegistry
from cosa_guard.guard import Guard
from cosa_guard.judges.fake import ScriptedJudge
from cosa_guard.metrics import NoopMetrics
from cosa_guard.testing.deployments import write_signed_deployment
from cosa_guard.types import FinalEvent, TextDelta

LONG = "The hero swings the sword. " * 40  # 1,080 characters


async def test_an_answer_past_max_answer_chars_fails_and_returns_nothing_of_it(tmp_path: Path) -> None:
    guard = make_guard(
        tmp_path, {"fallback": ScriptedBackend([LONG], name="fallback")}, limits={"max_answer_chars": 1000}
    )
    response = await guard.chat("game", USER)
    assert response.decision.label == "failed:backend" and response.decision.detail.endswith(
        "the model's answer passed limits.max_answer_chars (1000)"
    )
    assert response.text == REFUSAL


async def test_a_streamed_answer_stops_at_max_answer_chars(tmp_path: Path) -> None:
    fallback = ScriptedBackend([LONG], name="fallback", chunk_size=100)
    guard = make_guard(
        tmp_path, {"fallback": fallback}, limits={"max_answer_chars": 1000}, stream={"mode": "buffer"}
    )
    events = [e async for e in guard.stream("game", USER)]
    final = events[-1]
    assert isinstance(final, FinalEvent) and final.response.decision.label == "failed:backend"
    assert not any(isinstance(e, TextDelta) for e in events)  # nothing of the answer went out
    assert final.response.text == REFUSAL


async def test_a_lone_surrogate_in_an_answer_reaches_caller_and_audit_as_a_replacement_character(
    tmp_path: Path,
) -> None:
    sink = JsonlAuditSink(tmp_path / "audit.jsonl")
    answers = ScriptedBackend(["a broken \ud83d emoji"], name="fallback", chunk_size=4)
    guard = make_guard(tmp_path, {"fallback": answers}, sink=sink, audit={"include_text": True})
    plain = await guard.chat("game", USER)
    streamed = [e async for e in guard.stream("game", USER)]
    sent = "".join(e.text for e in streamed if isinstance(e, TextDelta))
    assert plain.text == sent == "a broken \ufffd emoji"
    plain.text.encode("utf-8")  # what a server writes to the socket
    await guard.aclose()
    sink.close()
    audited = [
        json.loads(line) for line in (tmp_path / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    ]
    assert [r["response"] for r in audited] == [sent, sent]
    assert {r["decision"] for r in audited} == {"allowed"}


async def test_an_expired_config_makes_its_deployment_unservable(tmp_path: Path) -> None:
    path, _ = write_signed_deployment(tmp_path, config(), routes=CASCADE_ONLY)
    loaded = DeploymentRegistry.load(path).get("game")
    past = datetime.now(UTC) - timedelta(days=1)  # as if it had been served since before then
    expired = replace(loaded, config=loaded.config.model_copy(update={"expires_at": past}))
    guard = guard_over(DeploymentRegistry([expired]), {"fallback": ScriptedBackend(name="fallback")})
    assert guard.unservable() == {"game": "the deployment's config has expired"}
    assert (await guard.chat("game", USER)).decision.label == "failed:config"


async def test_a_deployment_that_requires_its_audit_refuses_calls_while_it_cannot_be_written(
    tmp_path: Path,
) -> None:
    audit_path = tmp_path / "audit.jsonl"
    audit_path.mkdir()  # unwritable: a directory where the file should be
    path, _ = write_signed_deployment(
        tmp_path, config(), routes=CASCADE_ONLY, audit={"path": str(audit_path), "required": True}
    )
    fallback = ScriptedBackend(name="fallback")
    guard = Guard(  # no audit= : the guard opens the deployment's own file
        DeploymentRegistry.load(path),
        backend_factory=lambda spec, base: fallback,
        judge_factory=lambda spec, base: ScriptedJudge(),
        input_guard=PassInputGuard(),
        metrics=NoopMetrics(),
    )
    response = await guard.chat("game", USER)
    assert response.decision.label == "failed:audit" and fallback.calls == []
    assert guard.unservable() == {
        "game": "the deployment requires its audit log, which cannot be written now"
    }
    (health,) = guard.audit_health()
    assert not health.ok and health.error == "Is a directory"

    audit_path.rmdir()  # fixed: the writer finds out on its next attempt
    _eventually(lambda: guard.audit_health()[0].ok)
    assert (await guard.chat("game", USER)).decision.is_allowed and guard.unservable() == {}
    await guard.aclose()
    assert len(audit_path.read_text(encoding="utf-8").splitlines()) == 2  # the refused call is audited too


def _eventually(condition: Callable[[], bool], timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "never happened"
        time.sleep(0.01)
