"""The Backend protocol: a chat model the guard can call. Two methods and a way to let go."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from cosa_guard.types import Chunk, Completion, GenerationParams, Message


@runtime_checkable
class Backend(Protocol):
    """A chat model. `name` identifies the model in audit records and cache keys.

    Implementations raise `BackendError` (or `BackendTimeoutError`) on failure; the guard turns
    that into a typed `failed` decision. Deadlines are enforced by the guard, so a backend need
    not implement its own, but it must be cancellable. `params.stop` cuts the answer before the
    first stop string, in `generate` and in `stream`, and no streamed chunk ever holds any part of
    one. `aclose` releases connections and threads; closing twice is harmless. Every backend here
    passes the contract suite in tests/_backend_contract.py.
    """

    name: str

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion: ...

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> AsyncIterator[Chunk]: ...

    async def aclose(self) -> None: ...


@runtime_checkable
class LogprobBackend(Protocol):
    """Optional capability: the log-probabilities of candidate first tokens, from one forward pass.

    Judges check for it with `isinstance(backend, LogprobBackend)` and score from probabilities
    when it is there, parsing generated text otherwise. Candidates the model gives no probability
    are left out of the returned mapping.
    """

    async def next_token_logprobs(
        self, messages: Sequence[Message], candidates: Sequence[str]
    ) -> Mapping[str, float]: ...
