"""A Hugging Face model in this process as a `cosa_guard` Backend, for smoke tests and CPU demos.

Generation runs in a worker thread (`asyncio.to_thread`), one call at a time: a model's forward
pass is not safe to run concurrently. Real data runs use a vLLM or OpenAI-compatible server instead.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from cosa_guard.errors import BackendError
from cosa_guard.types import Chunk, Completion, GenerationParams, Message, Usage


class LocalBackend:
    """`model` and `tokenizer` already loaded (a tiny test model, a trained export, the embedded model)."""

    def __init__(self, model: Any, tokenizer: Any, *, name: str = "local") -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.name = name
        self._lock = asyncio.Lock()

    @classmethod
    def from_dir(cls, path: str | Path, *, name: str | None = None) -> LocalBackend:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(str(path))
        model.train(False)
        return cls(model, AutoTokenizer.from_pretrained(str(path)), name=name or f"local:{Path(path).name}")

    def _generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        import torch

        ids = self.tokenizer.apply_chat_template(
            [m.to_dict() for m in messages], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        sample = bool(params.temperature)
        kwargs: dict[str, Any] = {"max_new_tokens": params.max_tokens or 128, "do_sample": sample}
        if sample:
            kwargs |= {"temperature": params.temperature, "top_p": params.top_p or 1.0}
        if params.seed is not None:
            torch.manual_seed(params.seed)
        with torch.no_grad():
            out = self.model.generate(**ids, pad_token_id=self.tokenizer.pad_token_id, **kwargs)
        new = out[0, ids["input_ids"].shape[1] :]
        text = self.tokenizer.decode(new, skip_special_tokens=True)
        usage = Usage(prompt_tokens=int(ids["input_ids"].shape[1]), completion_tokens=int(new.shape[0]))
        return Completion(text=text, model=self.name, usage=usage)

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion:
        async with self._lock:
            try:
                return await asyncio.to_thread(self._generate, messages, params)
            except (RuntimeError, ValueError) as exc:
                raise BackendError(f"{self.name}: generation failed: {exc}") from exc

    async def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[Chunk]:
        completion = await self.generate(messages, params)
        yield Chunk(completion.text)
        yield Chunk("", finish_reason="stop")
