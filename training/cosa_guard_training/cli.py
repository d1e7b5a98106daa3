"""`cosa-guard train`: added to the core CLI through the `cosa_guard.cli` entry point.

    cosa-guard train --recipe tiny --output DIR             every step, end to end
    cosa-guard train STEP --recipe NAME --output DIR        one step: synth, responses, label, pairs, fit
    cosa-guard train import --source FILE --output DIR      CoSAlign-Train layout → DIR/pairs.jsonl
    cosa-guard train judge | injection [OPTIONS]            rebuild a shipped detector's weights
    cosa-guard train rules [--data-dir DIR] [--output DIR]  rebuild the rule judge's head

Imports stay inside the handler so `cosa-guard --help` does not load torch or TRL.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping
from typing import Any

from cosa_guard_training.detectors.cli import register as register_detectors
from cosa_guard_training.rule_judge.cli import register as register_rule_judge

_STEPS = {
    "synth": "sample configs in the four modes for each prompt, rendered as system prompts",
    "responses": "generate candidate answers per (config, prompt) with the recipe's backend (resumable)",
    "label": "judge each answer's risk categories and whether it addressed the prompt (resumable)",
    "pairs": "score answers with the paper's error score and write preference pairs",
    "fit": "SFT on chosen answers, then DPO, then export a merged model to DIR/model",
}


def _recipe_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument(
        "--recipe", required=required, help="built-in recipe (tiny, smollm2-cpu, llama3.1-8b) or a YAML file"
    )
    p.add_argument(
        "--output", required=required, help="working folder; every step reads and writes files here"
    )


def register(sub: Any) -> None:
    p = sub.add_parser(
        "train",
        help="CoSAlign training recipe: synthesize configs, generate, label, pair, then SFT + DPO",
        description=(
            "Run a CoSAlign training recipe. Without a STEP, runs every step and prints pairs= and "
            "train_seconds=. Steps resume from the files already in --output. For multi-GPU training run the "
            "data steps once, then: accelerate launch --config_file training/accelerate/fsdp.yaml "
            "-m cosa_guard_training fit --recipe llama3.1-8b --output DIR"
        ),
    )
    _recipe_args(p, required=False)
    p.add_argument("--prompts", help="override the recipe's prompt file (JSONL with prompt, categories)")
    p.set_defaults(func=_run, step=None)
    steps = p.add_subparsers(dest="step", metavar="STEP")
    for name, text in _STEPS.items():
        s = steps.add_parser(name, help=text, description=text)
        _recipe_args(s, required=True)
        if name == "synth":
            s.add_argument("--prompts", help="override the recipe's prompt file")
        if name == "fit":
            s.add_argument("--pairs", help="train on this pairs JSONL instead of DIR/pairs.jsonl")
        s.set_defaults(func=_run)
    imp = steps.add_parser(
        "import",
        help="convert a preference set in the CoSAlign-Train column layout into DIR/pairs.jsonl",
        description=(
            "Convert a CoSAlign-Train style file or folder (JSONL, JSON, CSV, Parquet) into DIR/pairs.jsonl."
        ),
    )
    imp.add_argument("--source", required=True, help="file or folder of the preference set")
    imp.add_argument("--output", required=True, help="folder to write pairs.jsonl into")
    imp.add_argument("--limit", type=int, help="import at most this many pairs")
    imp.add_argument(
        "--column", action="append", default=[], metavar="OURS=THEIRS", help="map a column with another name"
    )
    imp.set_defaults(func=_import)
    register_detectors(steps)
    register_rule_judge(steps)


def _import(args: argparse.Namespace) -> int:
    from pathlib import Path

    from cosa_guard_training.importer import import_pairs

    columns = dict(item.split("=", 1) for item in args.column)
    imported, skipped = import_pairs(
        args.source, Path(args.output) / "pairs.jsonl", columns=columns, limit=args.limit
    )
    print(f"pairs={imported}")
    print(f"skipped={skipped}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from cosa_guard_training.pipeline import STEPS, data_step, open_run, train

    if not args.recipe or not args.output:
        print(
            "error: cosa-guard train needs --recipe (tiny, smollm2-cpu, llama3.1-8b or a YAML file) "
            "and --output DIR",
            file=sys.stderr,
        )
        return 2
    recipe, paths = open_run(args.recipe, args.output)
    report: Mapping[str, object]
    for name in STEPS if args.step is None else (args.step,):
        if name != "fit":
            report = asyncio.run(data_step(name, recipe, paths, getattr(args, "prompts", None)))
        else:
            # Training runs on the main thread, outside any event loop: distributed launchers
            # (accelerate, DeepSpeed) expect to own it.
            result = train(recipe, paths, getattr(args, "pairs", None))
            report = {
                "model": result.model_dir,
                "pairs": result.dpo_pairs,
                "sft_examples": result.sft_examples,
                "train_seconds": f"{result.train_seconds:.1f}",
            }
        for key, value in report.items():
            print(f"{key}={value}", flush=True)
    return 0
