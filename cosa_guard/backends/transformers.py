"""A local Hugging Face causal LM: chat template, generation off the event loop, real token streaming.

    backend = TransformersBackend("embedded")            # SmolLM2-135M-Instruct, converted once
    backend = TransformersBackend("/models/cosalign-1b")  # any folder from_pretrained reads

Loading happens on first use, in a worker thread, with a progress bar; one model instance is
shared by every backend that names the same folder, dtype and device. Each loaded model owns a
small thread pool (one worker by default): on a CPU, two generations at once only slow each
other down, and a queued call that is cancelled never starts.

Cancelling a call (the guard's deadline, a client that went away, a stream closed early) sets a
flag that a `StoppingCriteria` checks after every token, so the worker thread stops within one
decoding step instead of finishing the answer nobody will read.

Stop strings (`GenerationParams.stop`) end the generation and are cut from the answer, stop string
included. A stream holds back the end of a piece while it could be the start of one
(`_stops.StopBuffer`), so no part of a stop string is ever released.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import threading
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from cosa_guard._optional import require
from cosa_guard.backends._stops import StopBuffer, cut_at_stop
from cosa_guard.backends.base import Backend
from cosa_guard.backends.openai import match_candidates
from cosa_guard.errors import BackendError
from cosa_guard.types import Chunk, Completion, GenerationParams, Message, Usage

__all__ = ["EMBEDDED", "TransformersBackend", "clear_model_cache"]

EMBEDDED = "embedded"
DEFAULT_MAX_NEW_TOKENS = 512
# GenerationParams.extra keys passed on to `generate`; anything else (OpenAI request fields such as
# `user` or `n`) would make transformers reject the call.
GENERATE_EXTRAS = frozenset(
    {"top_k", "min_p", "repetition_penalty", "min_new_tokens", "no_repeat_ngram_size"}
)

T = TypeVar("T")


@dataclass(slots=True)
class _Loaded:
    """One model in memory, with the threads that run it."""

    model: Any
    tokenizer: Any
    executor: ThreadPoolExecutor
    name: str


_models: dict[tuple[str, str, str], _Loaded] = {}
_models_lock = threading.Lock()


def clear_model_cache() -> None:
    """Forget every shared model (tests, or a long-lived process swapping models)."""
    with _models_lock:
        for loaded in _models.values():
            loaded.executor.shutdown(wait=False, cancel_futures=True)
        _models.clear()


def _resolve(model: str | Path, progress: bool) -> tuple[Path, str]:
    if str(model) == EMBEDDED:
        from cosa_guard.embedded import EMBEDDED_NAME, embedded_model_dir

        return embedded_model_dir(progress=progress), EMBEDDED_NAME
    path = Path(model).expanduser()
    if not (path / "config.json").is_file():
        raise BackendError(
            f"transformers backend: {path} is not a model folder (no config.json). Give a local folder "
            "written by save_pretrained, or `embedded` for the bundled SmolLM2 model; hub ids are never "
            "downloaded."
        )
    return path, path.name


def _load_shared(model: str | Path, dtype: str, device: str, workers: int, progress: bool) -> _Loaded:
    with _models_lock:
        path, name = _resolve(model, progress)
        key = (str(path.resolve()), dtype, device)
        if key not in _models:
            _models[key] = _load(path, name, dtype, device, workers, progress)
        return _models[key]


def _load(path: Path, name: str, dtype: str, device: str, workers: int, progress: bool) -> _Loaded:
    transformers = require("transformers", "hf", "the transformers backend")
    tqdm = require("tqdm", "hf", "progress bars").tqdm
    with tqdm(total=2, desc=f"loading {name}", unit="part", disable=not progress, file=sys.stderr) as bar:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        bar.update()
        model = transformers.AutoModelForCausalLM.from_pretrained(path, dtype=dtype, local_files_only=True)
        model.to(device)
        model.eval()  # inference: no dropout
        bar.update()
    if tokenizer.chat_template is None:
        raise BackendError(f"transformers backend: the tokenizer in {path} has no chat template")
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"cosa-guard-{name}")
    return _Loaded(model, tokenizer, executor, name)


@functools.cache
def _cancel_criteria_class() -> type:
    transformers = require("transformers", "hf", "the transformers backend")
    torch = require("torch", "hf", "the transformers backend")

    base: Any = transformers.StoppingCriteria

    class CancelCriteria(base):  # type: ignore[misc]
        def __init__(self, cancelled: threading.Event) -> None:
            self.cancelled = cancelled

        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            return torch.full((input_ids.shape[0],), self.cancelled.is_set(), dtype=torch.bool)

    return CancelCriteria


@functools.cache
def _queue_streamer_class() -> type:
    transformers = require("transformers", "hf", "the transformers backend")

    base: Any = transformers.TextStreamer

    class QueueStreamer(base):  # type: ignore[misc]
        """TextStreamer's word-boundary decoding, handing each piece to an asyncio queue on `loop`.

        (transformers' AsyncTextIteratorStreamer would do, but this one also outlives a closed loop.)
        """

        def __init__(
            self,
            tokenizer: Any,
            loop: asyncio.AbstractEventLoop,
            queue: asyncio.Queue[str | None],
            cancelled: threading.Event,
        ) -> None:
            super().__init__(tokenizer, skip_prompt=True, skip_special_tokens=True)
            self.loop, self.queue, self.cancelled = loop, queue, cancelled

        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            try:
                if text:
                    self.loop.call_soon_threadsafe(self.queue.put_nowait, text)
                if stream_end:
                    self.loop.call_soon_threadsafe(self.queue.put_nowait, None)
            except RuntimeError:  # the event loop is gone: nobody is reading any more
                self.cancelled.set()

    return QueueStreamer


class TransformersBackend(Backend):
    """A chat model loaded with transformers from a local folder (or `embedded`).

    `dtype` is passed to `from_pretrained` (`auto` keeps the saved dtype: bf16 for the embedded
    cache). `workers` is the size of the model's thread pool, fixed by whichever backend loads
    the model first. `GenerationParams.seed` reseeds torch's global generator, so seeded
    sampling is reproducible only with one worker.
    """

    def __init__(
        self,
        model: str | Path = EMBEDDED,
        *,
        name: str | None = None,
        dtype: str = "auto",
        device: str = "cpu",
        workers: int = 1,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        progress: bool = True,
    ) -> None:
        if workers < 1:
            raise ValueError("workers must be at least 1")
        self.model = str(model)
        self.name = name or f"transformers:{Path(self.model).name}"
        self.max_new_tokens = max_new_tokens
        self._load_args = (model, dtype, device, workers, progress)
        self._loaded: _Loaded | None = None
        self._private = False  # a model of its own (from_objects), not one from the shared cache

    @classmethod
    def from_objects(
        cls,
        model: Any,
        tokenizer: Any,
        *,
        name: str = "transformers:in-memory",
        workers: int = 1,
        **kwargs: Any,
    ) -> TransformersBackend:
        """Wrap a model and tokenizer already in memory (tests, notebooks, a model just trained)."""
        backend = cls(name=name, workers=workers, **kwargs)
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cosa-guard-in-memory")
        backend._loaded = _Loaded(model, tokenizer, executor, name)
        backend._private = True
        backend.model = name
        return backend

    async def aclose(self) -> None:
        """Release this backend; closing twice is harmless.

        A shared model stays loaded for the other backends until `clear_model_cache()`; a model
        wrapped by `from_objects` stops its thread pool (a running generation is left to finish).
        """
        if self._private and self._loaded is not None:
            self._loaded.executor.shutdown(wait=False, cancel_futures=True)

    async def load(self) -> None:
        """Load the model now (it loads on first use otherwise); the work runs in a thread."""
        await self._model()

    async def _model(self) -> _Loaded:
        if self._loaded is None:
            try:
                self._loaded = await asyncio.to_thread(_load_shared, *self._load_args)
            except (OSError, ValueError) as exc:
                raise BackendError(f"{self.name}: cannot load the model: {exc}") from exc
        return self._loaded

    async def _run(self, loaded: _Loaded, fn: Callable[[], T], cancelled: threading.Event) -> T:
        future = asyncio.get_running_loop().run_in_executor(loaded.executor, fn)
        try:
            return await future
        except asyncio.CancelledError:
            cancelled.set()  # a running generation stops at its next token; a queued one never starts
            raise

    def _inputs(self, loaded: _Loaded, messages: Sequence[Message]) -> Any:
        return loaded.tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            add_generation_prompt=True,
            return_tensors="pt",
            return_dict=True,
        ).to(loaded.model.device)

    def _generate_kwargs(
        self, loaded: _Loaded, params: GenerationParams, cancelled: threading.Event
    ) -> dict[str, Any]:
        transformers = require("transformers", "hf", "the transformers backend")
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens or self.max_new_tokens,
            "stopping_criteria": transformers.StoppingCriteriaList([_cancel_criteria_class()(cancelled)]),
            "pad_token_id": _pad_token_id(loaded.tokenizer),
        }
        if params.temperature is not None:
            if params.temperature > 0:
                kwargs |= {"do_sample": True, "temperature": params.temperature}
            else:
                kwargs |= {"do_sample": False, "temperature": None, "top_p": None, "top_k": None}
        if params.top_p is not None and kwargs.get("do_sample", True):
            kwargs["top_p"] = params.top_p
        if params.stop:
            kwargs |= {"stop_strings": list(params.stop), "tokenizer": loaded.tokenizer}
        kwargs |= {k: v for k, v in params.extra.items() if k in GENERATE_EXTRAS}
        return kwargs

    def _generate_sync(
        self, loaded: _Loaded, inputs: Any, kwargs: Mapping[str, Any], seed: int | None
    ) -> Any:
        torch = require("torch", "hf", "the transformers backend")
        if seed is not None:
            torch.manual_seed(seed)
        with torch.inference_mode():
            return loaded.model.generate(**inputs, **kwargs)

    def _finish(
        self, loaded: _Loaded, prompt_len: int, sequences: Any, kwargs: Mapping[str, Any], stop: Sequence[str]
    ) -> tuple[str, str, Usage]:
        new = sequences[0, prompt_len:].tolist()
        text, stopped = cut_at_stop(loaded.tokenizer.decode(new, skip_special_tokens=True), stop)
        eos = loaded.model.generation_config.eos_token_id
        eos_ids = set(eos if isinstance(eos, list) else [eos])
        ended = stopped or bool(new and new[-1] in eos_ids)
        finish = "length" if not ended and len(new) >= kwargs["max_new_tokens"] else "stop"
        return text, finish, Usage(prompt_len, len(new))

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        loaded = await self._model()
        cancelled = threading.Event()
        try:
            inputs = self._inputs(loaded, messages)
            kwargs = self._generate_kwargs(loaded, params, cancelled)
            sequences = await self._run(
                loaded, lambda: self._generate_sync(loaded, inputs, kwargs, params.seed), cancelled
            )
        except Exception as exc:  # any model failure is a backend failure, never a crash of the guard
            raise BackendError(f"{self.name}: generation failed: {exc}") from exc
        text, finish, usage = self._finish(
            loaded, inputs["input_ids"].shape[1], sequences, kwargs, params.stop
        )
        return Completion(text=text, model=self.name, finish_reason=finish, usage=usage)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Chunk, None]:
        loaded = await self._model()
        cancelled = threading.Event()
        queue: asyncio.Queue[str | None] = asyncio.Queue()
        try:
            inputs = self._inputs(loaded, messages)
            kwargs = self._generate_kwargs(loaded, params, cancelled)
        except Exception as exc:  # any model failure is a backend failure, never a crash of the guard
            raise BackendError(f"{self.name}: cannot prepare the prompt: {exc}") from exc
        streamer = _queue_streamer_class()(loaded.tokenizer, asyncio.get_running_loop(), queue, cancelled)
        kwargs["streamer"] = streamer

        def work() -> Any:
            try:
                return self._generate_sync(loaded, inputs, kwargs, params.seed)
            finally:
                streamer.on_finalized_text("", stream_end=True)  # unblock the reader even on failure

        future = asyncio.get_running_loop().run_in_executor(loaded.executor, work)
        # transformers stops generating at a stop string, but its streamer has released the pieces
        # that spell it by then: the buffer holds back what could start one.
        stops = StopBuffer(params.stop)
        try:
            while (piece := await queue.get()) is not None:
                if released := stops.feed(piece):
                    yield Chunk(released)
                if stops.stopped:
                    cancelled.set()
                    break
            try:
                sequences = await future
            except Exception as exc:  # any model failure is a backend failure, never a crash of the guard
                raise BackendError(f"{self.name}: generation failed: {exc}") from exc
            if held := stops.flush():
                yield Chunk(held)
            _, finish, _ = self._finish(loaded, inputs["input_ids"].shape[1], sequences, kwargs, ())
            yield Chunk("", finish_reason="stop" if stops.stopped else finish)
        finally:
            cancelled.set()  # no-op after a normal end; stops the thread when the reader left early
            future.cancel()

    async def next_token_logprobs(
        self, messages: Sequence[Message], candidates: Sequence[str]
    ) -> dict[str, float]:
        """Log-probability of each candidate as the first answer token, from one forward pass.

        A candidate counts through every single token that spells it, with or without a leading
        space; a candidate no single token spells is left out.
        """
        loaded = await self._model()
        cancelled = threading.Event()
        inputs = self._inputs(loaded, messages)

        def forward() -> Any:
            torch = require("torch", "hf", "the transformers backend")
            with torch.inference_mode():
                logits = loaded.model(**inputs).logits[0, -1].float()
            return torch.log_softmax(logits, dim=-1)

        try:
            logprobs = await self._run(loaded, forward, cancelled)
        except Exception as exc:  # any model failure is a backend failure, never a crash of the guard
            raise BackendError(f"{self.name}: forward pass failed: {exc}") from exc
        ids = {i for c in candidates for i in _single_token_ids(loaded.tokenizer, c)}
        pairs = [(loaded.tokenizer.decode([i]), float(logprobs[i])) for i in sorted(ids)]
        return match_candidates(pairs, candidates)


def _pad_token_id(tokenizer: Any) -> int | None:
    pad = tokenizer.pad_token_id
    return int(pad) if pad is not None else tokenizer.eos_token_id


def _single_token_ids(tokenizer: Any, candidate: str) -> set[int]:
    word = candidate.strip()
    ids = set()
    for spelling in (word, " " + word):
        encoded = tokenizer.encode(spelling, add_special_tokens=False)
        if len(encoded) == 1:
            ids.add(int(encoded[0]))
    return ids
