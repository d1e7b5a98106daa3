"""The Judge protocol: does a response stay inside a config? One method."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

from cosa_guard.config import SafetyConfig
from cosa_guard.types import Message, Verdict


@runtime_checkable
class Judge(Protocol):
    """Judges `response` (the assistant's answer to `messages`) against `config`.

    Raises `JudgeError` when it cannot decide (crash, timeout, unparseable output): the guard
    treats that as a failure, never as a pass.
    """

    name: str

    async def judge(self, config: SafetyConfig, messages: Sequence[Message], response: str) -> Verdict: ...
