"""The Backend protocol: a chat model the guard can call. Two methods and a way to let go."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from cosa_guard.types import Chunk, Completion, GenerationParams, Message


@runtime_checkable
class Backend(Protocol):
    """A chat model. `name` identifies the model in audit records and cache keys.

    Implementations raise `BackendError` (or `BackendTimeoutError`) on failure; the guard turns
    that into a typed `failed` decision. Deadlines are enforced by the guard, so a backend need
    not implement its own, but it must be cancellable. `params.stop` cuts the answer before the
    first stop string, in `generate` and in `stream`, and no streamed chunk ever holds any part of
    one. `stream` is an async generator: closing it stops the generation. `aclose` releases
    connections and threads; closing twice is harmless. Subclass `Backend` to inherit its no-op
    `aclose`. Every backend here passes the contract suite `cosa_guard.testing.contract.BackendContract`.
    """

    name: str

    async def generate(self, messages: Sequence[Message], params: GenerationParams) -> Completion: ...

    def stream(
        self, messages: Sequence[Message], params: GenerationParams
    ) -> AsyncGenerator[Chunk, None]: ...

    async def aclose(self) -> None:
        """Release what the backend holds; the default holds nothing."""
        return None


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


@runtime_checkable
class Preloadable(Protocol):
    """Optional capability: a backend that loads its model lazily and can be told to load it now.

    `Guard.warm_up` loads such backends before the first call (the server before it reports ready).
    """

    async def load(self) -> None: ...
