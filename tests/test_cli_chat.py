"""`cosa-guard chat` through `cosa_guard.cli.main`: scripted stdin, a real Guard on scripted backends."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

guard_module = pytest.importorskip("cosa_guard.guard")

from cosa_guard.backends.fake import ScriptedBackend  # noqa: E402
from cosa_guard.cli import main  # noqa: E402
from cosa_guard.config import SafetyConfig  # noqa: E402
from cosa_guard.deployments import DeploymentRegistry  # noqa: E402
from cosa_guard.settings import BackendSpec  # noqa: E402
from cosa_guard.testing.deployments import write_signed_deployment  # noqa: E402
from cosa_guard.types import Message  # noqa: E402

REFUSAL = "Not in this studio."
CONFIG = SafetyConfig(
    id="game", version=1, text="Fictional violence is fine.", allow=["violence"], refusal=REFUSAL
)
SUMMARY = re.compile(r"\[decision=(\S+) route=(\S+) categories=(\S+) latency=\d+ms\]")


def _reply(messages: Sequence[Message]) -> str:
    prompt = messages[-1].content
    if "drugs" in prompt:
        return "Sure: DRUGS."
    turns = sum(1 for m in messages if m.role == "user")
    return f"echo {prompt} (user turns seen: {turns})"


def _backend(spec: BackendSpec, base_dir: Path) -> ScriptedBackend:
    return ScriptedBackend([_reply], chunk_size=5)


@pytest.fixture
def deployments(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    Guard = guard_module.Guard

    def from_file(cls: Any, path: Any, ledger: Any = None, **kw: Any) -> Any:
        # the scripted models instead of real ones
        return cls(DeploymentRegistry.load(path, ledger=ledger), backend_factory=_backend, **kw)

    monkeypatch.setattr(Guard, "from_file", classmethod(from_file))
    path, _ = write_signed_deployment(
        tmp_path,
        CONFIG,
        judge={"kind": "scripted", "options": {"flags": {"DRUGS": "drugs"}}},
        injection={"enabled": False},
        stream={"mode": "holdback", "window_chars": 16, "overlap_chars": 4},
    )
    return path


def _chat(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], stdin: str, *args: str
) -> tuple[int, str, str]:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    code = main(["chat", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_chat_streams_answers_and_shows_each_decision(
    deployments: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _chat(
        monkeypatch,
        capsys,
        "a duel\ndrugs please\nagain\n/quit\nnever read\n",
        "--deployments",
        str(deployments),
    )
    assert code == 0
    assert "echo a duel (user turns seen: 1)" in out
    assert REFUSAL in out
    assert "DRUGS" not in out  # holdback never released the violating text
    # The refused turn stays out of the history: the third prompt is the model's second user turn.
    assert "echo again (user turns seen: 2)" in out
    assert "never read" not in out
    summaries = SUMMARY.findall(out)
    assert summaries == [
        ("allowed", "cascade", "none"),
        ("refused:output_violation", "cascade", "drugs"),
        ("allowed", "cascade", "none"),
    ]


def test_reset_forgets_the_conversation_and_eof_ends(
    deployments: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _chat(monkeypatch, capsys, "one\ntwo\n/reset\nthree\n", "--deployments", str(deployments))
    assert code == 0
    assert "echo two (user turns seen: 2)" in out
    assert "(conversation forgotten)" in out
    assert "echo three (user turns seen: 1)" in out


def test_deployment_must_be_named_when_the_file_has_several(
    deployments: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    write_signed_deployment(
        deployments.parent, CONFIG, "second", judge={"kind": "scripted"}, injection={"enabled": False}
    )
    code, _, err = _chat(monkeypatch, capsys, "hi\n", "--deployments", str(deployments))
    assert code == 1
    assert "--deployment" in err and "game" in err and "second" in err
    code, out, _ = _chat(
        monkeypatch, capsys, "hi\n", "--deployments", str(deployments), "--deployment", "second"
    )
    assert code == 0
    assert "chatting with deployment 'second'" in out
    code, _, err = _chat(
        monkeypatch, capsys, "hi\n", "--deployments", str(deployments), "--deployment", "nope"
    )
    assert code == 1
    assert "nope" in err


def test_missing_deployments_file_says_what_is_wrong(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = _chat(monkeypatch, capsys, "", "--deployments", str(tmp_path / "absent.yaml"))
    assert code == 1
    assert "absent.yaml" in err


def test_without_a_deployments_file_serve_and_chat_use_the_demo(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from cosa_guard.cli._guarded import resolve
    from cosa_guard.demo import DEMO_DEPLOYMENT_ID

    monkeypatch.setenv("COSA_GUARD_HOME", str(tmp_path))
    first = resolve(None)
    assert first.demo_id == DEMO_DEPLOYMENT_ID
    assert first.path == tmp_path / "demo" / "deployments.yaml"
    assert first.api_key is not None
    assert DeploymentRegistry.load(first.path).by_api_key(first.api_key).id == DEMO_DEPLOYMENT_ID
    assert "DEMO" in capsys.readouterr().err
    assert resolve(None).api_key == first.api_key  # restarts keep the key
    explicit = resolve(tmp_path / "mine.yaml")
    assert (explicit.path, explicit.api_key, explicit.demo_id) == (tmp_path / "mine.yaml", None, None)


def test_ctrl_c_stops_the_answer_and_the_chat_goes_on(capsys: pytest.CaptureFixture[str]) -> None:
    import asyncio

    from cosa_guard.cli.chat import _run_turn

    cancelled: list[bool] = []

    async def endless_answer() -> None:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    def ctrl_c() -> None:
        raise KeyboardInterrupt

    loop = asyncio.new_event_loop()
    try:
        loop.call_later(0.05, ctrl_c)
        assert _run_turn(loop, endless_answer()) is None
    finally:
        loop.close()
    assert cancelled == [True]
    assert "(stopped" in capsys.readouterr().out
