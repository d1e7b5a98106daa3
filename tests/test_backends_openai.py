"""The OpenAI-compatible backend against httpx.MockTransport: no network, every failure path."""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import re
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, cast

import httpx
import pytest

from cosa_guard.backends._aiohttp_transport import AiohttpTransport
from cosa_guard.backends.openai import OpenAIBackend, match_candidates
from cosa_guard.errors import BackendError, BackendTimeoutError, DeploymentError
from cosa_guard.testing.contract import BackendContract, BackendSubject, wants_length
from cosa_guard.types import Chunk, GenerationParams, Message

MESSAGES = (Message("system", "Be brief."), Message("user", "Capital of France?"))
Handler = Callable[[httpx.Request], httpx.Response]


def completion_json(text: str, finish: str = "stop") -> dict[str, object]:
    return {
        "id": "c1",
        "model": "served-model",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish}],
        "usage": {"prompt_tokens": 12, "completion_tokens": 3},
    }


def sse(*events: object, done: bool = True) -> bytes:
    lines = [f"data: {json.dumps(e)}\n\n" for e in events]
    if done:
        lines.append("data: [DONE]\n\n")
    return "".join(lines).encode()


def delta(text: str | None = None, finish: str | None = None) -> dict[str, object]:
    d = {} if text is None else {"content": text}
    return {"choices": [{"index": 0, "delta": d, "finish_reason": finish}]}


def backend(handler: Handler, **kwargs: object) -> OpenAIBackend:
    kwargs.setdefault("backoff_s", 0.0)
    return OpenAIBackend("m", base_url="http://upstream/v1", transport=httpx.MockTransport(handler), **kwargs)  # type: ignore[arg-type]


class Recorder:
    """A handler that answers from a list of responses/exceptions and records the requests."""

    def __init__(self, answers: Iterable[httpx.Response | Exception]) -> None:
        self.answers = list(answers)
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def body(self, i: int = -1) -> dict[str, object]:
        return dict(json.loads(self.requests[i].content))


async def collect(chunks: AsyncIterator[Chunk]) -> list[Chunk]:
    return [c async for c in chunks]


class ModelServer:
    """A fake OpenAI-compatible server over a word-per-token model that ignores `stop`.

    It produces its answer one token per event-loop turn (`steps` counts them), honours
    `max_tokens` and streams three characters per event; since it never applies `stop`, the
    contract's stop test checks the backend's own cut. `fail` answers every call with HTTP 500.
    """

    SHORT = "The knight rode out at dawn and came back by night."
    LONG = "and the knight rode on " * 5000

    def __init__(self, *, fail: bool = False) -> None:
        self.fail = fail
        self.steps = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.fail:
            return httpx.Response(500, json={"error": {"message": "the model crashed"}})
        body = json.loads(request.content)
        text = self.LONG if wants_length(body["messages"]) else self.SHORT
        words = re.findall(r"\s*\S+", text)
        finish = "length" if body.get("max_tokens") and len(words) > body["max_tokens"] else "stop"
        words = words[: body.get("max_tokens") or len(words)]
        if body["stream"]:
            return httpx.Response(200, content=self._events(words, finish))
        return httpx.Response(200, content=self._whole(words, finish))

    async def _tokens(self, words: list[str]) -> AsyncIterator[str]:
        for word in words:
            await asyncio.sleep(0)
            self.steps += 1
            yield word

    async def _whole(self, words: list[str], finish: str) -> AsyncIterator[bytes]:
        data = completion_json("".join([w async for w in self._tokens(words)]), finish)
        data["usage"] = {"prompt_tokens": 12, "completion_tokens": len(words)}
        yield json.dumps(data).encode()

    async def _events(self, words: list[str], finish: str) -> AsyncIterator[bytes]:
        async for word in self._tokens(words):
            for start in range(0, len(word), 3):
                yield sse(delta(word[start : start + 3]), done=False)
        yield sse(delta(None, finish))


class TestOpenAIContract(BackendContract):
    @pytest.fixture
    def subject(self) -> BackendSubject:
        server = ModelServer()
        return BackendSubject(
            backend=backend(server),
            failing=backend(ModelServer(fail=True), max_retries=0),
            steps=lambda: server.steps,
            long_steps=len(ModelServer.LONG.split()),
        )


