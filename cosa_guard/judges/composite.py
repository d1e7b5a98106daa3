"""Several judges as one: any violation wins.

Members run concurrently. The verdict's categories are the union of the members', `complies` is
true only if every member says so, and the score is the highest. A member that fails makes the
whole verdict a `JudgeError` (the guard fails closed), unless another member already found a
violation, or `tolerate_failures` is set and at least one member answered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import JudgeError
from cosa_guard.judges.base import Judge
from cosa_guard.types import Message, Verdict


class CompositeJudge(Judge):
    def __init__(self, judges: Iterable[Judge], *, tolerate_failures: bool = False, name: str | None = None):
        self.judges = tuple(judges)
        if not self.judges:
            raise ValueError("CompositeJudge needs at least one judge")
        self.tolerate_failures = tolerate_failures
        self.name = name or "composite(" + ",".join(j.name for j in self.judges) + ")"

    async def judge(self, config: SafetyConfig, messages: Sequence[Message], response: str) -> Verdict:
        results = await asyncio.gather(
            *(j.judge(config, messages, response) for j in self.judges), return_exceptions=True
        )
        verdicts = [r for r in results if isinstance(r, Verdict)]
        failures = [
            (j.name, r) for j, r in zip(self.judges, results, strict=True) if not isinstance(r, Verdict)
        ]
        for _, failure in failures:
            if not isinstance(failure, Exception):
                raise failure  # cancellation and the like are not judge outcomes
        violating = [v for v in verdicts if not v.complies]
        if failures and not violating and not (self.tolerate_failures and verdicts):
            detail = "; ".join(f"{name}: {exc!r}" for name, exc in failures)
            raise JudgeError(f"{self.name}: {len(failures)} of {len(self.judges)} judges failed: {detail}")
        reasons = [f"{v.judge or 'judge'}: {v.reason}" for v in (violating or verdicts) if v.reason]
        scores: dict[str, float] = {}
        for v in verdicts:
            for category, score in v.scores.items():
                scores[category] = max(score, scores.get(category, 0.0))
        return Verdict(
            categories=frozenset().union(*(v.categories for v in verdicts)),
            complies=not violating,
            score=max(v.score for v in verdicts),
            reason="; ".join(reasons),
            scores=scores,
            judge=self.name,
        )

    async def aclose(self) -> None:
        for judge in self.judges:
            await judge.aclose()
