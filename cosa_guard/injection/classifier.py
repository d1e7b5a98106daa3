"""The trained config-injection classifier, loaded from the weights shipped in the package.

The weights are a delta on the pip-installed all-MiniLM-L6-v2 (`cosa_guard.encoder`): the top
layers and a linear head, with the calibrated threshold and window discount in `encoder.json`.
Nothing heavy is imported until the first score, and scoring runs in a worker thread so the event
loop never blocks on the model.

A long text is read in windows. Before the encoder, a linear screen (`screen.py`) clears the
windows that plainly hold ordinary text; only the rest pay for a forward pass (weights without a
screen file read every window). The text's score is its strongest read window's, discounted by
the number of windows read (`window_score`): with the plain maximum, every extra window the
encoder reads is one more chance of a false positive, so a long paste would be likelier to be
flagged than a short turn. A text with one read window keeps its raw score; one with none
scores 0.

The encoder runs on ONNX Runtime with int8 weights when onnxruntime imports (1.3-1.5x faster per
window, `cosa_guard.encoder_onnx`; exported once into the user cache on first use), on torch
int8 otherwise. The shipped threshold and discount were calibrated on ONNX Runtime scores; torch
scores differ by a few hundredths near the boundary. `engine="torch"` (or the environment
variable `COSA_GUARD_INJECTION_ENGINE=torch`) forces torch; `int8=False` (the fp32 reference)
always runs on torch.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
import logging
import math
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    from cosa_guard.encoder import EncoderPredictor
    from cosa_guard.injection.screen import WindowScreen

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "data" / "injection"
ENGINE_ENV = "COSA_GUARD_INJECTION_ENGINE"
ENGINE_CHOICES = ("auto", "onnx", "torch")
_log = logging.getLogger(__name__)
_EPS = 1e-7  # float32 probabilities saturate near 1 - 6e-8; keep the logit finite


def window_score(window_probabilities: Sequence[float], discount: float) -> float:
    """The strongest window's probability, its logit lowered by `discount * ln(windows)`.

    If each window of a benign text had the same small chance of a high score, the maximum over n
    windows would cross a fixed threshold about n times as often; lowering the logit by ln(n)
    (discount 1) cancels that for independent windows with a logistic score tail. Windows of one
    text are correlated, so training (`cosa-guard train injection`) fits the discount on real long
    benign texts. `window_probabilities` are the windows the encoder read; none scores 0.
    """
    if not window_probabilities:
        return 0.0
    top = min(max(max(window_probabilities), _EPS), 1 - _EPS)
    if discount == 0 or len(window_probabilities) == 1:
        return top
    logit = math.log(top / (1 - top)) - discount * math.log(len(window_probabilities))
    return 1 / (1 + math.exp(-logit))


@runtime_checkable
class Scorer(Protocol):
    """What the detector needs from a classifier: a default threshold and async scores in [0, 1]."""

    @property
    def threshold(self) -> float: ...

    async def score(self, texts: Sequence[str]) -> list[float]: ...


class InjectionClassifier:
    """Scores detection texts (`Normalised.detection_text()`) with the shipped fine-tuned encoder."""

    def __init__(
        self,
        directory: str | Path = WEIGHTS_DIR,
        *,
        int8: bool = True,
        threads: int | None = 1,
        engine: str | None = None,
    ) -> None:
        self.directory = Path(directory)
        self.int8 = int8
        # None: $COSA_GUARD_INJECTION_ENGINE, else "auto" (ONNX Runtime when it imports).
        self.requested_engine = engine if engine is not None else os.environ.get(ENGINE_ENV) or "auto"
        if self.requested_engine not in ENGINE_CHOICES:
            raise ValueError(
                f"injection engine must be one of {', '.join(ENGINE_CHOICES)}, not {self.requested_engine!r}"
            )
        # Per-turn inputs are small: a second intra-op thread costs more in sync than it saves,
        # and under contention it measured several times slower. None keeps torch's setting.
        self.threads = threads
        self._predictor: EncoderPredictor | None = None
        self._screen: WindowScreen | None = None
        self._lock = threading.Lock()
        self._metadata: dict[str, Any] | None = None

    def _calibration(self, key: str, default: float | None = None) -> float:
        if self._metadata is None:
            config = json.loads((self.directory / "encoder.json").read_text(encoding="utf-8"))
            self._metadata = dict(config["metadata"])
        value = self._metadata.get(key, default)
        if value is None:
            raise KeyError(f"{self.directory / 'encoder.json'} has no metadata.{key}")
        return float(value)

    @property
    def threshold(self) -> float:
        """The threshold calibrated at training time (read from `encoder.json`, no model load)."""
        return self._calibration("threshold")

    @property
    def window_discount(self) -> float:
        """The calibrated discount per ln(window count); 0 (plain maximum) for older weights."""
        return self._calibration("window_discount", 0.0)

    def _load(self) -> tuple[EncoderPredictor, WindowScreen | None]:
        with self._lock:
            if self._predictor is None:
                from cosa_guard.encoder import EncoderPredictor
                from cosa_guard.injection.screen import WindowScreen

                self._screen = WindowScreen.load(self.directory)
                engine = self.engine()
                self._predictor = EncoderPredictor.load(self.directory, int8=self.int8, engine=engine)
            return self._predictor, self._screen

    def engine(self) -> str:
        """The encoder engine this classifier scores with: "onnx" or "torch" (see the module docstring)."""
        if self.requested_engine != "auto":
            engine, why = self.requested_engine, "asked for"
        elif not self.int8:
            engine, why = "torch", "int8=False (fp32) runs on torch only"
        elif _imports("onnxruntime"):
            engine, why = "onnx", "onnxruntime imports"
        else:
            engine, why = "torch", "onnxruntime does not import; the threshold was calibrated on onnxruntime"
        _announce(engine, why)
        return engine

    def window_probabilities(self, texts: Sequence[str]) -> list[list[float]]:
        """Blocking: per text, the attack probability of each token window the encoder read (the
        screen clears the rest). Each such window runs in its own forward pass, exactly as
        training calibrated the threshold, so a turn's score depends on nothing else in the call.
        """
        predictor, screen = self._load()
        keep = screen.escalate if screen is not None else None
        windows = predictor.predict_windows(list(texts), threads=self.threads, keep=keep)
        return [[w[0] for w in text] for text in windows]

    def predict(self, texts: Sequence[str]) -> list[float]:
        """Blocking: the attack score of each text (`window_score` over its token windows)."""
        discount = self.window_discount
        return [window_score(windows, discount) for windows in self.window_probabilities(texts)]

    async def score(self, texts: Sequence[str]) -> list[float]:
        if not texts:
            return []
        return await asyncio.get_running_loop().run_in_executor(None, self.predict, list(texts))

    def warm_up(self) -> None:
        """Load the model now (first use otherwise pays ~1 s, and the one-time ONNX export if not cached)."""
        self.predict(["warm up"])


@functools.cache
def _announce(engine: str, why: str) -> None:
    """Log the engine once per process (and per reason), not once per classifier."""
    _log.info("injection classifier: %s engine (%s)", engine, why)


def _imports(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True
