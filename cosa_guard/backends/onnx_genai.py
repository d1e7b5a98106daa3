"""A local model on onnxruntime-genai, an inference engine built for CPUs: the embedded default.

    backend = OnnxGenAIBackend("embedded")              # SmolLM2-135M-Instruct, converted once
    backend = OnnxGenAIBackend("/models/smollm2-onnx")  # any folder with a genai_config.json

The engine decodes several times faster than transformers' `generate` on a CPU (4-bit weights,
int8 dot products, a KV cache in place); `benchmarks/embedded.py` measures both. It
needs no torch at run time: the tokenizer and chat template are the engine's own.

One engine per folder, precision and thread count is shared by every backend in the process,
with a small pool of worker threads (one by default: on a CPU two generations at once only slow
each other down) and a bounded queue in front of it: a call that finds `max_queued` calls
already waiting fails at once with `BackendBusyError` instead of waiting behind them.

Tokenising and decoding run in a worker thread, token by token. After every token it checks a flag that
cancelling the call sets (the guard's deadline, a client that went away, a stream closed early),
so the thread stops within one token; a queued call that is cancelled never starts. Stop strings
are found as the text grows, in the worker thread, so generation ends at the stop string; a stream
holds back text that could be the start of one (`_stops.StopBuffer`) and never releases any of it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cosa_guard._optional import require
from cosa_guard.backends._stops import StopBuffer
from cosa_guard.backends.base import Backend
from cosa_guard.errors import BackendBusyError, BackendError
from cosa_guard.types import Chunk, Completion, GenerationParams, Message, Usage

__all__ = ["EMBEDDED", "DecodeOptions", "OnnxGenAIBackend", "TokenEngine", "clear_engine_cache"]

EMBEDDED = "embedded"
DEFAULT_MAX_NEW_TOKENS = 512
# GenerationParams.extra keys the engine's search options take; other request fields are ignored.
SEARCH_EXTRAS = frozenset({"top_k", "repetition_penalty", "min_new_tokens"})


@dataclass(frozen=True, slots=True)
class DecodeOptions:
    """How to pick each next token. Greedy unless `temperature` is above 0."""

    max_new_tokens: int
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None
    min_new_tokens: int | None = None


class TokenEngine(Protocol):
    """What the backend needs from an inference engine (tests inject a fake one)."""

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        """The conversation through the model's chat template, ending where the assistant answers."""
        ...

    def decode(self, prompt: Sequence[int], options: DecodeOptions) -> Iterator[str]:
        """One text piece per generated token (possibly empty), until end of sequence or the length limit.

        The caller may stop iterating at any point; closing the iterator frees the generation.
        """
        ...


class OgEngine:
    """`TokenEngine` over onnxruntime-genai: one loaded model and its tokenizer."""

    def __init__(self, path: Path, *, threads: int) -> None:
        og = require("onnxruntime_genai", "engine", "the onnx backend")
        config = og.Config(str(path))
        session = {"intra_op_num_threads": threads, "inter_op_num_threads": 1}
        config.overlay(json.dumps({"model": {"decoder": {"session_options": session}}}))
        self._og = og
        self.model = og.Model(config)
        self.tokenizer = og.Tokenizer(self.model)
        settings = json.loads((path / "genai_config.json").read_text(encoding="utf-8"))
        self.context_length = int(settings["model"]["context_length"])

    def prompt_ids(self, messages: Sequence[Message]) -> list[int]:
        conversation = json.dumps([{"role": m.role, "content": m.content} for m in messages])
        prompt = self.tokenizer.apply_chat_template(conversation, add_generation_prompt=True)
        return [int(i) for i in self.tokenizer.encode(prompt)]

    def decode(self, prompt: Sequence[int], options: DecodeOptions) -> Iterator[str]:
        if len(prompt) >= self.context_length:
            raise BackendError(f"the prompt has {len(prompt)} tokens; the model reads {self.context_length}")
        search: dict[str, Any] = {
            "max_length": min(len(prompt) + options.max_new_tokens, self.context_length),
            "do_sample": bool(options.temperature and options.temperature > 0),
        }
        if search["do_sample"]:
            search["temperature"] = options.temperature
            if options.top_p is not None:
                search["top_p"] = options.top_p
            if options.top_k is not None:
                search["top_k"] = options.top_k
        if options.seed is not None:
            search["random_seed"] = options.seed
        if options.repetition_penalty is not None:
            search["repetition_penalty"] = options.repetition_penalty
        if options.min_new_tokens is not None:
            search["min_length"] = len(prompt) + options.min_new_tokens
        params = self._og.GeneratorParams(self.model)
        params.set_search_options(**search)
        generator = self._og.Generator(self.model, params)
        generator.append_tokens(list(prompt))
        text = self.tokenizer.create_stream()
        eos = set(self.tokenizer.eos_token_ids)
        while not generator.is_done():
            generator.generate_next_token()
            token = int(generator.get_next_tokens()[0])
            if token in eos:
                return
            yield text.decode(token)