async def test_text_a_server_sends_past_a_stop_string_is_cut() -> None:
    body = sse(delta("Paris.\n"), delta("\nQ: and"), delta(" more"), delta(None, "length"))
    rec = Recorder([httpx.Response(200, content=body)])
    chunks = await collect(backend(rec).stream(MESSAGES, GenerationParams(stop=("\n\n",))))
    assert [(c.text, c.finish_reason) for c in chunks] == [("Paris.", None), ("", "stop")]


@pytest.mark.parametrize("http", ["httpx", "aiohttp"])
async def test_aclose_twice_is_harmless_on_every_transport(http: str) -> None:
    b = OpenAIBackend("m", http=http)
    await b.aclose()
    await b.aclose()


async def test_generate_sends_messages_and_params_and_parses_answer() -> None:
    rec = Recorder([httpx.Response(200, json=completion_json("Paris."))])
    b = backend(rec, api_key="sk-test")
    out = await b.generate(
        MESSAGES, GenerationParams(max_tokens=5, temperature=0.0, stop=("\n",), extra={"top_k": 3})
    )
    assert out.text == "Paris."
    assert out.model == "served-model"
    assert out.usage is not None and out.usage.completion_tokens == 3
    body = rec.body()
    assert body["model"] == "m"
    assert body["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert body["max_tokens"] == 5 and body["temperature"] == 0.0 and body["stop"] == ["\n"]
    assert body["top_k"] == 3 and body["stream"] is False
    assert "top_p" not in body  # unset params are not sent
    assert rec.requests[0].url == "http://upstream/v1/chat/completions"
    assert rec.requests[0].headers["authorization"] == "Bearer sk-test"
    await b.aclose()


async def test_one_transport_serves_every_call_until_aclose() -> None:
    closed: list[bool] = []

    class Closing(httpx.MockTransport):
        async def aclose(self) -> None:
            closed.append(True)

    rec = Recorder([httpx.Response(200, json=completion_json("x"))])
    b = OpenAIBackend("m", base_url="http://upstream/v1", transport=Closing(rec))
    for _ in range(3):
        await b.generate(MESSAGES, GenerationParams())
    assert len(rec.requests) == 3 and not closed
    assert all(r.headers["content-type"] == "application/json" for r in rec.requests)
    await b.aclose()
    assert closed == [True]


def test_unknown_http_client_is_a_deployment_error() -> None:
    with pytest.raises(DeploymentError, match="http must be one of auto, aiohttp, httpx"):
        OpenAIBackend("m", http="requests")


async def test_stream_yields_deltas_until_done() -> None:
    body = sse(delta(""), delta("Par"), delta("is"), delta("."), delta(None, "stop"))
    rec = Recorder([httpx.Response(200, content=body, headers={"content-type": "text/event-stream"})])
    chunks = await collect(backend(rec).stream(MESSAGES, GenerationParams()))
    assert "".join(c.text for c in chunks) == "Paris."
    assert chunks[-1].finish_reason == "stop"
    assert rec.body()["stream"] is True


async def test_stream_parses_multiline_data_comments_and_crlf() -> None:
    payload = json.dumps(delta("hi", "stop"))
    cut = payload.index(":")  # split between JSON tokens: the data lines rejoin with "\n", valid whitespace
    raw = (
        f": keep-alive\r\nevent: message\r\ndata: {payload[:cut]}\r\ndata:{payload[cut:]}\r\n\r\n"
        "data: [DONE]\r\n\r\n"
    )
    rec = Recorder([httpx.Response(200, content=raw.encode())])
    chunks = await collect(backend(rec).stream(MESSAGES, GenerationParams()))
    assert [c.text for c in chunks] == ["hi"]


async def test_stream_cut_before_done_is_an_error() -> None:
    rec = Recorder([httpx.Response(200, content=sse(delta("Par"), done=False))])
    with pytest.raises(BackendError, match="ended before"):
        await collect(backend(rec).stream(MESSAGES, GenerationParams()))


async def test_stream_error_event_is_an_error() -> None:
    rec = Recorder([httpx.Response(200, content=sse(delta("Par"), {"error": {"message": "engine died"}}))])
    with pytest.raises(BackendError, match="engine died"):
        await collect(backend(rec).stream(MESSAGES, GenerationParams()))


async def test_retries_connect_error_then_succeeds() -> None:
    rec = Recorder(
        [
            httpx.ConnectError("refused"),
            httpx.ConnectError("refused"),
            httpx.Response(200, json=completion_json("ok")),
        ]
    )
    out = await backend(rec, max_retries=2).generate(MESSAGES, GenerationParams())
    assert out.text == "ok" and len(rec.requests) == 3


async def test_gives_up_after_max_retries() -> None:
    rec = Recorder([httpx.ConnectError("refused")])
    with pytest.raises(BackendError, match="ConnectError") as info:
        await backend(rec, max_retries=2).generate(MESSAGES, GenerationParams())
    assert len(rec.requests) == 3
    assert isinstance(info.value.__cause__, httpx.ConnectError)


@pytest.mark.parametrize("status", [429, 502, 503])
async def test_retries_overload_statuses(status: int) -> None:
    rec = Recorder(
        [
            httpx.Response(status, headers={"retry-after": "0"}),
            httpx.Response(200, json=completion_json("ok")),
        ]
    )
    out = await backend(rec).generate(MESSAGES, GenerationParams())
    assert out.text == "ok" and len(rec.requests) == 2


async def test_500_is_not_retried_and_names_the_status() -> None:
    rec = Recorder([httpx.Response(500, json={"error": {"message": "CUDA out of memory"}})])
    with pytest.raises(BackendError, match=r"HTTP 500.*CUDA out of memory"):
        await backend(rec).generate(MESSAGES, GenerationParams())
    assert len(rec.requests) == 1


async def test_read_error_after_stream_started_is_not_retried() -> None:
    class BrokenStream(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            yield sse(delta("Par"), done=False)
            raise httpx.ReadError("connection reset")

    rec = Recorder(
        [httpx.Response(200, stream=BrokenStream()), httpx.Response(200, content=sse(delta("x", "stop")))]
    )
    seen: list[str] = []
    with pytest.raises(BackendError, match="ReadError"):
        async for chunk in backend(rec, max_retries=5).stream(MESSAGES, GenerationParams()):
            seen.append(chunk.text)
    assert seen == ["Par"]
    assert len(rec.requests) == 1


async def test_read_timeout_is_backend_timeout() -> None:
    rec = Recorder([httpx.ReadTimeout("slow")])
    with pytest.raises(BackendTimeoutError):
        await backend(rec).generate(MESSAGES, GenerationParams())
    assert len(rec.requests) == 1  # a read timeout may mean the server is working: never retried


async def test_whole_call_deadline_is_backend_timeout() -> None:
    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(5)
        return httpx.Response(200, json=completion_json("late"))

    b = OpenAIBackend("m", base_url="http://u/v1", timeout_s=0.05, transport=httpx.MockTransport(slow))
    loop = asyncio.get_running_loop()
    start = loop.time()
    with pytest.raises(BackendTimeoutError, match=r"within 0\.05"):
        await b.generate(MESSAGES, GenerationParams())
    assert loop.time() - start < 1.0


async def test_malformed_json_is_backend_error() -> None:
    rec = Recorder([httpx.Response(200, content=b"<html>gateway</html>")])
    with pytest.raises(BackendError, match="malformed JSON"):
        await backend(rec).generate(MESSAGES, GenerationParams())


async def test_malformed_stream_chunk_is_backend_error() -> None:
    rec = Recorder([httpx.Response(200, content=b"data: {not json\n\n")])
    with pytest.raises(BackendError, match="malformed JSON"):
        await collect(backend(rec).stream(MESSAGES, GenerationParams()))


async def test_unexpected_shape_is_backend_error() -> None:
    rec = Recorder([httpx.Response(200, json={"choices": []})])
    with pytest.raises(BackendError, match="unexpected"):
        await backend(rec).generate(MESSAGES, GenerationParams())


async def test_next_token_logprobs_requests_one_token_and_folds_variants() -> None:
    top = [
        {"token": "No", "logprob": math.log(0.5)},
        {"token": " Yes", "logprob": math.log(0.2)},
        {"token": "Yes", "logprob": math.log(0.1)},
    ]
    answer = {
        "choices": [
            {"message": {"content": "No"}, "logprobs": {"content": [{"token": "No", "top_logprobs": top}]}}
        ]
    }
    rec = Recorder([httpx.Response(200, json=answer)])
    out = await backend(rec).next_token_logprobs(MESSAGES, ["Yes", "No", "Maybe"])
    assert out["Yes"] == pytest.approx(math.log(0.3))
    assert out["No"] == pytest.approx(math.log(0.5))
    assert "Maybe" not in out
    body = rec.body()
    assert body["max_tokens"] == 1 and body["logprobs"] is True and body["top_logprobs"] == 20


async def test_next_token_logprobs_without_support_is_backend_error() -> None:
    rec = Recorder([httpx.Response(200, json=completion_json("No"))])
    with pytest.raises(BackendError, match="top_logprobs"):
        await backend(rec).next_token_logprobs(MESSAGES, ["Yes", "No"])


def test_match_candidates_is_log_sum_exp() -> None:
    out = match_candidates([("a", math.log(0.25)), (" a ", math.log(0.25))], ["a"])
    assert out["a"] == pytest.approx(math.log(0.5))


def test_from_options_reads_key_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UPSTREAM_KEY", "sk-env")
    b = OpenAIBackend.from_options(
        "m", base_url="http://x/v1", api_key_env="UPSTREAM_KEY", timeout_s=3.0, options={"max_retries": 0}
    )
    assert b._headers["authorization"] == "Bearer sk-env"
    assert b.max_retries == 0 and b.timeout_s == 3.0
    monkeypatch.delenv("UPSTREAM_KEY")
    with pytest.raises(DeploymentError, match="UPSTREAM_KEY"):
        OpenAIBackend.from_options("m", base_url=None, api_key_env="UPSTREAM_KEY", timeout_s=3.0, options={})


# --- the connection pool, against a real uvicorn upstream on loopback -------------------------------


class Upstream:
    """A streaming chat endpoint that records which TCP connection (client port) served each request.

    Each answer sends its first chunk, then waits until `hold` requests are in flight at once (or
    until `release` is set), then finishes: a test knows its calls really overlapped, or can keep a
    connection busy for as long as it likes. A stuck pool shows in the counts, never as a hang.
    """

    def __init__(self, hold: int = 0) -> None:
        self.hold = hold
        self.ports: list[int] = []
        self.in_flight = 0
        self.peak = 0
        self.release = threading.Event()  # the app runs in uvicorn's thread and loop
        self.first = sse(delta("Par"), done=False)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        self.ports.append(scope["client"][1])
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.in_flight >= self.hold:
                self.release.set()
            headers = [(b"content-type", b"text/event-stream")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": self.first, "more_body": True})
            for _ in range(1000):
                if self.release.is_set():
                    break
                await asyncio.sleep(0.01)
            await send({"type": "http.response.body", "body": sse(delta("is."), delta(None, "stop"))})
        finally:
            self.in_flight -= 1


@pytest.fixture(params=["httpx", "aiohttp"])
def http(request: pytest.FixtureRequest) -> str:
    """Every real-upstream test runs on both transports: httpcore's (pooled) and aiohttp's."""
    if request.param == "aiohttp":
        pytest.importorskip("aiohttp")
    return str(request.param)


@contextlib.contextmanager
def upstream(app: Upstream, **config: Any) -> Iterator[str]:
    pytest.importorskip("uvicorn")
    from cosa_guard.testing.server import serve_in_thread

    with serve_in_thread(app, lifespan="off", **config) as url:
        yield url + "/v1"


async def test_64_concurrent_streams_share_a_pool_of_reused_connections(http: str) -> None:
    app = Upstream(hold=64)
    with upstream(app) as url:
        b = OpenAIBackend("m", base_url=url, http=http, timeout_s=30, max_connections=64)
        for _ in range(3):
            answers = await asyncio.gather(
                *(collect(b.stream(MESSAGES, GenerationParams())) for _ in range(64))
            )
            assert all("".join(c.text for c in chunks) == "Paris." for chunks in answers)
        await b.aclose()
    assert app.peak == 64  # every call was in flight at once: none waited behind another
    assert len(app.ports) == 3 * 64
    assert len(set(app.ports)) == 64  # rounds two and three reused the first round's connections


async def test_max_connections_option_bounds_requests_in_flight(http: str) -> None:
    app = Upstream(hold=2)  # the first answer waits for a second one in flight
    with upstream(app) as url:
        options = {"max_connections": 2, "http": http}  # as a deployment's BackendSpec.options
        b = OpenAIBackend.from_options("m", base_url=url, api_key_env=None, timeout_s=5, options=options)
        answers = await asyncio.gather(*(collect(b.stream(MESSAGES, GenerationParams())) for _ in range(12)))
        await b.aclose()
    assert len(answers) == 12 and all(chunks[-1].finish_reason == "stop" for chunks in answers)
    assert app.peak == 2 and len(set(app.ports)) == 2


async def test_waiting_longer_than_timeout_for_a_connection_is_backend_timeout(http: str) -> None:
    app = Upstream(hold=2)  # the first answer stops after one chunk until released
    with upstream(app) as url:
        b = OpenAIBackend("m", base_url=url, http=http, max_connections=1, timeout_s=0.2)
        first = b.stream(MESSAGES, GenerationParams())
        assert (await anext(first)).text == "Par"  # its connection is now busy until we read on
        with pytest.raises(BackendTimeoutError, match="PoolTimeout"):
            await collect(b.stream(MESSAGES, GenerationParams()))
        app.release.set()
        rest = await collect(first)
        await b.aclose()
    assert "".join(c.text for c in rest) == "is." and rest[-1].finish_reason == "stop"
    assert len(app.ports) == 1  # the second call never reached the server


async def test_cancelled_wait_for_a_connection_takes_no_slot(http: str) -> None:
    app = Upstream(hold=2)  # the first answer stops after one chunk until released
    with upstream(app) as url:
        b = OpenAIBackend("m", base_url=url, http=http, max_connections=1, timeout_s=5)
        first = b.stream(MESSAGES, GenerationParams())
        assert (await anext(first)).text == "Par"
        waiting = asyncio.ensure_future(collect(b.stream(MESSAGES, GenerationParams())))
        await asyncio.sleep(0.05)  # let it queue for the only connection
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        app.release.set()
        await collect(first)
        chunks = await collect(b.stream(MESSAGES, GenerationParams()))  # a lost slot would time out here
        await b.aclose()
    assert "".join(c.text for c in chunks) == "Paris."
    assert len(app.ports) == 2 and len(set(app.ports)) == 1  # the cancelled call never reached the server


async def test_stream_ends_at_done_even_if_the_body_stays_open(http: str) -> None:
    app = Upstream(hold=2)
    app.first = sse(delta("Paris.", "stop"))  # [DONE], then the server holds the body open
    with upstream(app) as url:
        b = OpenAIBackend("m", base_url=url, http=http, timeout_s=5)
        chunks = await collect(b.stream(MESSAGES, GenerationParams()))
        still_open = app.in_flight == 1
        app.release.set()
        await b.aclose()
    assert "".join(c.text for c in chunks) == "Paris." and chunks[-1].finish_reason == "stop"
    assert still_open  # the answer did not wait for the server to end the body


async def test_abandoned_stream_gives_its_connection_back(http: str) -> None:
    app = Upstream()
    with upstream(app) as url:
        b = OpenAIBackend("m", base_url=url, http=http, max_connections=1, timeout_s=5)
        stream = cast(AsyncGenerator[Chunk, None], b.stream(MESSAGES, GenerationParams()))
        assert (await anext(stream)).text == "Par"
        await stream.aclose()  # the consumer stops after one chunk, mid-body
        chunks = await collect(b.stream(MESSAGES, GenerationParams()))  # a leaked slot would time out here
        await b.aclose()
    assert "".join(c.text for c in chunks) == "Paris."
    assert len(app.ports) == 2


async def test_connection_closed_by_the_server_is_replaced(http: str) -> None:
    app = Upstream()
    with upstream(app, timeout_keep_alive=0.1) as url:
        b = OpenAIBackend("m", base_url=url, http=http, max_retries=0)
        await collect(b.stream(MESSAGES, GenerationParams()))
        for _ in range(500):  # until the server's keep-alive timeout has closed the idle connection
            if not _idle_connections(b):
                break
            await asyncio.sleep(0.01)
        else:
            pytest.fail("uvicorn never closed the idle connection")
        chunks = await collect(b.stream(MESSAGES, GenerationParams()))
        await b.aclose()
    assert chunks[-1].finish_reason == "stop"
    assert len(set(app.ports)) == 2


def _idle_connections(b: OpenAIBackend) -> list[Any]:
    """The running loop's transport's idle connections the server has not closed."""
    transport = b._transport._by_loop[asyncio.get_running_loop()]  # type: ignore[attr-defined]
    if isinstance(transport, AiohttpTransport):
        session = transport._session
        assert session is not None and session.connector is not None
        idle = session.connector._conns
        return [proto for conns in idle.values() for proto, _ in conns if proto.is_connected()]
    pool = transport._pool
    return [c for stack in pool._idle.values() for c in stack if not c.has_expired()]


def test_each_asyncio_run_of_a_script_gets_its_own_working_pool(http: str) -> None:
    """A script that calls `asyncio.run` per request must not find the last loop's dead connections."""
    app = Upstream()
    with upstream(app) as url, _orphaned_sockets_expected():
        b = OpenAIBackend("m", base_url=url, http=http, timeout_s=5, max_retries=0)
        pools = []
        for _ in range(3):
            chunks = asyncio.run(collect(b.stream(MESSAGES, GenerationParams())))
            assert "".join(c.text for c in chunks) == "Paris."
            pools.append(list(b._transport._by_loop.values()))  # type: ignore[attr-defined]
        asyncio.run(b.aclose())
    assert all(len(p) == 1 for p in pools)  # each new loop dropped the closed loop's pool
    assert len({id(p[0]) for p in pools}) == 3
    assert len(set(app.ports)) == 3  # a fresh connection per loop


async def test_a_backend_serves_two_live_loops_at_once(http: str) -> None:
    """LangChain's sync shim calls from its own background loop while `ainvoke` uses the caller's."""
    app = Upstream(hold=2)  # each answer waits until both loops' calls are in flight
    other = asyncio.new_event_loop()
    thread = threading.Thread(target=other.run_forever, daemon=True)
    thread.start()
    try:
        with upstream(app) as url:
            b = OpenAIBackend("m", base_url=url, http=http, timeout_s=5, max_retries=0)
            there = asyncio.run_coroutine_threadsafe(collect(b.stream(MESSAGES, GenerationParams())), other)
            here = await collect(b.stream(MESSAGES, GenerationParams()))
            assert "".join(c.text for c in there.result(5)) == "Paris." == "".join(c.text for c in here)
            pools = dict(b._transport._by_loop)  # type: ignore[attr-defined]
            await b.aclose()  # closes this loop's pool here and asks the other loop to close its own
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(asyncio.sleep(0.05), other))
    finally:
        other.call_soon_threadsafe(other.stop)
        thread.join(5)
        other.close()
    assert set(pools) == {asyncio.get_running_loop(), other} and app.peak == 2
    assert all(_closed(pool) for pool in pools.values())


def _closed(transport: Any) -> bool:
    if isinstance(transport, AiohttpTransport):
        return transport._session is None
    return bool(transport._pool._closed)


@contextlib.contextmanager
def _orphaned_sockets_expected() -> Iterator[None]:
    """Sockets opened on a loop that has since closed can only be closed by the garbage collector,
    which reports each as a ResourceWarning. The collector may run at any allocation inside the
    block (when is up to what else is loaded, pytest plugins included), so the warning is
    expected throughout it, and a last collection at its end leaves none for the next test."""
    import gc
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        yield
        gc.collect()
