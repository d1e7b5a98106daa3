"""`cosa-guard train`: added to the core CLI through the `cosa_guard.cli` entry point."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="run a CoSAlign training recipe (SFT then DPO)")
    p.add_argument("--recipe", required=True)
    p.add_argument("--output", required=True)
    p.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    raise NotImplementedError("the training recipe is being built (issue 9)")