@dataclass(slots=True)
class _Shared:
    """One engine in memory, the threads that run it and the bound on calls waiting for them."""

    engine: TokenEngine
    executor: ThreadPoolExecutor
    capacity: int  # calls running or waiting
    admitted: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def admit(self) -> None:
        with self.lock:
            if self.admitted >= self.capacity:
                raise BackendBusyError(
                    f"the local model is busy: {self.admitted} calls are running or queued"
                )
            self.admitted += 1

    def release(self) -> None:
        with self.lock:
            self.admitted -= 1


_engines: dict[tuple[str, str, int], _Shared] = {}
_engines_lock = threading.Lock()


def clear_engine_cache() -> None:
    """Forget every shared engine (tests, or a long-lived process swapping models)."""
    with _engines_lock:
        for shared in _engines.values():
            shared.executor.shutdown(wait=False, cancel_futures=True)
        _engines.clear()


def _resolve(model: str, precision: str, progress: bool) -> Path:
    if model == EMBEDDED:
        from cosa_guard.embedded import embedded_engine_dir

        return embedded_engine_dir(precision, progress=progress)
    path = Path(model).expanduser()
    if not (path / "genai_config.json").is_file():
        raise BackendError(
            f"onnx backend: {path} is not an onnxruntime-genai model folder (no genai_config.json). "
            "Give a folder written by onnxruntime-genai's model builder, or `embedded` for the bundled model."
        )
    return path


def _load_shared(
    model: str, precision: str, threads: int, workers: int, max_queued: int, progress: bool
) -> _Shared:
    with _engines_lock:
        path = _resolve(model, precision, progress)
        key = (str(path.resolve()), precision, threads)
        if key not in _engines:
            engine = OgEngine(path, threads=threads)
            executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"cosa-guard-{path.name}")
            _engines[key] = _Shared(engine, executor, workers + max_queued)
        return _engines[key]


def _run_decode(
    engine: TokenEngine,
    messages: Sequence[Message],
    options: DecodeOptions,
    stops: Sequence[str],
    cancelled: threading.Event,
    emit: Callable[[str], None],
) -> tuple[str, Usage]:
    """Tokenise and decode in the calling (worker) thread, handing released text to `emit`.

    Returns the finish reason and the token counts. The stop-string handling of both `generate`
    and `stream` is this one loop.
    """
    prompt = engine.prompt_ids(messages)
    buffer = StopBuffer(stops)
    count = 0
    pieces = engine.decode(prompt, options)
    try:
        for piece in pieces:
            count += 1
            if released := buffer.feed(piece):
                emit(released)
            if buffer.stopped or cancelled.is_set():
                break
    finally:
        close = getattr(pieces, "close", None)
        if close is not None:
            close()  # frees the engine's generator (and its KV cache) now, not at garbage collection
    usage = Usage(len(prompt), count)
    if buffer.stopped:
        return "stop", usage
    if held := buffer.flush():
        emit(held)
    return ("length" if count >= options.max_new_tokens else "stop"), usage


