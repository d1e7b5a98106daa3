"""The recipe's steps over one output folder, each reading the previous step's JSONL.

DIR/configs.jsonl    synth      (config, prompt) rows in the four sampling modes
DIR/heldout.jsonl    synth      prompts with held-out categories, kept for unseen-config evaluation
DIR/responses.jsonl  responses  candidates per (config, prompt), appended as they finish
DIR/labels.jsonl     label      categories + addressed per response, appended as they finish
DIR/pairs.jsonl      pairs      preference pairs in the CoSAlign-Train column layout (or `import`)
DIR/model/           fit        SFT then DPO, merged, loadable by transformers and vLLM
"""

from __future__ import annotations

from pathlib import Path

from cosa_guard.errors import CosaGuardError
from cosa_guard.taxonomy import ALLOWABLE_IDS
from cosa_guard.types import GenerationParams
from cosa_guard_training.build import build_generator, build_labeller
from cosa_guard_training.jsonl import read_jsonl, write_jsonl
from cosa_guard_training.label import label_prompts, label_responses
from cosa_guard_training.pairs import build_pairs
from cosa_guard_training.recipe import Recipe, load_recipe
from cosa_guard_training.responses import generate_responses
from cosa_guard_training.synth import (
    ConfigRow,
    heldout_eval_rows,
    is_held_out,
    load_prompts,
    synthesize_configs,
)
from cosa_guard_training.train import FitResult, fit

STEPS = ("synth", "responses", "label", "pairs", "fit")


class Paths:
    """The files of one output folder (see the module docstring)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.configs = root / "configs.jsonl"
        self.heldout = root / "eval_heldout.jsonl"
        self.responses = root / "responses.jsonl"
        self.labels = root / "labels.jsonl"
        self.pairs = root / "pairs.jsonl"


class TrainingError(CosaGuardError):
    """A step cannot run as asked (bad recipe, missing input); the message says what to do."""


def _needs(path: Path, step: str) -> Path:
    if not path.exists():
        raise TrainingError(f"{path} is missing: run `cosa-guard train {step}` with the same --output first")
    return path


async def synth(recipe: Recipe, paths: Paths, prompts: str | None = None) -> tuple[int, int]:
    """Write configs.jsonl (training prompts) and eval_heldout.jsonl; returns (configs, held-out prompts).

    Prompts without `categories` are labelled first with the recipe's labeller.
    """
    data = recipe.data
    rows = load_prompts(recipe.resolve(prompts or data.prompts), limit=data.limit, seed=recipe.seed)
    if any(r.categories is None for r in rows):
        rows = await label_prompts(rows, build_labeller(recipe.label))
    held = [r for r in rows if is_held_out(r, ALLOWABLE_IDS - set(data.train_categories))]
    configs = synthesize_configs(
        rows,
        train_categories=data.train_categories,
        modes=data.modes,
        per_mode=data.per_mode,
        guideline_rate=data.guideline_rate,
        instructions_rate=data.instructions_rate,
        seed=recipe.seed,
    )
    written = write_jsonl(paths.configs, (c.to_dict() for c in configs))
    write_jsonl(paths.heldout, heldout_eval_rows(held))
    return written, len(held)


def _configs(paths: Paths) -> list[ConfigRow]:
    return [ConfigRow.from_dict(r) for r in read_jsonl(_needs(paths.configs, "synth"))]


async def responses(recipe: Recipe, paths: Paths) -> tuple[int, int]:
    spec = recipe.responses
    backend = build_generator(spec.backend)
    params = GenerationParams(max_tokens=spec.max_tokens, temperature=spec.temperature, top_p=spec.top_p)
    try:
        return await generate_responses(
            _configs(paths),
            backend,
            paths.responses,
            candidates=spec.candidates,
            params=params,
            concurrency=spec.concurrency,
            vanilla=spec.vanilla,
            seed=recipe.seed,
        )
    finally:
        await backend.aclose()  # HTTP backends hold a connection pool


async def label(recipe: Recipe, paths: Paths) -> tuple[int, int]:
    rows = list(read_jsonl(_needs(paths.responses, "responses")))
    rater = build_labeller(recipe.label)
    return await label_responses(rows, rater, paths.labels, concurrency=recipe.label.concurrency)


def pairs(recipe: Recipe, paths: Paths) -> int:
    labelled = list(read_jsonl(_needs(paths.labels, "label")))
    rows = build_pairs(
        _configs(paths), labelled, train_categories=recipe.data.train_categories, seed=recipe.seed
    )
    return write_jsonl(paths.pairs, rows)


def train(recipe: Recipe, paths: Paths, pairs_file: str | None = None) -> FitResult:
    source = Path(pairs_file) if pairs_file else _needs(paths.pairs, "pairs")
    rows = list(read_jsonl(source))
    if not rows:
        raise TrainingError(
            f"{source} holds no preference pairs: every answer to a prompt got the same score. Generate more "
            "varied candidates (more of them, a higher temperature, a more permissive generator)"
        )
    return fit(rows, recipe, paths.root)


def open_run(recipe_name: str, output: str | Path) -> tuple[Recipe, Paths]:
    try:
        recipe = load_recipe(recipe_name)
    except ValueError as exc:  # pydantic's ValidationError included: it lists every bad field
        raise TrainingError(f"recipe {recipe_name}: {exc}") from exc
    paths = Paths(Path(output))
    paths.root.mkdir(parents=True, exist_ok=True)
    return recipe, paths


async def data_step(name: str, recipe: Recipe, paths: Paths, prompts: str | None = None) -> dict[str, int]:
    """Run one data step; returns the `name=value` counts it reports."""
    if name == "synth":
        configs, held = await synth(recipe, paths, prompts)
        return {"configs": configs, "heldout_prompts": held}
    if name == "responses":
        written, failed = await responses(recipe, paths)
        return {"responses_written": written, "responses_failed": failed}
    if name == "label":
        written, invalid = await label(recipe, paths)
        return {"labels_written": written, "labels_invalid": invalid}
    if name == "pairs":
        return {"pairs_written": pairs(recipe, paths)}
    raise ValueError(f"unknown data step {name!r}; steps are {list(STEPS)}")
