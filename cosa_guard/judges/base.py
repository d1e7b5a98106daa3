"""The Judge protocol: does a response stay inside a config? One method and a way to let go."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cosa_guard.config import SafetyConfig
from cosa_guard.types import Message, Verdict


@runtime_checkable
class Judge(Protocol):
    """Judges `response` (the assistant's answer to `messages`) against `config`.

    Raises `JudgeError` when it cannot decide (crash, timeout, unparseable output): the guard
    treats that as a failure, never as a pass. `aclose` releases what the judge holds (a model
    backend, threads); closing twice is harmless. Subclass `Judge` to inherit its no-op `aclose`.
    Every judge here passes the contract suite `cosa_guard.testing.contract.JudgeContract`.
    """

    name: str

    async def judge(self, config: SafetyConfig, messages: Sequence[Message], response: str) -> Verdict: ...

    async def aclose(self) -> None:
        """Release what the judge holds; the default holds nothing."""
        return None
