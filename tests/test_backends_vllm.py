"""VLLMBackend against a fake `vllm` module (vLLM itself is never installed in CI)."""

from __future__ import annotations

import asyncio
import enum
import sys
import types
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from cosa_guard.backends._stops import StopBuffer
from cosa_guard.backends.base import Backend, LogprobBackend
from cosa_guard.errors import BackendError, MissingExtraError
from cosa_guard.testing.contract import BackendContract, BackendSubject, wants_length
from cosa_guard.types import GenerationParams, Message

MESSAGES = (Message("system", "Be brief."), Message("user", "Hi"))


class RequestOutputKind(enum.Enum):
    CUMULATIVE = 0
    DELTA = 1
    FINAL_ONLY = 2


class SamplingParams:
    def __init__(self, **kwargs: Any) -> None:
        self.kwargs = kwargs
        self.__dict__.update(kwargs)


@dataclass
class AsyncEngineArgs:
    model: str
    options: dict[str, Any] = field(default_factory=dict)

    def __init__(self, model: str, **options: Any) -> None:
        self.model, self.options = model, options


@dataclass
class Logprob:
    logprob: float
    rank: int | None = None
    decoded_token: str | None = None


@dataclass
class CompletionOutput:
    text: str
    token_ids: list[int]
    finish_reason: str | None = None
    logprobs: list[dict[int, Logprob]] | None = None


@dataclass
class RequestOutput:
    request_id: str
    outputs: list[CompletionOutput]
    finished: bool


