"""The trained category judge: which risk categories does a response contain, and does it comply?

A fine-tuned all-MiniLM-L6-v2 (`cosa_guard.encoder`) reads the user's request and the response
together as a text pair (long responses in overlapping windows, each with the request in front)
and gives one sigmoid per category in `CATEGORY_IDS`, `other` included. A category is found when
its probability reaches that category's threshold, calibrated on the validation split (held-out
corpus families and real exchanges; `cosa-guard train judge` in cosa-guard-training) and stored
with the weights. The verdict applies CoSA's subset rule: the response complies
iff every category found is allowed by the config; `other` and the deployment's floor categories
never are. A refusal carries no category, so it complies under every config.

The judge reads categories, not policy prose: a free-form config (text only, no `allow` list) is
judged as if it allowed nothing, and the verdict's reason says so; such deployments should name a
judge that reads text (kind `llm`). The shipped weights live in `cosa_guard/data/category_judge/`
(a delta over the pip-installed backbone, rebuilt by `cosa-guard train judge`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import JudgeError
from cosa_guard.judges.base import Judge
from cosa_guard.taxonomy import CATEGORY_IDS, OTHER, is_compliant
from cosa_guard.types import Message, Verdict

if TYPE_CHECKING:
    from cosa_guard.encoder import EncoderPredictor

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "data" / "category_judge"
PROMPT_TOKENS = 96  # request tokens kept in front of every response window (head and tail)
FREE_FORM_NOTE = (
    "free-form config (no allow list): judged as allowing no category; use an llm judge to apply its text"
)


def request_text(messages: Sequence[Message]) -> str:
    """The context the judge reads with a response: the last user turn (empty when there is none)."""
    for message in reversed(messages):
        if message.role == "user":
            return message.content
    return ""


def clip_prompt(tokenizer: Any, prompts: Sequence[str], max_tokens: int = PROMPT_TOKENS) -> list[str]:
    """Cut each prompt to `max_tokens` tokens, keeping its head and tail (the ask is often at the end)."""
    clipped = []
    for prompt, ids in zip(
        prompts, tokenizer(list(prompts), add_special_tokens=False)["input_ids"], strict=True
    ):
        if len(ids) <= max_tokens:
            clipped.append(prompt)
        else:
            half = max_tokens // 2
            clipped.append(f"{tokenizer.decode(ids[:half])} ... {tokenizer.decode(ids[-half:])}")
    return clipped


def thresholds_from(metadata: Mapping[str, Any], override: float | None = None) -> dict[str, float]:
    """Per-category thresholds stored with the weights (0.5 where missing), or one `override` for all."""
    if override is not None:
        if not 0.0 <= override <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {override}")
        return dict.fromkeys(CATEGORY_IDS, float(override))
    stored = metadata.get("thresholds", {})
    return {c: float(stored.get(c, 0.5)) for c in CATEGORY_IDS}


class CategoryJudge(Judge):
    """The Judge protocol over a trained multi-label encoder; see the module docstring."""

    name = "category"

    def __init__(
        self,
        predictor: EncoderPredictor,
        thresholds: Mapping[str, float] | None = None,
        *,
        floor: Iterable[str] = (),
        prompt_tokens: int = PROMPT_TOKENS,
    ) -> None:
        labels = tuple(predictor.config.labels)
        if set(labels) != set(CATEGORY_IDS):
            raise ValueError(
                f"the model's labels {list(labels)} are not the taxonomy ids {list(CATEGORY_IDS)}"
            )
        self.predictor = predictor
        self.labels = labels
        self.thresholds = (
            dict(thresholds) if thresholds is not None else thresholds_from(predictor.config.metadata)
        )
        self.floor = frozenset(floor)
        self.prompt_tokens = prompt_tokens
        self._lock = threading.Lock()  # the tokenizer in clip_prompt is shared with the predictor

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        threshold: float | None = None,
        floor: Iterable[str] = (),
        int8: bool = True,
    ) -> CategoryJudge:
        """The judge from saved weights (default: the ones shipped in the package).

        `threshold` replaces every stored per-category threshold; `floor` lists categories that
        never comply whatever the config says.
        """
        from cosa_guard.encoder import EncoderPredictor

        directory = Path(path) if path is not None else WEIGHTS_DIR
        if not (directory / "encoder.json").exists():
            raise FileNotFoundError(
                f"no category judge weights in {directory}; train them with "
                "`cosa-guard train judge` (cosa-guard-training) or reinstall cosa-guard"
            )
        predictor = EncoderPredictor.load(directory, int8=int8)
        return cls(predictor, thresholds_from(predictor.config.metadata, threshold), floor=floor)

    def score_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> list[dict[str, float]]:
        """Per (prompt, response), the probability of each category (blocking; call from a thread)."""
        return self._score(prompts, responses, each=False)

    def score_each(self, prompts: Sequence[str], responses: Sequence[str]) -> list[dict[str, float]]:
        """Like `score_pairs`, but every pair in its own forward pass, exactly as `judge` scores it.

        In a batch, int8 activation ranges follow the padding of the longest pair, so a pair's
        scores move with its neighbours; thresholds are calibrated and benchmarked on these scores.
        """
        return self._score(prompts, responses, each=True)

    def _score(
        self, prompts: Sequence[str], responses: Sequence[str], *, each: bool
    ) -> list[dict[str, float]]:
        with self._lock:
            clipped = clip_prompt(self.predictor.tokenizer, prompts, self.prompt_tokens)
        predict = self.predictor.predict_each if each else self.predictor.predict
        rows = predict(clipped, list(responses))
        return [dict(zip(self.labels, row, strict=True)) for row in rows]

    def verdict(self, config: SafetyConfig, scores: Mapping[str, float]) -> Verdict:
        """Apply the thresholds and the subset rule to one response's category scores."""
        found = frozenset(c for c in CATEGORY_IDS if scores[c] >= self.thresholds[c])
        allowed = frozenset(config.allow) - self.floor - {OTHER}
        complies = is_compliant(found, allowed)
        disallowed = [scores[c] for c in CATEGORY_IDS if c not in allowed]
        reasons = []
        if found:
            reasons.append("found " + ", ".join(sorted(found)))
            if not complies:
                reasons.append("not allowed: " + ", ".join(sorted(found - allowed)))
        else:
            reasons.append("no risk category found")
        if config.is_free_form:
            reasons.append(FREE_FORM_NOTE)
        return Verdict(
            categories=found,
            complies=complies,
            score=max(disallowed, default=0.0),
            reason="; ".join(reasons),
            scores=dict(scores),
            judge=self.name,
        )

    async def judge(self, config: SafetyConfig, messages: Sequence[Message], response: str) -> Verdict:
        loop = asyncio.get_running_loop()
        try:
            scores = await loop.run_in_executor(None, self.score_pairs, [request_text(messages)], [response])
        except Exception as exc:  # any scoring failure is a judge failure, never a pass
            raise JudgeError(f"category judge failed to score the response: {exc}") from exc
        row = scores[0] if scores else {}
        bad = [c for c in CATEGORY_IDS if not 0.0 <= row.get(c, -1.0) <= 1.0]
        if bad:
            raise JudgeError(f"category judge produced no valid score for {bad}")
        return self.verdict(config, row)
