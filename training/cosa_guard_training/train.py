"""Step 5, training: SFT on the chosen responses, then DPO on the pairs (TRL), then a merged export.

Each stage reads its starting model from a folder and writes one, so the same code runs on a
laptop and under `accelerate launch` with FSDP or DeepSpeed (TRL builds the DPO reference model
from the SFT folder). With LoRA, each stage trains an adapter that is merged before the next, so
the export is always a plain model folder that transformers and vLLM load.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cosa_guard_training.build import resolve_model_dir
from cosa_guard_training.recipe import ModelRecipe, Recipe, StageRecipe

MANIFEST = "cosa_guard_training.json"


@dataclass(frozen=True, slots=True)
class FitResult:
    model_dir: Path
    sft_examples: int
    dpo_pairs: int
    train_seconds: float


def _chat(system: str, prompt: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": system}, {"role": "user", "content": prompt}]


def sft_rows(pairs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One prompt-completion example per (config, prompt): the chosen response of its last pair (paper)."""
    last: dict[tuple[str, str], str] = {}
    for p in pairs:
        last[(str(p["system_prompt"]), str(p["prompt"]))] = str(p["chosen_response"])
    return [
        {"prompt": _chat(system, prompt), "completion": [{"role": "assistant", "content": answer}]}
        for (system, prompt), answer in last.items()
    ]


def dpo_rows(pairs: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": _chat(str(p["system_prompt"]), str(p["prompt"])),
            "chosen": [{"role": "assistant", "content": str(p["chosen_response"])}],
            "rejected": [{"role": "assistant", "content": str(p["rejected_response"])}],
        }
        for p in pairs
    ]


def _common_args(stage: StageRecipe, model: ModelRecipe, out: Path, seed: int) -> dict[str, Any]:
    return {
        "output_dir": str(out),
        "num_train_epochs": stage.epochs,
        "max_steps": stage.max_steps,
        "learning_rate": stage.learning_rate,
        "optim": stage.optimizer,
        "warmup_steps": stage.warmup_steps,
        "per_device_train_batch_size": stage.batch_size,
        "gradient_accumulation_steps": stage.grad_accum,
        "max_length": stage.max_length,
        "max_grad_norm": stage.max_grad_norm,
        "bf16": model.bf16,
        "activation_checkpointing": model.gradient_checkpointing,  # transformers 5 name
        "model_init_kwargs": {"dtype": model.dtype},
        "save_strategy": "no",
        "report_to": "none",
        "logging_steps": 10,
        "seed": seed,
        "disable_tqdm": False,
        # Pinned memory only helps a GPU; on a CPU machine torch warns about it on every run.
        "dataloader_pin_memory": _has_gpu(),
    }


def _has_gpu() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def _peft_config(model: ModelRecipe) -> Any:
    if model.method != "lora":
        return None
    from peft import LoraConfig

    lora = model.lora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=list(lora.target_modules),
        task_type="CAUSAL_LM",
    )


def _load_tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path))
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def _finish_stage(trainer: Any, base: Path, stage_dir: Path, out: Path, model: ModelRecipe) -> Path:
    """Save the stage; with LoRA, merge the adapter into `base` and save that as `out`."""
    lora = model.method == "lora"
    trainer.save_model(str(out if not lora else stage_dir))
    trainer.accelerator.wait_for_everyone()
    if lora and trainer.accelerator.is_main_process:
        from peft import PeftModel
        from transformers import AutoModelForCausalLM

        # The merge runs once, on the main process, in the dtype the recipe trains in.
        base_model = AutoModelForCausalLM.from_pretrained(str(base), dtype=model.dtype)
        merged = PeftModel.from_pretrained(base_model, str(stage_dir))
        merged = merged.merge_and_unload()
        merged.save_pretrained(str(out))
        trainer.processing_class.save_pretrained(str(out))
    trainer.accelerator.wait_for_everyone()
    return out


def run_stage(
    stage: Literal["sft", "dpo"],
    start: Path,
    rows: list[dict[str, Any]],
    recipe: Recipe,
    out: Path,
    work: Path,
) -> Path:
    """Train `stage` from the model folder `start` and write the (merged) result to `out`."""
    from datasets import Dataset

    trainer_cls: Any
    if stage == "sft":
        from trl.trainer.sft_config import SFTConfig
        from trl.trainer.sft_trainer import SFTTrainer

        args: Any = SFTConfig(**_common_args(recipe.sft, recipe.model, work / "sft-run", recipe.seed))
        trainer_cls = SFTTrainer
    else:
        from trl.trainer.dpo_config import DPOConfig
        from trl.trainer.dpo_trainer import DPOTrainer

        common = _common_args(recipe.dpo, recipe.model, work / "dpo-run", recipe.seed)
        args = DPOConfig(beta=recipe.dpo.beta, **common)
        trainer_cls = DPOTrainer
    # DPO gets no ref_model: TRL loads the reference from `start` (full) or disables the adapter (LoRA).
    trainer = trainer_cls(
        model=str(start),
        args=args,
        train_dataset=Dataset.from_list(rows),
        processing_class=_load_tokenizer(start),
        peft_config=_peft_config(recipe.model),
    )
    trainer.train()
    return _finish_stage(trainer, start, work / f"{stage}-adapter", out, recipe.model)


def fit(pairs: list[dict[str, Any]], recipe: Recipe, output: Path) -> FitResult:
    """SFT then DPO from `recipe.model.base` on `pairs`; the merged model lands in `output/model`."""
    work = output / "work"
    started = time.perf_counter()
    base = resolve_model_dir(recipe.model.base, work / "base")
    sft = sft_rows(pairs)
    sft_dir = run_stage("sft", base, sft, recipe, work / "sft", work)
    model_dir = run_stage("dpo", sft_dir, dpo_rows(pairs), recipe, output / "model", work)
    seconds = time.perf_counter() - started
    manifest = {
        "recipe": recipe.name,
        "base": recipe.model.base,
        "method": recipe.model.method,
        "sft_examples": len(sft),
        "dpo_pairs": len(pairs),
        "train_seconds": round(seconds, 2),
        "train_categories": list(recipe.data.train_categories),
    }
    from accelerate.state import PartialState

    if PartialState().is_main_process:  # under `accelerate launch` every GPU process gets here
        (model_dir / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    return FitResult(model_dir, len(sft), len(pairs), seconds)
