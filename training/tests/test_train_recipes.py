"""Built-in recipes load and validate; the 8B recipe carries the paper's hyper-parameters."""

from __future__ import annotations

from pathlib import Path

import pytest
from cosa_guard_training.recipe import builtin_recipes, load_recipe
from pydantic import ValidationError


def test_builtin_recipes_are_listed_and_valid() -> None:
    assert {"tiny", "smollm2-cpu", "llama3.1-8b"} <= set(builtin_recipes())
    for name in builtin_recipes():
        assert load_recipe(name).name == name


def test_llama_recipe_uses_the_papers_dpo_settings() -> None:
    r = load_recipe("llama3.1-8b")
    assert (r.dpo.beta, r.dpo.learning_rate, r.dpo.optimizer, r.dpo.warmup_steps) == (
        0.1,
        5e-7,
        "rmsprop",
        150,
    )
    assert r.dpo.max_length == 640 and r.model.method == "full"
    assert r.dpo.batch_size * r.dpo.grad_accum * 4 == 32  # global batch 32 on the paper's 4 GPUs
    assert set(r.data.train_categories) == {"discrimination", "violence", "financial_crime", "privacy"}


def test_tiny_recipe_data_resolves_next_to_the_recipe() -> None:
    r = load_recipe("tiny")
    assert r.resolve(r.data.prompts).exists()


def test_bad_recipes_fail_with_a_useful_message(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="built-in recipes are"):
        load_recipe("no-such-recipe")
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "data: {prompts: p.jsonl, train_categories: [other]}\n"
        "responses: {backend: {kind: scripted}}\nmodel: {base: tiny}\n"
    )
    with pytest.raises(ValidationError, match="never-allowable"):
        load_recipe(str(bad))
