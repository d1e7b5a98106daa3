"""The rule judge: the answer is judged against each of the config's rules, and the verdict is
combined in code, with the category judge as the floor under it.

A trained scorer (`cosa_guard.judges.rule_model`) gives, for every rule at once, the probability
that the answer (read with the request as context) does what the rule is about. `decide` then
applies the rules:

- a forbidding rule is *violated* when its score reaches `RuleThresholds.forbids` and no matching
  exception of it (a rule whose `exception_of` is its number) lifts it; an allowing rule *covers*
  the answer when its score reaches `RuleThresholds.allows` and no matching exception narrows it
  away. Exceptions beat the rule they narrow ("violence is allowed, except severed limbs");
- any violated rule refuses the answer, and the verdict names it (`rule_number`, `rule_text`:
  the one scored highest);
- otherwise the category judge is the floor: a category it finds that is neither on the config's
  allow list nor among the categories of a covering rule refuses the answer, and floor categories
  and `other` always do, except that a *weak* `other` (category score below
  `RuleThresholds.weak_other`) is dismissed when an allowing rule covers the answer: the category
  judge calls much allowed content `other` (violence, in 12 of 16 held-out answers that contain
  it), and a covering allows-rule is the stronger evidence of what the content is;
- a *strong* cover (an allowing rule scored above `RuleThresholds.cover_floor`) also dismisses the
  other allowable categories the floor finds (not `other`, not the deployment's floor categories):
  the category judge often adds a second category to allowed content (16 of the 36 allowed
  calibration answers it refused), and a rule that matches the answer that closely says what the
  content is. 1.0 turns it off;
- what is left complies.

`RuleJudge.judge_rules` takes explicit rules; `RuleJudge.judge` (the Judge protocol) takes them from
`config_rules(config)`, which derives them from the text when the config carries no signed rules:
the verdict's reason then says the rules were unreviewed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import JudgeError
from cosa_guard.judges.base import Judge
from cosa_guard.judges.category import CategoryJudge, request_text
from cosa_guard.rules import Rule, config_rules
from cosa_guard.taxonomy import ALLOWABLE_IDS, CATEGORY_IDS, OTHER
from cosa_guard.types import Message, Verdict

if TYPE_CHECKING:
    from cosa_guard.judges.rule_model import RuleScorer

UNREVIEWED_NOTE = "rules derived from the config text at load (unreviewed)"


@dataclass(frozen=True)
class RuleThresholds:
    """Scores at which a rule applies, and the `other` score under which a covering rule wins."""

    forbids: float = 0.5
    allows: float = 0.5
    weak_other: float = 0.0  # 0: `other` is never dismissed
    cover_floor: float = 1.0  # 1.0: a covering rule never dismisses a floor category (scores are <= 1)

    def __post_init__(self) -> None:
        for name in ("forbids", "allows", "weak_other", "cover_floor"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"rule threshold {name} must be in [0, 1], got {value}")

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> RuleThresholds:
        stored = metadata.get("thresholds", {})
        names = ("forbids", "allows", "weak_other", "cover_floor")
        return cls(**{k: float(v) for k, v in stored.items() if k in names})


def in_force(
    rules: Sequence[Rule], scores: Mapping[int, float], thresholds: RuleThresholds
) -> frozenset[int]:
    """The numbers of the rules that apply: matched, and not lifted by a matched exception of theirs."""
    exceptions: dict[int, list[Rule]] = {}
    for rule in rules:
        if rule.exception_of is not None:
            exceptions.setdefault(rule.exception_of, []).append(rule)

    def applies(rule: Rule, seen: frozenset[int]) -> bool:
        limit = thresholds.forbids if rule.polarity == "forbids" else thresholds.allows
        if scores[rule.number] < limit:
            return False
        return not any(
            e.polarity != rule.polarity and e.number not in seen and applies(e, seen | {e.number})
            for e in exceptions.get(rule.number, ())
        )

    return frozenset(r.number for r in rules if applies(r, frozenset({r.number})))


def decide(
    config: SafetyConfig,
    rules: Sequence[Rule],
    rule_scores: Sequence[float],
    category_scores: Mapping[str, float],
    category_thresholds: Mapping[str, float],
    thresholds: RuleThresholds,
    *,
    floor: Iterable[str] = (),
    reviewed: bool = True,
) -> Verdict:
    """The verdict for one answer from its rule scores (aligned with `rules`) and category scores."""
    scores = {r.number: float(s) for r, s in zip(rules, rule_scores, strict=True)}
    applying = in_force(rules, scores, thresholds)
    violated = sorted(
        (r for r in rules if r.polarity == "forbids" and r.number in applying),
        key=lambda r: -scores[r.number],
    )
    covering = sorted(
        (r for r in rules if r.polarity == "allows" and r.number in applying), key=lambda r: -scores[r.number]
    )
    floor_set = frozenset(floor)
    found = {c for c in CATEGORY_IDS if category_scores[c] >= category_thresholds[c]}
    dismissed = OTHER in found and bool(covering) and category_scores[OTHER] < thresholds.weak_other
    if dismissed:
        found.discard(OTHER)
    covered = frozenset(c for r in covering for c in r.categories)
    allowed = (frozenset(config.allow) | covered) - floor_set - {OTHER}
    strong = bool(covering) and scores[covering[0].number] > thresholds.cover_floor
    waived = (found & ALLOWABLE_IDS) - allowed - floor_set if strong else frozenset()
    allowed |= waived
    refused = found - allowed
    lifted = {r.exception_of for r in rules if r.exception_of is not None and r.number in applying}
    open_scores = [scores[r.number] for r in rules if r.polarity == "forbids" and r.number not in lifted]
    open_scores += [
        category_scores[c] for c in CATEGORY_IDS if c not in allowed and not (c == OTHER and dismissed)
    ]
    reasons: list[str] = []
    rule: Rule | None = None
    if violated:
        rule = violated[0]
        reasons.append(f"violates rule {rule.number} (score {scores[rule.number]:.2f})")
    elif refused:
        reasons.append("found " + ", ".join(sorted(found)) + "; not allowed: " + ", ".join(sorted(refused)))
    else:
        if covering:
            rule = covering[0]
            reasons.append(f"covered by rule {rule.number} (score {scores[rule.number]:.2f})")
        reasons.append("found " + ", ".join(sorted(found)) if found else "no risk category found")
        if dismissed:
            reasons.append(f"weak other ({category_scores[OTHER]:.2f}) dismissed by the covering rule")
        if waived:
            reasons.append(", ".join(sorted(waived)) + " dismissed by the strongly covering rule")
    if not rules:
        reasons.append("the config has no rules: categories only")
    if not reviewed:
        reasons.append(UNREVIEWED_NOTE)
    return Verdict(
        categories=frozenset(found),
        complies=not violated and not refused,
        score=max(open_scores, default=0.0),
        reason="; ".join(reasons),
        scores=dict(category_scores),
        judge=RuleJudge.name,
        rule_number=rule.number if rule is not None else None,
        rule_text=rule.text if rule is not None else "",
    )


class RuleJudge(Judge):
    """The Judge protocol over a rule scorer and a category judge (the floor); see the module docstring."""

    name = "rules"

    def __init__(self, scorer: RuleScorer, category: CategoryJudge, thresholds: RuleThresholds) -> None:
        self.scorer = scorer
        self.category = category
        self.thresholds = thresholds

    @classmethod
    def load(
        cls,
        path: str | Path | None = None,
        *,
        category_path: str | Path | None = None,
        floor: Iterable[str] = (),
        int8: bool = True,
    ) -> RuleJudge:
        """The judge from saved weights (default: the rule judge and category judge that ship)."""
        from cosa_guard.judges.rule_model import RuleScorer

        scorer = RuleScorer.load(path, int8=int8)
        category = CategoryJudge.load(category_path, floor=floor, int8=int8)
        return cls(scorer, category, RuleThresholds.from_metadata(scorer.config.metadata))

    async def judge(self, config: SafetyConfig, messages: Sequence[Message], response: str) -> Verdict:
        ruleset = config_rules(config)
        return await self.judge_rules(config, ruleset.rules, messages, response, reviewed=ruleset.reviewed)

    async def judge_rules(
        self,
        config: SafetyConfig,
        rules: Sequence[Rule],
        messages: Sequence[Message],
        response: str,
        *,
        reviewed: bool = True,
    ) -> Verdict:
        """Judge `response` against explicit `rules` (the config supplies the allow list for the floor)."""
        loop = asyncio.get_running_loop()
        request = request_text(messages)
        texts = [r.text for r in rules]
        try:
            rule_scores, category_rows = await asyncio.gather(
                loop.run_in_executor(None, self.scorer.score, texts, request, response),
                loop.run_in_executor(None, self.category.score_pairs, [request], [response]),
            )
        except Exception as exc:  # any scoring failure is a judge failure, never a pass
            raise JudgeError(f"rule judge failed to score the response: {type(exc).__name__}") from exc
        category_scores = category_rows[0] if category_rows else {}
        if len(rule_scores) != len(rules) or not all(0.0 <= s <= 1.0 for s in rule_scores):
            raise JudgeError("rule judge produced no valid score for every rule")
        if any(not 0.0 <= category_scores.get(c, -1.0) <= 1.0 for c in CATEGORY_IDS):
            raise JudgeError("rule judge's category floor produced no valid score")
        return decide(
            config,
            rules,
            rule_scores,
            category_scores,
            self.category.thresholds,
            self.thresholds,
            floor=self.category.floor,
            reviewed=reviewed,
        )
