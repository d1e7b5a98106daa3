"""`python -m cosa_guard_training STEP ...`: the `train` command without the core CLI around it.

This is the form `accelerate launch -m cosa_guard_training fit --recipe NAME --output DIR` runs
on every GPU process.
"""

from __future__ import annotations

import argparse
import sys

from cosa_guard_training.cli import register


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cosa_guard_training")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
