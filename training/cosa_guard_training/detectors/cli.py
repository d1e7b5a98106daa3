"""`cosa-guard train judge` and `cosa-guard train injection`: rebuild the shipped detectors' weights.

Each trainer owns its options (`add_arguments`) and its run (`run`); torch loads only in the run.
"""

from __future__ import annotations

from typing import Any

from cosa_guard_training.detectors import injection_train, judge_train

_DETECTORS = {
    "judge": (
        judge_train,
        "fine-tune the category judge (cosa_guard/data/category_judge) on its corpus and real traffic",
    ),
    "injection": (
        injection_train,
        "fine-tune the config-injection classifier (cosa_guard/data/injection) and calibrate it",
    ),
}


def register(steps: Any) -> None:
    """Add one sub-command per detector to `cosa-guard train`'s sub-commands."""
    for name, (trainer, text) in _DETECTORS.items():
        parser = steps.add_parser(name, help=text, description=text)
        trainer.add_arguments(parser)
        parser.set_defaults(func=trainer.run)
