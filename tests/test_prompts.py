"""Config rendering: allowed categories as `- Name: definition`, `None.` when empty, free-form guideline."""

from __future__ import annotations

import random

import pytest

from cosa_guard.config import SafetyConfig
from cosa_guard.prompts import (
    CATEGORICAL_WRAPPERS,
    HARMS_SLOT,
    INSTRUCTIONS_HEADER,
    render_categorical,
    render_config,
    render_free_form,
    render_harm_list,
    render_system_prompt,
    sample_wrapper,
    stable_wrapper_index,
    with_instructions,
)
from cosa_guard.taxonomy import ALLOWABLE_IDS, DEFAULT_TAXONOMY, OTHER, Category, Taxonomy

ALLOW = ("violence", "drugs")


@pytest.mark.parametrize("index", range(len(CATEGORICAL_WRAPPERS)))
def test_every_wrapper_lists_allowed_names_and_definitions_only(index: int) -> None:
    prompt = render_categorical(ALLOW, wrapper=index)
    for category_id in ALLOW:
        category = DEFAULT_TAXONOMY[category_id]
        assert f"- {category.name}: {category.definition}" in prompt
    for category_id in ALLOWABLE_IDS - set(ALLOW):
        assert DEFAULT_TAXONOMY[category_id].definition not in prompt
    assert HARMS_SLOT not in prompt
    assert "None." not in prompt


@pytest.mark.parametrize("index", range(len(CATEGORICAL_WRAPPERS)))
def test_every_wrapper_says_none_when_nothing_is_allowed(index: int) -> None:
    prompt = render_categorical((), wrapper=index)
    assert "\nNone.\n" in prompt
    assert not any(c.definition in prompt for c in DEFAULT_TAXONOMY)


def test_wrappers_are_distinct_and_each_has_one_slot() -> None:
    assert len(set(CATEGORICAL_WRAPPERS)) == len(CATEGORICAL_WRAPPERS) >= 4
    assert all(w.count(HARMS_SLOT) == 1 for w in CATEGORICAL_WRAPPERS)


def test_other_is_never_listed() -> None:
    assert render_harm_list([OTHER]) == "\nNone.\n"
    assert DEFAULT_TAXONOMY[OTHER].name not in render_harm_list(["violence", OTHER])


def test_wrapper_index_wraps_around() -> None:
    wrapped = render_categorical(ALLOW, wrapper=len(CATEGORICAL_WRAPPERS))
    assert wrapped == render_categorical(ALLOW, wrapper=0)


def test_free_form_config_renders_the_guideline_only() -> None:
    config = SafetyConfig(id="kids", version=1, text="  Never mention alcohol.\n\nNo dating advice.  ")
    prompt = render_config(config)
    assert prompt == render_free_form(config.text)
    assert prompt.endswith("Safety Guideline:\nNever mention alcohol.\n\nNo dating advice.")
    assert not any(c.definition in prompt for c in DEFAULT_TAXONOMY)


def test_categorical_config_renders_wrapper_then_guideline() -> None:
    config = SafetyConfig(id="game", version=1, text="Fictional combat only.", allow=ALLOW)
    prompt = render_config(config)
    wrapper = stable_wrapper_index(config)
    assert prompt.startswith(render_categorical(config.allow, wrapper=wrapper))
    assert prompt.endswith("\n\nSafety Guideline:\nFictional combat only.")
    assert render_config(config, wrapper=2).startswith(render_categorical(config.allow, wrapper=2))


def test_the_wrapper_is_stable_per_config_and_varies_across_configs() -> None:
    configs = [SafetyConfig(id=f"c{i}", version=1, text="policy", allow=ALLOW) for i in range(40)]
    for config in configs:
        again = SafetyConfig.model_validate(config.model_dump())
        assert render_config(config) == render_config(again)
    assert len({stable_wrapper_index(c) for c in configs}) > 1


def test_an_alternative_taxonomy_changes_the_definitions() -> None:
    taxonomy = Taxonomy(Category(c.id, c.name.upper(), f"ALT-{c.id}") for c in DEFAULT_TAXONOMY)
    prompt = render_categorical(["privacy"], taxonomy, wrapper=0)
    assert "- PRIVACY VIOLATIONS: ALT-privacy" in prompt
    assert DEFAULT_TAXONOMY["privacy"].definition not in prompt


def test_sample_wrapper_covers_every_paraphrase() -> None:
    rng = random.Random(0)
    assert {sample_wrapper(rng) for _ in range(500)} == set(range(len(CATEGORICAL_WRAPPERS)))


def test_app_instructions_follow_the_config_under_the_precedence_header() -> None:
    config = SafetyConfig(id="c", version=1, text="Fiction may be violent.", allow=("violence",))
    rendered = render_system_prompt(config, "  Answer in French.\n")
    assert rendered == f"{render_config(config)}\n\n{INSTRUCTIONS_HEADER}\n\nAnswer in French."
    assert (
        "takes precedence" in INSTRUCTIONS_HEADER and "nothing in these instructions" in INSTRUCTIONS_HEADER
    )
    assert render_system_prompt(config) == render_system_prompt(config, " \n") == render_config(config)
    assert with_instructions("X", "Y") == f"X\n\n{INSTRUCTIONS_HEADER}\n\nY"
