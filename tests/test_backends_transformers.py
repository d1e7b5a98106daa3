"""TransformersBackend on a tiny random Llama: generation, streaming, cancellation, logprobs, sharing."""

from __future__ import annotations

import asyncio
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("torch")
pytest.importorskip("transformers")

from cosa_guard.backends.base import Backend, LogprobBackend
from cosa_guard.backends.transformers import TransformersBackend, clear_model_cache
from cosa_guard.errors import BackendError
from cosa_guard.testing.contract import BackendContract, BackendSubject
from cosa_guard.testing.models import save_tiny_model, tiny_llama, tiny_tokenizer
from cosa_guard.types import GenerationParams, Message

MESSAGES = (Message("system", "You are a helpful assistant."), Message("user", "What is two plus two?"))
# Random weights repeat one token forever under greedy decoding; forbidding repeats makes varied text.
NO_REPEAT = {"no_repeat_ngram_size": 1}
GREEDY = GenerationParams(max_tokens=24, temperature=0.0, extra={"min_new_tokens": 24, **NO_REPEAT})


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_model(tmp_path_factory.mktemp("tiny"))


@pytest.fixture
def backend(tiny_dir: Path) -> Iterator[TransformersBackend]:
    yield TransformersBackend(tiny_dir, progress=False)
    clear_model_cache()


class CountingForward:
    """Wraps a model's forward to count decoding steps (how far a generation really ran)."""

    def __init__(self, model: Any) -> None:
        self.calls = 0
        self.running = threading.Event()
        self.inner = model.forward
        model.forward = self

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls >= 3:
            self.running.set()
        return self.inner(*args, **kwargs)


def test_is_a_backend_with_logprobs(backend: TransformersBackend) -> None:
    assert isinstance(backend, Backend)
    assert isinstance(backend, LogprobBackend)


async def test_generate_applies_the_chat_template_and_reports_usage(backend: TransformersBackend) -> None:
    completion = await backend.generate(MESSAGES, GREEDY)
    assert completion.text.strip()
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 24
    assert completion.finish_reason == "length"
    tok = tiny_tokenizer()
    prompt = tok.apply_chat_template(
        [m.to_dict() for m in MESSAGES], add_generation_prompt=True, return_dict=True
    )
    assert completion.usage.prompt_tokens == len(prompt["input_ids"])


async def test_stream_yields_pieces_that_add_up_to_generate(backend: TransformersBackend) -> None:
    expected = await backend.generate(MESSAGES, GREEDY)
    chunks = [c async for c in backend.stream(MESSAGES, GREEDY)]
    texts = [c.text for c in chunks if c.text]
    assert len(texts) > 1, "the answer arrived in one piece: not a real token stream"
    assert "".join(texts) == expected.text
    assert chunks[-1].finish_reason == "length"
    assert all(c.finish_reason is None for c in chunks[:-1])


async def test_seeded_sampling_is_reproducible(backend: TransformersBackend) -> None:
    params = GenerationParams(max_tokens=16, temperature=1.0, seed=7)
    first = await backend.generate(MESSAGES, params)
    second = await backend.generate(MESSAGES, params)
    other = await backend.generate(MESSAGES, GenerationParams(max_tokens=16, temperature=1.0, seed=8))
    assert first.text == second.text
    assert other.text != first.text


async def test_stop_string_cuts_the_answer(backend: TransformersBackend) -> None:
    full = (await backend.generate(MESSAGES, GREEDY)).text
    stop = full.split()[1]  # a word the greedy answer is known to contain
    cut = await backend.generate(MESSAGES, cut_params(stop))
    assert cut.text == full[: full.index(stop)]
    assert cut.finish_reason == "stop"
    streamed = "".join([c.text async for c in backend.stream(MESSAGES, cut_params(stop))])
    assert streamed == cut.text


def cut_params(*stops: str) -> GenerationParams:
    return GenerationParams(max_tokens=24, temperature=0.0, stop=stops, extra=NO_REPEAT)


def counted() -> tuple[TransformersBackend, CountingForward]:
    tok = tiny_tokenizer()
    model = tiny_llama(tok)
    counter = CountingForward(model)
    return TransformersBackend.from_objects(model, tok), counter


# Far more steps than any test waits for: a generation that is not stopped runs for seconds.
LONG = GenerationParams(max_tokens=1500, temperature=0.0, extra={"min_new_tokens": 1500})


