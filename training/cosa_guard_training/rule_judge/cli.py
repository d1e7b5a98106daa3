"""`cosa-guard train rules`: rebuild the rule judge's head (cosa_guard/data/rule_judge).

Torch loads only in the run, so `cosa-guard --help` stays light.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

HELP = "train the rule judge (cosa_guard/data/rule_judge): synthetic rules over real and synthetic answers"


def register(steps: Any) -> None:
    """Add `rules` to `cosa-guard train`'s sub-commands."""
    parser = steps.add_parser(
        "rules",
        help=HELP,
        description=(
            "Build the rule judge's data (synthetic rules about many subjects, real answers from "
            "--data-dir), train its head over the frozen MiniLM backbone, measure it on held-out "
            "subjects and template families, pick its thresholds and write the weights. Prints the "
            "held-out figures as name=value."
        ),
    )
    parser.add_argument("--data-dir", default="../shared/data", help="the shared data folder (real answers)")
    parser.add_argument("--output", help="where the weights go (default: the package's data/rule_judge)")
    parser.add_argument(
        "--cache-dir", help="embedding cache (default: <tmp>/cosa_guard_rule_judge); reruns reuse it"
    )
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--trainable-layers",
        type=int,
        default=2,
        help="top layers of the answer tower fine-tuned with the head (0: frozen backbone, head only)",
    )
    parser.add_argument("--tower-epochs", type=int, default=3)
    parser.add_argument(
        "--recalibrate",
        action="store_true",
        help="no training: choose the thresholds of the weights in --output again and rewrite their metadata",
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from cosa_guard.judges.rule_model import WEIGHTS_DIR
    from cosa_guard_training.rule_judge.tower import TowerSettings
    from cosa_guard_training.rule_judge.train import HeadSettings, recalibrate, train_rule_judge

    data_dir = Path(args.data_dir)
    if not data_dir.is_dir():
        print(f"error: no shared data at {data_dir}; pass --data-dir", file=sys.stderr)
        return 2
    cache = Path(args.cache_dir) if args.cache_dir else Path(tempfile.gettempdir()) / "cosa_guard_rule_judge"
    output = Path(args.output) if args.output else WEIGHTS_DIR
    if args.recalibrate:
        metadata = recalibrate(data_dir, output, cache, max_fpr=HeadSettings().max_fpr, seed=args.seed)
        for name, value in metadata["thresholds"].items():
            print(f"threshold_{name}={value}")
        return 0
    metadata = train_rule_judge(
        data_dir,
        output,
        cache_dir=cache,
        settings=HeadSettings(epochs=args.epochs, seed=args.seed),
        tower=TowerSettings(trainable_layers=args.trainable_layers, epochs=args.tower_epochs, seed=args.seed),
        command="cosa-guard " + " ".join(sys.argv[1:]),
    )
    held_out = metadata["held_out"]
    print(f"heldout_auc={held_out['auc']}")
    for name in ("forbids", "allows"):
        for key, value in held_out[name].items():
            print(f"heldout_{name}_{key}={value}")
    for name, value in metadata["thresholds"].items():
        print(f"threshold_{name}={value}")
    return 0