class OnnxGenAIBackend(Backend):
    """A chat model on onnxruntime-genai, from a model folder or `embedded`.

    `precision` picks the embedded model's conversion (`int4`, the default, or `fp32`; see
    `cosa_guard.onnx_export`) and is ignored for a folder. `threads` is the engine's thread count
    for one generation: 1 by default, the fastest for the embedded model (see docs/backends.md). `workers` and
    `max_queued` (fixed by whichever backend loads the engine first) bound the calls at once.
    `GenerationParams.seed` seeds the engine's sampler for that call.
    """

    def __init__(
        self,
        model: str | Path = EMBEDDED,
        *,
        name: str | None = None,
        precision: str = "int4",
        threads: int = 1,
        workers: int = 1,
        max_queued: int = 8,
        max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
        progress: bool = True,
    ) -> None:
        if workers < 1 or threads < 1 or max_queued < 0:
            raise ValueError("workers and threads must be at least 1, max_queued at least 0")
        self.model = str(model)
        self.name = name or f"onnx:{Path(self.model).name}"
        self.max_new_tokens = max_new_tokens
        self._load_args = (self.model, precision, threads, workers, max_queued, progress)
        self._shared: _Shared | None = None
        self._private = False

    @classmethod
    def from_engine(
        cls, engine: TokenEngine, *, name: str = "onnx:in-memory", workers: int = 1, max_queued: int = 8
    ) -> OnnxGenAIBackend:
        """Wrap an engine already in memory (tests, or one built with other settings)."""
        backend = cls(name=name, workers=workers, max_queued=max_queued)
        executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cosa-guard-in-memory")
        backend._shared = _Shared(engine, executor, workers + max_queued)
        backend._private = True
        return backend

    async def load(self) -> None:
        """Load the engine now (it loads on first use otherwise); the work runs in a thread."""
        await self._engine()

    async def aclose(self) -> None:
        """Release this backend; closing twice is harmless.

        A shared engine stays loaded for the other backends until `clear_engine_cache()`; one
        wrapped by `from_engine` stops its threads (a running generation ends at its next token).
        """
        if self._private and self._shared is not None:
            self._shared.executor.shutdown(wait=False, cancel_futures=True)

    async def _engine(self) -> _Shared:
        if self._shared is None:
            try:
                self._shared = await asyncio.to_thread(_load_shared, *self._load_args)
            # onnxruntime reports a bad model as RuntimeError
            except (OSError, RuntimeError, ValueError) as exc:
                raise BackendError(f"{self.name}: cannot load the model: {exc}") from exc
        return self._shared

    def _options(self, params: GenerationParams) -> DecodeOptions:
        extra = {k: v for k, v in params.extra.items() if k in SEARCH_EXTRAS}
        return DecodeOptions(
            max_new_tokens=params.max_tokens or self.max_new_tokens,
            temperature=params.temperature,
            top_p=params.top_p,
            seed=params.seed,
            **extra,
        )

    def _submit(self, shared: _Shared, work: Callable[[], Any], cancelled: threading.Event) -> Future[Any]:
        """Queue `work` on the engine's threads, within the queue bound; a call cancelled first never runs."""
        shared.admit()

        def guarded() -> Any:
            if cancelled.is_set():  # cancelled after it was queued, before a thread took it
                return "stop", Usage()
            return work()

        try:
            future = shared.executor.submit(guarded)
        except RuntimeError as exc:  # the executor was shut down (aclose, clear_engine_cache)
            shared.release()
            raise BackendError(f"{self.name}: the backend is closed") from exc
        future.add_done_callback(lambda _: shared.release())
        return future

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        shared = await self._engine()
        cancelled = threading.Event()
        pieces: list[str] = []
        options = self._options(params)
        future = self._submit(
            shared,
            lambda: _run_decode(shared.engine, messages, options, params.stop, cancelled, pieces.append),
            cancelled,
        )
        try:
            finish, usage = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            cancelled.set()  # a running decode stops at its next token; a queued one never starts
            future.cancel()
            raise
        except BackendError:
            raise
        except Exception as exc:  # any model failure is a backend failure, never a crash of the guard
            raise BackendError(f"{self.name}: generation failed: {exc}") from exc
        return Completion("".join(pieces), self.name, finish, usage)

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Chunk, None]:
        shared = await self._engine()
        cancelled = threading.Event()
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[str | None] = asyncio.Queue()

        def emit(piece: str | None) -> None:
            try:
                loop.call_soon_threadsafe(queue.put_nowait, piece)
            except RuntimeError:  # the event loop is gone: nobody is reading any more
                cancelled.set()

        options = self._options(params)

        def work() -> tuple[str, Usage]:
            try:
                return _run_decode(shared.engine, messages, options, params.stop, cancelled, emit)
            finally:
                emit(None)  # the end, even of a failed decode: the reader never waits for nothing

        future = self._submit(shared, work, cancelled)
        try:
            while (piece := await queue.get()) is not None:
                yield Chunk(piece)
            try:
                finish, _ = await asyncio.wrap_future(future)
            except BackendError:
                raise
            except Exception as exc:  # any model failure is a backend failure, never a crash of the guard
                raise BackendError(f"{self.name}: generation failed: {exc}") from exc
            yield Chunk("", finish_reason=finish)
        finally:
            cancelled.set()  # no-op after a normal end; stops the thread when the reader left early
            future.cancel()
