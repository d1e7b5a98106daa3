"""Config synthesis: the four sampling modes, rendering with the shared renderer, held-out prompts."""

from __future__ import annotations

import random

import pytest
from cosa_guard_training.synth import (
    MODES,
    PromptRow,
    parse_categories,
    sample_allowed,
    synthesize_configs,
)

from cosa_guard.prompts import CATEGORICAL_WRAPPERS, render_categorical
from cosa_guard.taxonomy import SEEN_IDS

TRAIN = sorted(SEEN_IDS)


@pytest.mark.parametrize("spec_j", [("violence",), ("financial_crime", "privacy"), ()])
def test_modes_follow_the_papers_definitions(spec_j: tuple[str, ...]) -> None:
    rng = random.Random(7)
    seen_extra = False
    for _ in range(200):
        exact = sample_allowed("exact_match", spec_j, TRAIN, rng)
        assert sorted(exact) == sorted(spec_j)
        assert sample_allowed("safe", spec_j, TRAIN, rng) == ()
        sup = set(sample_allowed("superset", spec_j, TRAIN, rng))
        assert sup >= set(spec_j) and sup <= set(TRAIN)
        seen_extra |= len(sup) > len(spec_j)
        not_sup = set(sample_allowed("not_superset", spec_j, TRAIN, rng))
        if spec_j:
            assert not set(spec_j) <= not_sup, "not_superset must drop at least one prompt category"
        else:
            assert not_sup == set(), "with no prompt categories not_superset falls back to safe"
        assert not_sup <= set(TRAIN)
    assert seen_extra, "superset should sometimes add extra categories"


def test_unknown_mode_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown sampling mode"):
        sample_allowed("everything", ("violence",), TRAIN, random.Random(0))  # type: ignore[arg-type]


def test_rows_render_spec_i_with_the_shared_renderer_and_skip_held_out_prompts() -> None:
    prompts = [
        PromptRow("fight scene", ("violence",)),
        PromptRow("hello", ()),
        PromptRow("buy drugs", ("drugs",)),  # held out: never trained on
        PromptRow("rob and kill", ("financial_crime", "other")),
    ]
    rows = list(synthesize_configs(prompts, train_categories=TRAIN, per_mode=2, seed=3))
    assert {r.prompt for r in rows} == {"fight scene", "hello"}
    assert len(rows) == 2 * len(MODES) * 2
    assert {r.mode for r in rows} == set(MODES)
    for r in rows:
        assert r.system_prompt == render_categorical(r.spec_i, wrapper=r.wrapper)
    assert len({r.key for r in rows}) == len(rows)
    # A repeated prompt yields a row only for a rendering not seen yet (same rendering, same key).
    repeated = list(synthesize_configs(prompts[:1] * 40, train_categories=TRAIN, modes=("safe",), seed=3))
    assert 1 < len(repeated) == len({r.system_prompt for r in repeated}) <= len(CATEGORICAL_WRAPPERS)
    assert len({r.wrapper for r in rows}) > 1, "training should see several paraphrased wrappers"
    # Same seed, same data: synthesis is reproducible.
    again = list(synthesize_configs(prompts, train_categories=TRAIN, per_mode=2, seed=3))
    assert [r.to_dict() for r in again] == [r.to_dict() for r in rows]


def test_unlabelled_prompt_is_an_error_that_says_what_to_do() -> None:
    with pytest.raises(ValueError, match="label the prompts first"):
        list(synthesize_configs([PromptRow("x")], train_categories=TRAIN))


def test_categories_parse_from_ids_names_and_the_papers_munged_strings() -> None:
    assert parse_categories(["Violence", "privacy"]) == ("privacy", "violence")
    assert parse_categories("--") == ()
    assert parse_categories("-Illegal Drug-Related Activities and Substance Abuse-Violence-") == (
        "drugs",
        "violence",
    )
    assert parse_categories(
        "-Sexual Misconduct_Exploitation_and Infidelity-Weapons_Explosives_Arson_and Illegal Firearm "
        "Transactions-Other Harms-"
    ) == ("other", "sexual", "weapons")
    with pytest.raises(ValueError, match="unknown risk category"):
        parse_categories("-Jaywalking-")


def test_guideline_rate_renders_some_configs_exactly_as_a_deployment_serves_them() -> None:
    from cosa_guard_training.synth import guideline_text

    from cosa_guard.config import SafetyConfig
    from cosa_guard.prompts import render_config

    prompts = [PromptRow(f"fight {i}", ("violence",)) for i in range(30)]
    rows = list(synthesize_configs(prompts, train_categories=TRAIN, guideline_rate=0.5, seed=1))
    served = [r for r in rows if "Safety Guideline:" in r.system_prompt]
    assert 0 < len(served) < len(rows)
    for r in served:
        config = SafetyConfig(id="synthetic", version=1, text=guideline_text(r.spec_i), allow=r.spec_i)
        assert r.system_prompt == render_config(config, wrapper=r.wrapper)
    # Nothing allowed is served in the guideline-only form, which the model must see in training too.
    assert any(
        r.system_prompt.startswith("Task: follow the Safety Guideline") for r in served if not r.spec_i
    )
    plain = list(synthesize_configs(prompts, train_categories=TRAIN, seed=1))
    assert not any("Safety Guideline:" in r.system_prompt for r in plain)


def test_instructions_rate_renders_app_instructions_as_the_guard_serves_them() -> None:
    from cosa_guard_training.synth import APP_INSTRUCTIONS, ConfigRow

    from cosa_guard.prompts import INSTRUCTIONS_HEADER, with_instructions

    prompts = [PromptRow(f"fight {i}", ("violence",)) for i in range(30)]
    rows = list(synthesize_configs(prompts, train_categories=TRAIN, instructions_rate=0.5, seed=2))
    instructed = [r for r in rows if r.instructions]
    assert 0 < len(instructed) < len(rows)
    for r in instructed:
        assert r.instructions in APP_INSTRUCTIONS
        assert r.system_prompt == with_instructions(
            render_categorical(r.spec_i, wrapper=r.wrapper), r.instructions
        )
        assert ConfigRow.from_dict(r.to_dict()) == r
    assert not any(INSTRUCTIONS_HEADER in r.system_prompt for r in rows if not r.instructions)
    # Rate 0 (the default) draws nothing extra: the paper's rows are reproduced exactly.
    plain = list(synthesize_configs(prompts, train_categories=TRAIN, seed=2))
    assert all(r.instructions == "" for r in plain)
    assert plain == list(synthesize_configs(prompts, train_categories=TRAIN, instructions_rate=0.0, seed=2))


def test_training_instructions_are_all_ones_the_guard_serves() -> None:
    from cosa_guard_training.synth import APP_INSTRUCTIONS

    from cosa_guard.privilege import instruction_findings

    assert not [text for text in APP_INSTRUCTIONS if instruction_findings(text)]
