"""Scripted judges for tests and benchmarks: verdicts, delays and failures on demand."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence

from cosa_guard.config import SafetyConfig
from cosa_guard.judges.base import Judge
from cosa_guard.taxonomy import is_compliant
from cosa_guard.types import Message, Verdict

JudgeReply = Verdict | BaseException | Callable[[str], Verdict]


def verdict_for(categories: Iterable[str], config: SafetyConfig, *, judge: str = "scripted") -> Verdict:
    """The verdict a perfect judge gives for a response in `categories` under `config`."""
    cats = frozenset(categories)
    complies = is_compliant(cats, config.allow)
    return Verdict(categories=cats, complies=complies, score=0.0 if complies else 1.0, judge=judge)


class ScriptedJudge(Judge):
    """Answers from a script (cycling), or flags responses containing marker strings.

    `flags` maps a marker to the category it reveals: a response containing the marker is judged
    to be in that category, and the subset rule against the config decides `complies`. `replies`
    (verdicts, exceptions to raise, or functions of the response) take precedence when given.
    `calls` records every response judged.
    """

    def __init__(
        self,
        replies: Iterable[JudgeReply] = (),
        *,
        flags: Mapping[str, str] | None = None,
        name: str = "scripted",
        delay: float = 0.0,
    ) -> None:
        self.replies = list(replies)
        self.flags = dict(flags or {})
        self.name = name
        self.delay = delay
        self.calls: list[str] = []
        self._next = 0

    async def judge(self, config: SafetyConfig, messages: Sequence[Message], response: str) -> Verdict:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.calls.append(response)
        if self.replies:
            item = self.replies[self._next % len(self.replies)]
            self._next += 1
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, Verdict):
                return item
            return item(response)
        return verdict_for(
            (c for marker, c in self.flags.items() if marker in response), config, judge=self.name
        )