class CharTokenizer:
    """One token per character; the chat template writes `role: content` lines."""

    def apply_chat_template(
        self, messages: list[dict[str, str]], *, tokenize: bool, add_generation_prompt: bool
    ) -> str:
        assert not tokenize and add_generation_prompt
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "

    def encode(self, text: str, add_special_tokens: bool = True) -> list[int]:
        assert not add_special_tokens
        return [ord(c) for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(chr(i) for i in ids)


class FakeEngine:
    """Replies with `reply`, one character per step, honouring DELTA / FINAL_ONLY, max_tokens and stop.

    A prompt that asks for an answer "at length" gets `long_reply`. Stop strings are applied as
    vLLM's detokenizer applies them: the answer ends before one, and a delta's end is held back
    while it could start one.
    """

    instances: list[FakeEngine] = []  # noqa: RUF012 - test bookkeeping

    def __init__(self, args: AsyncEngineArgs, reply: str = "Hello there, friend!") -> None:
        self.args = args
        self.reply = reply
        self.long_reply = reply
        self.prompts: list[Any] = []
        self.sampling: list[SamplingParams] = []
        self.aborted: list[str] = []
        self.steps = 0
        self.busy = asyncio.Event()  # set once a request has produced a few tokens
        self.fail_after: int | None = None
        FakeEngine.instances.append(self)

    @classmethod
    def from_engine_args(cls, args: AsyncEngineArgs) -> FakeEngine:
        return cls(args)

    async def get_tokenizer(self) -> CharTokenizer:  # async in older vLLM releases
        return CharTokenizer()

    async def generate(
        self, prompt: Any, sampling: SamplingParams, request_id: str
    ) -> AsyncIterator[RequestOutput]:
        self.prompts.append(prompt)
        self.sampling.append(sampling)
        if getattr(sampling, "logprobs", None):
            top = {
                ord("Y"): Logprob(-0.1, 1, "Y"),
                ord("N"): Logprob(-2.5, 2, " N"),
                7: Logprob(-4.0, 3, None),
            }
            out = CompletionOutput("Y", [ord("Y")], "length", [top])
            yield RequestOutput(request_id, [out], True)
            return
        asked = CharTokenizer().decode(prompt["prompt_token_ids"])
        reply = self.long_reply if wants_length(asked) else self.reply
        text = reply[: sampling.max_tokens]
        stops = StopBuffer(getattr(sampling, "stop", None) or ())
        done = ""
        for i, ch in enumerate(text):
            await asyncio.sleep(0)
            self.steps += 1
            if self.steps == 5:
                self.busy.set()
            if self.fail_after is not None and i >= self.fail_after:
                raise RuntimeError("CUDA error: device-side assert")
            delta = stops.feed(ch)
            last = stops.stopped or i == len(text) - 1
            if last:
                delta += stops.flush()
            done += delta
            finish = None
            if last:
                finish = "stop" if stops.stopped or len(text) == len(reply) else "length"
            if sampling.output_kind is RequestOutputKind.DELTA:
                yield RequestOutput(request_id, [CompletionOutput(delta, [ord(ch)], finish)], last)
            elif last:
                yield RequestOutput(
                    request_id, [CompletionOutput(done, [ord(c) for c in done], finish)], True
                )
            if last:
                return

    async def abort(self, request_id: str) -> None:
        self.aborted.append(request_id)


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> Iterator[types.ModuleType]:
    vllm = types.ModuleType("vllm")
    vllm.AsyncEngineArgs = AsyncEngineArgs  # type: ignore[attr-defined]
    vllm.AsyncLLMEngine = FakeEngine  # type: ignore[attr-defined]
    vllm.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    sampling_module = types.ModuleType("vllm.sampling_params")
    sampling_module.RequestOutputKind = RequestOutputKind  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", vllm)
    monkeypatch.setitem(sys.modules, "vllm.sampling_params", sampling_module)
    FakeEngine.instances.clear()
    from cosa_guard.backends.vllm import clear_engine_cache

    yield vllm
    clear_engine_cache()


@pytest.fixture
def backend(fake_vllm: types.ModuleType) -> Any:
    from cosa_guard.backends.vllm import VLLMBackend

    return VLLMBackend("/models/tiny", engine_options={"max_model_len": 512})


class TestVLLMContract(BackendContract):
    @pytest.fixture
    def subject(self, fake_vllm: types.ModuleType) -> BackendSubject:
        from cosa_guard.backends.vllm import VLLMBackend

        engine = FakeEngine(AsyncEngineArgs("/models/tiny"))
        engine.long_reply = "and on " * 10_000
        broken = FakeEngine(AsyncEngineArgs("/models/broken"))
        broken.fail_after = 0
        return BackendSubject(
            backend=VLLMBackend.from_engine(engine, name="vllm:fake"),
            failing=VLLMBackend.from_engine(broken, name="vllm:broken"),
            steps=lambda: engine.steps,
            long_steps=len(engine.long_reply),
            long_params=GenerationParams(temperature=0.0, max_tokens=len(engine.long_reply)),
        )


def test_without_vllm_the_error_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` fail
    from cosa_guard.backends.vllm import VLLMBackend

    with pytest.raises(MissingExtraError, match=r"cosa-guard\[vllm\]"):
        VLLMBackend("/models/tiny")


async def test_generate_sends_the_chat_template_as_token_ids(backend: Any) -> None:
    assert isinstance(backend, Backend) and isinstance(backend, LogprobBackend)
    completion = await backend.generate(MESSAGES, GenerationParams(max_tokens=100, temperature=0.0, seed=3))
    assert completion.text == "Hello there, friend!"
    assert completion.finish_reason == "stop"
    engine = FakeEngine.instances[0]
    assert engine.args.model == "/models/tiny" and engine.args.options == {"max_model_len": 512}
    prompt = "system: Be brief.\nuser: Hi\nassistant: "
    assert engine.prompts == [{"prompt_token_ids": [ord(c) for c in prompt]}]
    assert completion.usage is not None
    assert (completion.usage.prompt_tokens, completion.usage.completion_tokens) == (len(prompt), 20)
    sampling = engine.sampling[0]
    assert sampling.kwargs == {
        "n": 1,
        "max_tokens": 100,
        "output_kind": RequestOutputKind.DELTA,
        "temperature": 0.0,
        "seed": 3,
    }


async def test_params_map_onto_sampling_params(backend: Any) -> None:
    params = GenerationParams(top_p=0.9, stop=("!",), extra={"top_k": 5, "user": "someone"})
    await backend.generate(MESSAGES, params)
    kwargs = FakeEngine.instances[0].sampling[0].kwargs
    assert kwargs["top_p"] == 0.9 and kwargs["stop"] == ["!"] and kwargs["top_k"] == 5
    assert "user" not in kwargs and kwargs["max_tokens"] == 512


async def test_stream_yields_deltas_then_a_finish(backend: Any) -> None:
    chunks = [c async for c in backend.stream(MESSAGES, GenerationParams(max_tokens=5))]
    assert [c.text for c in chunks] == ["H", "e", "l", "l", "o", ""]
    assert chunks[-1].finish_reason == "length"
    assert FakeEngine.instances[0].aborted == []


async def test_leaving_a_stream_early_aborts_the_request(backend: Any) -> None:
    stream = backend.stream(MESSAGES, GenerationParams())
    async for _ in stream:
        break
    await stream.aclose()
    engine = FakeEngine.instances[0]
    assert len(engine.aborted) == 1 and engine.aborted[0].startswith("cosa-guard-")
    assert engine.steps < len(engine.reply)


async def test_cancelling_a_call_aborts_the_request(backend: Any) -> None:
    await backend.load()
    engine = FakeEngine.instances[0]
    engine.reply = "x" * 10_000
    task = asyncio.create_task(backend.generate(MESSAGES, GenerationParams(max_tokens=10_000)))
    await asyncio.wait_for(engine.busy.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(engine.aborted) == 1
    assert engine.steps < 100


async def test_engine_failure_is_a_backend_error(backend: Any) -> None:
    await backend.load()
    FakeEngine.instances[0].fail_after = 3
    with pytest.raises(BackendError, match="device-side assert"):
        await backend.generate(MESSAGES, GenerationParams())


async def test_next_token_logprobs_from_the_top_logprobs(backend: Any) -> None:
    out = await backend.next_token_logprobs(MESSAGES, ["Y", "N", "Maybe"])
    assert out == {"Y": pytest.approx(-0.1), "N": pytest.approx(-2.5)}
    sampling = FakeEngine.instances[0].sampling[0]
    assert sampling.kwargs["logprobs"] == 20 and sampling.kwargs["max_tokens"] == 1
    assert sampling.kwargs["output_kind"] is RequestOutputKind.FINAL_ONLY


async def test_one_engine_per_model_and_options(fake_vllm: types.ModuleType) -> None:
    from cosa_guard.backends.vllm import VLLMBackend

    a = VLLMBackend("/m", engine_options={"dtype": "bfloat16"})
    b = VLLMBackend("/m", name="again", engine_options={"dtype": "bfloat16"})
    c = VLLMBackend("/m", engine_options={"dtype": "float16"})
    await asyncio.gather(a.load(), b.load(), c.load())
    assert len(FakeEngine.instances) == 2


async def test_engine_that_fails_to_start_is_a_backend_error(fake_vllm: types.ModuleType) -> None:
    from cosa_guard.backends.vllm import VLLMBackend

    def broken(args: AsyncEngineArgs) -> FakeEngine:
        raise ValueError("No CUDA GPUs are available")

    fake_vllm.AsyncLLMEngine = types.SimpleNamespace(from_engine_args=broken)  # type: ignore[attr-defined]
    with pytest.raises(BackendError, match="did not start: No CUDA GPUs"):
        await VLLMBackend("/m").generate(MESSAGES, GenerationParams())
