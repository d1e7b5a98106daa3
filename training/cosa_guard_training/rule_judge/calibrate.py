"""Calibrate on realistic rules: the `forbids` cap on real configs, and `weak_other`.

`cap_forbids_on_demos`: the rules training sees are short templates, real configs' rules are long
policy sentences (`cosa_guard.rules.derive_rules` on the five CoSApien configs in
../shared/data/cosa_configs), which the scorer matches more loosely. The 25 CoSApien
demonstration answers are all compliant with their scenario's config, so the `forbids` threshold
is raised until at most `MAX_DEMO_REFUSED` of them have a forbidding rule matched.

`calibrate_weak_other`: when does a covering allows-rule outvote the category judge's `other`?

The category judge calls much allowed content `other`, which no config may allow, so a config
that unlocks a category still has its answers refused. On held-out answers only, this builds
5-rule configs of two kinds and runs the full decision (`cosa_guard.judges.rules.decide`) for
each candidate value:

- *allowed inside*: an answer of a held-out subject in category C, under a config that allows C
  and has an allows-rule about the answer's subject (or a parent of it) plus forbids-rules about
  unrelated subjects: it should comply;
- *other*: an answer of a held-out subject that is in no allowable category (malware, fake news,
  gambling...), under a config that allows an unrelated category with an allows-rule about an
  unrelated subject: it should be refused (only a spurious cover would let it through).

The chosen value is the one with the best accuracy over both (ties: the lower, which dismisses
less). Caveat recorded with the result: the category judge was trained on some of the same real
answers (its own split), so its `other` scores here are as confident as they get.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosa_guard.config import SafetyConfig
from cosa_guard.judges.category import CategoryJudge
from cosa_guard.judges.rule_model import RuleScorer
from cosa_guard.judges.rules import RuleThresholds, decide
from cosa_guard.rules import Rule, derive_rules
from cosa_guard.taxonomy import ALLOWABLE_IDS
from cosa_guard_training.rule_judge.corpus import Answer, Inventory
from cosa_guard_training.rule_judge.templates import rule_text

MAX_DEMO_REFUSED = 0.10
CANDIDATES = (0.0, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.95, 1.0)
MAX_CASES = 240  # per kind: scoring runs both models per answer


@dataclass(frozen=True)
class Case:
    config: SafetyConfig
    rules: tuple[Rule, ...]
    answer: Answer
    should_comply: bool


def _narrow(inv: Inventory, answer: Answer) -> str | None:
    return next((t for t in sorted(answer.tags) if t not in inv.broad and t in inv.by_id), None)


def build_cases(inv: Inventory, answers: Sequence[Answer], seed: int) -> list[Case]:
    rng = random.Random(seed + 2)
    pool = [s for s in inv.by_id.values() if s.phrases and inv.split_of(s.id) in (None, "val")]
    inside, other = [], []
    for answer in answers:
        sid = _narrow(inv, answer)
        if sid is None or answer.kind not in ("synthetic", "jailbroken", "partial"):
            continue
        category = inv.by_id[sid].category
        unrelated = [s for s in pool if s.id not in answer.tags and s.category != category]
        distractors = [
            Rule(
                number=i + 2,
                text=rule_text(rng, rng.choice(s.phrases), True, "forbids")[0],
                polarity="forbids",
                categories=(s.category,) if s.category in ALLOWABLE_IDS else (),
            )
            for i, s in enumerate(rng.sample(unrelated, 4))
        ]
        if category in ALLOWABLE_IDS:
            about = inv.by_id[
                rng.choice([t for t in sorted(answer.tags) if t in inv.by_id and inv.by_id[t].phrases])
            ]
            allow = Rule(
                number=1,
                text=rule_text(rng, rng.choice(about.phrases), True, "allows")[0],
                polarity="allows",
                categories=(category,),
            )
            config = SafetyConfig(id="cal", version=1, text="calibration", allow=(category,))
            inside.append(Case(config, (allow, *distractors), answer, True))
        elif category == "other":
            cover = rng.choice([s for s in unrelated if s.category in ALLOWABLE_IDS])
            allow = Rule(
                number=1,
                text=rule_text(rng, rng.choice(cover.phrases), True, "allows")[0],
                polarity="allows",
                categories=(cover.category,),
            )
            config = SafetyConfig(id="cal", version=1, text="calibration", allow=(cover.category,))
            other.append(Case(config, (allow, *distractors), answer, False))
    rng.shuffle(inside)
    rng.shuffle(other)
    return inside[:MAX_CASES] + other[:MAX_CASES]


def calibrate_weak_other(
    scorer: RuleScorer,
    inv: Inventory,
    val_answers: Sequence[Answer],
    thresholds: dict[str, float],
    seed: int,
    category: CategoryJudge | None = None,
) -> tuple[float, dict[str, Any]]:
    """The chosen `weak_other` and the figures behind it (accuracy per candidate, per kind)."""
    judge = category if category is not None else CategoryJudge.load()
    cases = build_cases(inv, val_answers, seed)
    scored = []
    for case in cases:
        rule_scores = scorer.score([r.text for r in case.rules], case.answer.request, case.answer.response)
        category_scores = judge.score_each([case.answer.request], [case.answer.response])[0]
        scored.append((case, rule_scores, category_scores))
    table: dict[str, Any] = {}
    for value in CANDIDATES:
        limits = RuleThresholds(thresholds["forbids"], thresholds["allows"], value)
        right = {True: 0, False: 0}
        for case, rule_scores, category_scores in scored:
            verdict = decide(case.config, case.rules, rule_scores, category_scores, judge.thresholds, limits)
            right[case.should_comply] += verdict.complies == case.should_comply
        n_in = sum(1 for c in cases if c.should_comply)
        n_other = len(cases) - n_in
        table[str(value)] = {
            "accuracy": round((right[True] + right[False]) / max(len(cases), 1), 4),
            "allowed_inside_refused": round(1 - right[True] / max(n_in, 1), 4),
            "other_let_through": round(1 - right[False] / max(n_other, 1), 4),
        }
    best = max(CANDIDATES, key=lambda v: (table[str(v)]["accuracy"], -v))
    return best, {
        "cases": len(cases),
        "allowed_inside": sum(1 for c in cases if c.should_comply),
        "candidates": table,
        "caveat": "the category judge saw some of these real answers in its own training",
    }


def cap_forbids_on_demos(scorer: RuleScorer, data_dir: Path, forbids: float) -> tuple[float, dict[str, Any]]:
    """`forbids`, raised (0.01 steps) until at most MAX_DEMO_REFUSED of the CoSApien demonstration
    answers match a forbidding rule of their config; the figures behind it."""
    folder = data_dir / "cosa_configs"
    configs = {}
    with (folder / "cosapien_scenario_configs.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            configs[row["scenario"]] = derive_rules(row["config_text"])
    worst = []  # per demo, its highest forbidding-rule score
    with (folder / "cosapien_5shot_demos.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            demo = json.loads(line)
            texts = [r.text for r in configs[demo["scenario"]] if r.polarity == "forbids"]
            worst.append(max(scorer.score(texts, demo["user"], demo["assistant"]), default=0.0))

    def refused(t: float) -> float:
        return sum(1 for w in worst if w >= t) / max(len(worst), 1)

    chosen = forbids
    while refused(chosen) > MAX_DEMO_REFUSED and chosen < 0.99:
        chosen = round(chosen + 0.01, 2)
    return chosen, {
        "demos": len(worst),
        "refused_at_pair_threshold": round(refused(forbids), 4),
        "pair_threshold": forbids,
        "refused_at_chosen": round(refused(chosen), 4),
    }
