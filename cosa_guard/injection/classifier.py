"""The trained config-injection classifier, loaded from the weights shipped in the package.

The weights are a delta on the pip-installed all-MiniLM-L6-v2 (`cosa_guard.encoder`): the top
layers and a linear head, with the calibrated threshold in `encoder.json`. Nothing heavy is
imported until the first score, and scoring runs in a worker thread so the event loop never
blocks on the model.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cosa_guard.encoder import EncoderPredictor

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "data" / "injection"


@runtime_checkable
class Scorer(Protocol):
    """What the detector needs from a classifier: a default threshold and async scores in [0, 1]."""

    @property
    def threshold(self) -> float: ...

    async def score(self, texts: Sequence[str]) -> list[float]: ...


class InjectionClassifier:
    """Scores detection texts (`Normalised.detection_text()`) with the shipped fine-tuned encoder."""

    def __init__(
        self, directory: str | Path = WEIGHTS_DIR, *, int8: bool = True, threads: int | None = 1
    ) -> None:
        self.directory = Path(directory)
        self.int8 = int8
        # Per-turn inputs are small: a second intra-op thread costs more in sync than it saves,
        # and under contention it measured several times slower. None keeps torch's setting.
        self.threads = threads
        self._predictor: EncoderPredictor | None = None
        self._lock = threading.Lock()
        self._threshold: float | None = None

    @property
    def threshold(self) -> float:
        """The threshold calibrated at training time (read from `encoder.json`, no model load)."""
        if self._threshold is None:
            config = json.loads((self.directory / "encoder.json").read_text(encoding="utf-8"))
            self._threshold = float(config["metadata"]["threshold"])
        return self._threshold

    def _load(self) -> EncoderPredictor:
        with self._lock:
            if self._predictor is None:
                from cosa_guard.encoder import EncoderPredictor

                self._predictor = EncoderPredictor.load(self.directory, int8=self.int8)
            return self._predictor

    def predict(self, texts: Sequence[str]) -> list[float]:
        """Blocking: the attack probability of each text (max over its token windows).

        Each text is scored on its own, exactly as training calibrated the threshold, so a turn's
        score does not depend on what else is in the call.
        """
        return [row[0] for row in self._load().predict_each(list(texts), threads=self.threads)]

    async def score(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return await asyncio.get_running_loop().run_in_executor(None, self.predict, list(texts))

    def warm_up(self) -> None:
        """Load the model now (first use otherwise pays ~1 s)."""
        self.predict(["warm up"])
