"""The paper's error score and pairing rule, checked by hand against its worked example."""

from __future__ import annotations

from cosa_guard_training.pairs import Label, build_pairs, error_score, ranked_pairs
from cosa_guard_training.synth import ConfigRow

SEEN = ("discrimination", "financial_crime", "privacy", "violence")

A = Label(("violence",), True)  # helpful, with violence
B = Label((), False)  # refusal
C = Label(("privacy", "violence"), True)  # helpful, violence + privacy
D = Label((), True)  # helpful and harmless


def test_scores_of_the_papers_worked_example() -> None:
    allow = ("violence",)
    assert [error_score(x, allow, SEEN) for x in (A, B, C, D)] == [0.1, 1.0, 3.1, 0.0]


def test_worked_example_yields_exactly_the_six_pairs() -> None:
    groups = {A: ["a"], B: ["b"], C: ["c"], D: ["d"]}
    got = {(chosen, rejected) for chosen, _, rejected, _ in ranked_pairs(groups, ("violence",), SEEN)}
    assert got == {(D, A), (D, B), (D, C), (A, B), (A, C), (B, C)}


def test_each_distinct_category_counts_once_and_refusal_adds_one() -> None:
    allow = ("violence", "privacy")
    # refused, yet leaks two allowed harms: 1 + 0.1 + 0.1
    assert error_score(Label(("privacy", "violence"), False), allow, SEEN) == 1.2
    # two disallowed: 3 + 3, one allowed: 0.1
    assert error_score(Label(("discrimination", "financial_crime", "violence"), True), allow, SEEN) == 6.1


def test_categories_outside_training_set_count_as_other_even_when_allowed() -> None:
    # `drugs` is held out: it maps to `other`, which no config can allow (3 points, not 0.1).
    assert error_score(Label(("drugs",), True), ("drugs", "violence"), SEEN) == 3.0
    # two held-out categories collapse into one `other`
    assert error_score(Label(("drugs", "weapons"), True), (), SEEN) == 3.0
    assert error_score(Label(("other",), True), ("violence",), SEEN) == 3.0


def test_equal_scores_do_not_pair_and_chosen_at_three_or_more_is_skipped() -> None:
    x = Label(("discrimination",), True)  # 3 under a safe config
    y = Label(("drugs",), True)  # 3 as well (other)
    z = Label(("discrimination", "privacy"), True)  # 6
    refusal, harmless = Label((), False), Label((), True)
    pairs = list(ranked_pairs({x: ["x"], y: ["y"], z: ["z"], refusal: ["r"], harmless: ["h"]}, (), SEEN))
    chosen_scores = [c for _, c, _, _ in pairs]
    assert all(c < 30 for c in chosen_scores)
    assert (x, y) not in {(c, r) for c, _, r, _ in pairs} and (y, x) not in {(c, r) for c, _, r, _ in pairs}
    # harmless beats the 4 others, refusal beats the 3 harmful ones; x/y never beat z (chosen ≥ 3)
    assert len(pairs) == 4 + 3


def _config(prompt: str, spec_i: tuple[str, ...], key: str) -> ConfigRow:
    return ConfigRow(key, prompt, ("violence",), spec_i, "superset", 0, f"system for {spec_i}")


def test_build_pairs_pools_a_prompts_responses_across_its_configs() -> None:
    labelled = [
        {"prompt": "p", "categories": ["violence"], "addressed": True, "response": "violent answer"},
        {"prompt": "p", "categories": [], "addressed": False, "response": "refusal"},
        {"prompt": "other prompt", "categories": [], "addressed": True, "response": "unrelated"},
    ]
    allows = _config("p", ("violence",), "k1")
    safe = _config("p", (), "k2")
    rows = list(build_pairs([allows, safe], labelled, train_categories=SEEN))
    by_key = {r["key"]: r for r in rows}
    assert len(rows) == 2
    # Under a config that allows violence the violent answer (0.1) beats the refusal (1.0) ...
    assert by_key["k1"]["chosen_response"] == "violent answer"
    assert by_key["k1"]["chosen_category_error_score"] == 0.1
    # ... and under a safe config the refusal (1.0) beats it (3.0).
    assert by_key["k2"]["chosen_response"] == "refusal"
    assert by_key["k2"]["rejected_category_error_score"] == 3.0
    assert by_key["k2"]["system_prompt"] == "system for ()"
    assert by_key["k2"]["chosen_cat"] == "(--, 0)"
    assert set(rows[0]) >= {
        "system_prompt",
        "prompt",
        "chosen_response",
        "rejected_response",
        "spec_i",
        "spec_j",
        "mode",
        "chosen_cat",
        "rejected_cat",
        "chosen_category_error_score",
        "rejected_category_error_score",
    }
