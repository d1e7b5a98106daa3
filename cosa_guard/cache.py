"""A bounded TTL cache of judge verdicts.

The key is (config hash, judge name, digest of the normalised prompt and response): a verdict is
reused only for the same config, the same judge and the same text up to whitespace. The guard
runs on one event loop and neither `get` nor `put` awaits, so no lock is needed.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence

from cachetools import TTLCache

from cosa_guard.settings import CacheSpec
from cosa_guard.types import Message, Verdict

CacheKey = tuple[str, str, bytes]


def normalise(text: str) -> str:
    """Whitespace-insensitive form: the judge's answer does not depend on runs of spaces or newlines."""
    return " ".join(text.split())


def content_digest(messages: Sequence[Message], response: str) -> bytes:
    h = hashlib.blake2b(digest_size=16)
    for m in messages:
        h.update(m.role.encode())
        h.update(b"\x1f")
        h.update(normalise(m.content).encode("utf-8", "surrogatepass"))
        h.update(b"\x1e")
    h.update(b"\x1d")
    h.update(normalise(response).encode("utf-8", "surrogatepass"))
    return h.digest()


class VerdictCache:
    """Verdicts by (config hash, judge, content). `maxsize=0` turns caching off."""

    __slots__ = ("_cache", "hits", "misses")

    def __init__(
        self, maxsize: int = 10_000, ttl_s: float = 600.0, *, timer: Callable[[], float] = time.monotonic
    ) -> None:
        self._cache: TTLCache[CacheKey, Verdict] | None = (
            TTLCache(maxsize=maxsize, ttl=ttl_s, timer=timer) if maxsize > 0 else None
        )
        self.hits = 0
        self.misses = 0

    @classmethod
    def from_spec(cls, spec: CacheSpec) -> VerdictCache:
        return cls(spec.maxsize, spec.ttl_s)

    @staticmethod
    def key(config_hash: str, judge_name: str, messages: Sequence[Message], response: str) -> CacheKey:
        return (config_hash, judge_name, content_digest(messages, response))

    @property
    def enabled(self) -> bool:
        return self._cache is not None

    def get(self, key: CacheKey) -> Verdict | None:
        if self._cache is None:
            return None
        verdict = self._cache.get(key)
        if verdict is None:
            self.misses += 1
        else:
            self.hits += 1
        return verdict

    def put(self, key: CacheKey, verdict: Verdict) -> None:
        if self._cache is not None:
            self._cache[key] = verdict

    def __len__(self) -> int:
        return 0 if self._cache is None else len(self._cache)
