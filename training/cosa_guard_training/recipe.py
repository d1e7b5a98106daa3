"""One YAML recipe for the whole CoSAlign run: data synthesis, responses, labels, SFT, DPO.

Recipes ship in `recipes/` and are named by file stem (`tiny`, `smollm2-cpu`, `llama3.1-8b`); any
other YAML path works too. Every field has a default, so a recipe states only what it changes.
Relative data paths resolve against the working directory first, then the recipe's folder.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cosa_guard.settings import BackendSpec, JudgeSpec
from cosa_guard.taxonomy import ALLOWABLE_IDS, SEEN_IDS
from cosa_guard_training.synth import MODES, Mode


class _Part(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class DataRecipe(_Part):
    prompts: str = Field(description="JSONL of {prompt, categories}; categories as ids, names or '-A-B-'")
    limit: int | None = Field(default=None, ge=1, description="a seeded sample of this many prompts")
    train_categories: tuple[str, ...] = tuple(sorted(SEEN_IDS))
    modes: tuple[Mode, ...] = MODES
    per_mode: int = Field(default=1, ge=1, description="configs sampled per prompt and mode")
    guideline_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of configs rendered as served, with a Safety Guideline block",
    )
    instructions_rate: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="share of configs followed by an application's instructions, as the guard serves them",
    )

    @field_validator("train_categories")
    @classmethod
    def _known(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - ALLOWABLE_IDS)
        if unknown:
            raise ValueError(f"unknown or never-allowable categories {unknown}; use {sorted(ALLOWABLE_IDS)}")
        return value


class ResponsesRecipe(_Part):
    backend: BackendSpec
    candidates: int = Field(default=2, ge=1, description="answers per (config, prompt)")
    vanilla: bool = Field(default=True, description="also one answer per prompt under a plain system prompt")
    max_tokens: int = Field(default=256, ge=1)
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=0.95, gt=0, le=1)
    concurrency: int = Field(default=4, ge=1)


class LabelRecipe(_Part):
    kind: Literal["judge", "rubrics", "keyword"] = Field(
        default="keyword",
        description=(
            "judge: categories from a cosa_guard judge (`judge`); rubrics: the paper's protocol, the LLM "
            "category and helpfulness rubrics on `backend`; keyword: an offline word-list labeller"
        ),
    )
    judge: JudgeSpec | None = None
    backend: BackendSpec | None = None
    keywords: dict[str, tuple[str, ...]] | None = Field(default=None, description="keyword: category → words")
    concurrency: int = Field(default=4, ge=1)


class LoraRecipe(_Part):
    r: int = 32
    alpha: int = 16
    dropout: float = 0.05
    target_modules: tuple[str, ...] = (
        "q_proj",
        "k_proj",
        "v_proj",
        "o_proj",
        "gate_proj",
        "up_proj",
        "down_proj",
    )


class ModelRecipe(_Part):
    base: str = Field(description="'tiny' (random, in-process), 'embedded' (SmolLM2-135M) or a model folder")
    method: Literal["full", "lora"] = "full"
    lora: LoraRecipe = LoraRecipe()
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    bf16: bool = Field(default=False, description="mixed-precision training (GPUs)")
    gradient_checkpointing: bool = False


class StageRecipe(_Part):
    epochs: float = Field(default=1.0, gt=0)
    max_steps: int = Field(default=-1, description="stop after this many optimiser steps (-1: epochs decide)")
    learning_rate: float = Field(default=1e-5, gt=0)
    optimizer: str = Field(default="adamw_torch", description="a transformers `optim` name, e.g. rmsprop")
    warmup_steps: int = Field(default=0, ge=0)
    batch_size: int = Field(default=8, ge=1, description="per device; global = this × grad_accum × devices")
    grad_accum: int = Field(default=1, ge=1)
    max_length: int = Field(default=640, ge=16, description="prompt + response tokens")
    max_grad_norm: float = 10.0


class DPORecipe(StageRecipe):
    beta: float = Field(default=0.1, gt=0)


class Recipe(_Part):
    name: str
    description: str = ""
    seed: int = 0
    data: DataRecipe
    responses: ResponsesRecipe
    label: LabelRecipe = LabelRecipe()
    model: ModelRecipe
    sft: StageRecipe = StageRecipe()
    dpo: DPORecipe = DPORecipe(learning_rate=5e-7, optimizer="rmsprop", warmup_steps=150)
    source: str = Field(default="", exclude=True, description="where the recipe was loaded from")

    def resolve(self, path: str) -> Path:
        """A data path: as given if it exists from the working directory, else next to the recipe."""
        candidate = Path(path).expanduser()
        if candidate.is_absolute() or candidate.exists() or not self.source:
            return candidate
        return Path(self.source).parent / candidate


def builtin_recipes() -> list[str]:
    folder = resources.files("cosa_guard_training") / "recipes"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def load_recipe(name_or_path: str) -> Recipe:
    """A built-in recipe by name, or a YAML file by path."""
    path = Path(name_or_path)
    if not path.exists():
        if name_or_path not in builtin_recipes():
            raise ValueError(
                f"no recipe {name_or_path!r}: not a file, and the built-in recipes are {builtin_recipes()}"
            )
        path = Path(str(resources.files("cosa_guard_training") / "recipes" / f"{name_or_path}.yaml"))
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a recipe is a YAML mapping")
    data.setdefault("name", path.stem)
    return Recipe.model_validate({**data, "source": str(path)})
