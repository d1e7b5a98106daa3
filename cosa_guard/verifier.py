"""Judging a response against a deployment's config and turning the verdict into a decision.

The cascade route (generate with the config in the system prompt, judge, refuse on violation)
and the optional defence-in-depth judging of CoSAlign answers both go through `Verifier`: it asks
the judge (through the verdict cache) and applies the deployment's own rules on top of the
judge's `complies`, so a judge that says "complies" while naming a disallowed category is still
overruled, and a floor category is always refused.
"""

from __future__ import annotations

from collections.abc import Sequence

from cosa_guard.cache import VerdictCache
from cosa_guard.config import SafetyConfig
from cosa_guard.judges.base import Judge
from cosa_guard.taxonomy import OTHER
from cosa_guard.types import Decision, Message, RefusalReason, Verdict

ALLOWED = Decision.allowed()


class Verifier:
    """One deployment's judge, verdict cache and rules (allowed categories, floor)."""

    __slots__ = ("allowed", "cache", "config", "config_hash", "floor", "judge")

    def __init__(
        self,
        judge: Judge,
        config: SafetyConfig,
        config_hash: str,
        *,
        floor: Sequence[str] = (),
        cache: VerdictCache | None = None,
    ) -> None:
        self.judge = judge
        self.config = config
        self.config_hash = config_hash
        self.floor = frozenset(floor)
        # A floor category stays disallowed even if a config somehow lists it; `other` never is.
        self.allowed = frozenset(config.allow) - self.floor - {OTHER}
        self.cache = cache if cache is not None else VerdictCache(0)

    async def verdict(self, messages: Sequence[Message], response: str, *, use_cache: bool = True) -> Verdict:
        """The judge's verdict on `response`; raises whatever the judge raises (the guard fails closed)."""
        if not use_cache or not self.cache.enabled:
            return await self.judge.judge(self.config, messages, response)
        key = VerdictCache.key(self.config_hash, self.judge.name, messages, response)
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        verdict = await self.judge.judge(self.config, messages, response)
        self.cache.put(key, verdict)
        return verdict

    def decide(self, verdict: Verdict) -> Decision:
        floor_hit = verdict.categories & self.floor
        if floor_hit:
            return Decision.refused(RefusalReason.FLOOR, ",".join(sorted(floor_hit)))
        disallowed = verdict.categories - self.allowed
        if disallowed or not verdict.complies:
            detail = ",".join(sorted(disallowed)) or verdict.reason or "judge: violates the config"
            return Decision.refused(RefusalReason.OUTPUT_VIOLATION, detail)
        return ALLOWED