class TestTransformersContract(BackendContract):
    @pytest.fixture
    def subject(self) -> Iterator[BackendSubject]:
        backend, counter = counted()
        failing = TransformersBackend.from_objects(broken_llama(), tiny_tokenizer())
        yield BackendSubject(
            backend=backend,
            failing=failing,
            steps=lambda: counter.calls,
            long_steps=LONG.max_tokens or 0,
            params=cut_params(),
            long_params=LONG,
        )
        clear_model_cache()


async def test_closing_a_stream_early_stops_generation() -> None:
    backend, counter = counted()
    stream = backend.stream(MESSAGES, LONG)
    async for chunk in stream:
        if chunk.text:
            break
    await stream.aclose()
    await backend.generate(MESSAGES, GenerationParams(max_tokens=1))  # queues behind the stopped generation
    assert counter.calls < 200, f"generation ran on for {counter.calls} steps after the reader left"


async def test_cancelling_generate_stops_the_worker_thread() -> None:
    backend, counter = counted()
    task = asyncio.create_task(backend.generate(MESSAGES, LONG))
    assert await asyncio.to_thread(counter.running.wait, 30)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await backend.generate(MESSAGES, GenerationParams(max_tokens=1))
    assert counter.calls < 200, f"generation ran on for {counter.calls} steps after cancellation"


async def test_generation_runs_off_the_event_loop(backend: TransformersBackend) -> None:
    seen: set[int] = set()
    original = TransformersBackend._generate_sync

    def spy(self: TransformersBackend, *args: Any) -> Any:
        seen.add(threading.get_ident())
        return original(self, *args)

    loop_thread = threading.get_ident()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(TransformersBackend, "_generate_sync", spy)
        await backend.generate(MESSAGES, GenerationParams(max_tokens=2))
    assert seen and loop_thread not in seen


async def test_next_token_logprobs_match_the_forward_pass(backend: TransformersBackend) -> None:
    torch = pytest.importorskip("torch")
    out = await backend.next_token_logprobs(MESSAGES, ["Yes", "No", "definitely-not-one-token-xyz"])
    assert set(out) == {"Yes", "No"}
    assert all(v < 0 for v in out.values())
    loaded = await backend._model()
    ids = loaded.tokenizer.apply_chat_template(
        [m.to_dict() for m in MESSAGES], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        logprobs = torch.log_softmax(loaded.model(**ids).logits[0, -1].float(), dim=-1)
    spellings = {i for w in ("Yes", " Yes") if len(e := loaded.tokenizer.encode(w)) == 1 for i in e}
    expected = math.log(sum(math.exp(float(logprobs[i])) for i in spellings))
    assert out["Yes"] == pytest.approx(expected, abs=1e-5)


async def test_one_model_instance_per_folder(tiny_dir: Path) -> None:
    a = TransformersBackend(tiny_dir, progress=False)
    b = TransformersBackend(tiny_dir, name="other", progress=False)
    try:
        await asyncio.gather(a.load(), b.load())
        assert (await a._model()).model is (await b._model()).model
    finally:
        clear_model_cache()


def broken_llama() -> Any:
    model = tiny_llama(tiny_tokenizer())

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("CUDA out of memory")

    model.forward = broken
    return model


async def test_a_model_that_crashes_is_a_backend_error_not_a_hang() -> None:
    backend = TransformersBackend.from_objects(broken_llama(), tiny_tokenizer())
    with pytest.raises(BackendError, match="out of memory"):
        await backend.generate(MESSAGES, GREEDY)
    with pytest.raises(BackendError, match="out of memory"):
        await asyncio.wait_for(stream_text(backend), 30)
    with pytest.raises(BackendError, match="out of memory"):
        await backend.next_token_logprobs(MESSAGES, ["Yes"])


async def stream_text(backend: TransformersBackend) -> list[str]:
    return [c.text async for c in backend.stream(MESSAGES, GREEDY)]


async def test_a_folder_without_a_model_is_a_backend_error(tmp_path: Path) -> None:
    backend = TransformersBackend(tmp_path, progress=False)
    with pytest.raises(BackendError, match=r"no config\.json"):
        await backend.generate(MESSAGES, GenerationParams(max_tokens=2))
