"""The `tiny` recipe end to end through the CLI: synthesis to a saved model that then answers."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from cosa_guard_training.jsonl import read_jsonl
from cosa_guard_training.recipe import load_recipe
from cosa_guard_training.train import MANIFEST

from cosa_guard.backends.transformers import clear_model_cache
from cosa_guard.cli import main
from cosa_guard.config import SafetyConfig
from cosa_guard.evaluation.dataset import EvalDataset
from cosa_guard.testing.deployments import write_signed_deployment
from cosa_guard.types import DecisionKind, GenerationParams, Route


def _values(out: str) -> dict[str, str]:
    return dict(re.findall(r"^(\w+)=(.*)$", out, re.MULTILINE))


async def _answer(model_dir: Path) -> str:
    """Serve the export as a deployment's CoSAlign route, as an operator would, and ask it once."""
    from cosa_guard.guard import Guard

    config = SafetyConfig(id="duels", version=1, text="Fictional sword fights are fine.", allow=("violence",))
    primary = {"kind": "transformers", "model": str(model_dir), "options": {"progress": False}}
    path, _ = write_signed_deployment(
        model_dir.parent / "deploy",
        config,
        routes={"primary": primary},
        judge={"kind": "scripted"},
        injection={"classifier": False},
    )
    guard = Guard.from_file(path)
    try:
        result = await guard.chat(
            "duels", [{"role": "user", "content": "Write a duel."}], GenerationParams(max_tokens=8)
        )
    finally:
        await guard.aclose()
        clear_model_cache()
    assert result.route is Route.COSALIGN and result.decision.kind is DecisionKind.ALLOWED, result.decision
    return result.text


async def test_tiny_recipe_runs_every_step_and_exports_a_loadable_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run"
    assert await _run_cli(["train", "--recipe", "tiny", "--output", str(out)]) == 0
    values = _values(capsys.readouterr().out)
    pairs = list(read_jsonl(out / "pairs.jsonl"))
    assert int(values["pairs"]) == len(pairs) > 0
    assert float(values["train_seconds"]) > 0
    assert int(values["heldout_prompts"]) == 2  # the drugs and weapons prompts are kept out of training
    heldout = EvalDataset.load(out / "eval_heldout.jsonl")  # ready for `cosa-guard eval --dataset`
    assert len(heldout) == 4 and {e.type for e in heldout.examples} == {"allowed", "disallowed"}
    assert {i for i, c in heldout.configs.items() if not c.seen} == {"allow-drugs", "allow-weapons"}
    assert all(p["chosen_category_error_score"] < 3 for p in pairs)
    assert all(p["chosen_category_error_score"] < p["rejected_category_error_score"] for p in pairs)
    manifest = json.loads((out / "model" / MANIFEST).read_text())
    assert manifest["dpo_pairs"] == len(pairs) and manifest["recipe"] == "tiny"
    assert isinstance(await _answer(out / "model"), str)

    # Re-running a data step is a no-op: everything is already in the files.
    assert await _run_cli(["train", "responses", "--recipe", "tiny", "--output", str(out)]) == 0
    assert _values(capsys.readouterr().out)["responses_written"] == "0"


async def test_lora_training_exports_a_merged_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = load_recipe("tiny")
    recipe = tiny.model_dump(mode="json")
    recipe["data"]["prompts"] = str(tiny.resolve(tiny.data.prompts))
    recipe["model"] = {"base": "tiny", "method": "lora", "lora": {"r": 4, "alpha": 8}}
    recipe["sft"]["max_steps"] = recipe["dpo"]["max_steps"] = 1
    path = tmp_path / "tiny-lora.yaml"
    path.write_text(yaml.safe_dump(recipe))
    out = tmp_path / "run"
    assert await _run_cli(["train", "--recipe", str(path), "--output", str(out)]) == 0
    assert int(_values(capsys.readouterr().out)["pairs"]) > 0
    model_dir = out / "model"
    assert (model_dir / "config.json").exists() and not (model_dir / "adapter_config.json").exists()
    assert isinstance(await _answer(model_dir), str)


async def _run_cli(argv: list[str]) -> int:
    # The CLI owns its event loop (asyncio.run); run it off this test's loop.
    import asyncio

    return await asyncio.to_thread(main, argv)
