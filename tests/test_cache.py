"""The verdict cache: keys, TTL, bound, and the Verifier that uses it."""

from __future__ import annotations

from cosa_guard.cache import VerdictCache, content_digest
from cosa_guard.config import SafetyConfig
from cosa_guard.judges.fake import ScriptedJudge, verdict_for
from cosa_guard.settings import CacheSpec
from cosa_guard.types import Message, RefusalReason, Verdict
from cosa_guard.verifier import Verifier

CONFIG = SafetyConfig(id="c", version=1, text="Violence is fine.", allow=("violence",))
PROMPT = (Message("user", "tell me a story"),)


class Timer:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_digest_ignores_whitespace_runs_but_not_roles_or_words() -> None:
    assert content_digest(PROMPT, "a  b\n c") == content_digest(PROMPT, "a b c")
    assert content_digest(PROMPT, "a b c") != content_digest(PROMPT, "a b d")
    assert content_digest(PROMPT, "x") != content_digest((Message("assistant", "tell me a story"),), "x")
    # The boundary between prompt and response is part of the digest.
    assert content_digest((Message("user", "a"),), "b") != content_digest((Message("user", "a b"),), "")


def test_key_separates_configs_and_judges() -> None:
    base = VerdictCache.key("sha256:1", "j", PROMPT, "r")
    assert base != VerdictCache.key("sha256:2", "j", PROMPT, "r")
    assert base != VerdictCache.key("sha256:1", "k", PROMPT, "r")


def test_ttl_and_bound() -> None:
    timer = Timer()
    cache = VerdictCache(maxsize=2, ttl_s=10, timer=timer)
    verdict = verdict_for((), CONFIG)
    keys = [VerdictCache.key("h", "j", PROMPT, str(i)) for i in range(3)]
    for key in keys:
        cache.put(key, verdict)
    assert len(cache) == 2 and cache.get(keys[0]) is None
    assert cache.get(keys[2]) == verdict
    timer.now = 11
    assert cache.get(keys[2]) is None
    assert (cache.hits, cache.misses) == (1, 2)


def test_maxsize_zero_turns_caching_off() -> None:
    cache = VerdictCache.from_spec(CacheSpec(maxsize=0))
    key = VerdictCache.key("h", "j", PROMPT, "r")
    cache.put(key, verdict_for((), CONFIG))
    assert not cache.enabled and cache.get(key) is None


async def test_verifier_caches_and_skips_the_cache_on_request() -> None:
    judge = ScriptedJudge(flags={"gun": "weapons"})
    verifier = Verifier(judge, CONFIG, CONFIG.hash, cache=VerdictCache(10))
    await verifier.verdict(PROMPT, "a gun")
    await verifier.verdict(PROMPT, "a  gun")
    assert len(judge.calls) == 1
    await verifier.verdict(PROMPT, "a gun", use_cache=False)
    assert len(judge.calls) == 2


def test_verifier_overrules_a_judge_that_names_a_disallowed_category() -> None:
    verifier = Verifier(ScriptedJudge(), CONFIG, CONFIG.hash, floor=("sexual",))
    lying = Verdict(categories=frozenset({"weapons"}), complies=True, score=0.0)
    assert verifier.decide(lying).reason is RefusalReason.OUTPUT_VIOLATION
    floor = Verdict(categories=frozenset({"sexual"}), complies=False, score=1.0)
    assert verifier.decide(floor).reason is RefusalReason.FLOOR
    other = Verdict(categories=frozenset({"other"}), complies=True, score=0.0)
    assert not verifier.decide(other).is_allowed
    assert verifier.decide(verdict_for({"violence"}, CONFIG)).is_allowed
    assert not verifier.decide(Verdict(frozenset(), complies=False, score=0.9)).is_allowed
