"""The config-injection defence: normaliser → structural rules → trained classifier → action.

Per scanned turn (user turns, and tool/retrieved content when the deployment scans tool output),
the verdict is *attack* when a decisive structural rule fires or the classifier's score reaches
the threshold (the deployment's, else the one calibrated at training time). The deployment's
action then decides what happens: `block` refuses with `input_injection`, `sanitise` cuts the
offending spans (or the whole turn, when what is left still reads as an attack) and lets the
request through, `flag` only records. Client system messages are the guard's privilege rule, not
this module's business. A classifier that cannot run fails closed: `JudgeError`, never a pass.
The normaliser and the rules are pure-Python CPU work (about 1.5 ms per 1,000 characters): texts
longer than `OFF_LOOP_CHARS` together are checked in a worker thread, so one client's long turns do
not stall every other call on the event loop; short ones stay on the loop, where a thread hop would
cost more than the work.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace

from cachetools import LRUCache

from cosa_guard.errors import JudgeError
from cosa_guard.injection.base import Finding, InputCheck, InputGuard
from cosa_guard.injection.classifier import InjectionClassifier, Scorer
from cosa_guard.injection.structural import DECISIVE, scan
from cosa_guard.normalise import Normalised, normalise
from cosa_guard.settings import InjectionSpec
from cosa_guard.types import Message, RefusalReason

_log = logging.getLogger(__name__)

REMOVED_SPAN = "[removed]"  # neutral on purpose: the remainder is scanned again
REMOVED_TURN = "[removed: this turn looked like an attempt to change the assistant's safety configuration]"
SCANNED_ROLES = frozenset({"user"})
TOOL_ROLES = frozenset({"tool", "function"})
OFF_LOOP_CHARS = 2048  # above this many characters per scan, the rules run in a worker thread


@dataclass(frozen=True, slots=True)
class TurnVerdict:
    """One text's verdict: `score` is the strongest evidence (structural or classifier) in [0, 1]."""

    attack: bool
    score: float
    findings: tuple[Finding, ...]
    classifier_score: float | None = None


class InjectionDetector:
    """An `InputGuard`. `classifier=None` loads the shipped one on first use."""

    def __init__(self, classifier: Scorer | None = None, *, cache_size: int = 4096) -> None:
        self._classifier = classifier
        # Chat history is re-sent every turn: remember each text's classifier score, keyed by a
        # digest of its detection text so a full cache holds 4,096 small keys, not 4,096 long turns.
        self._scores: LRUCache[bytes, float] = LRUCache(maxsize=cache_size)

    @property
    def classifier(self) -> Scorer:
        if self._classifier is None:
            self._classifier = InjectionClassifier()
        return self._classifier

    async def load(self) -> None:
        """Load the classifier now (`Guard.warm_up`), not on the first turn that needs it.

        A classifier that cannot load is logged, not raised: the server still starts, and each turn
        that needs it fails closed with the reason, as it would without a warm-up.
        """
        try:
            await self.classifier.score(["warm up"])
        except Exception as exc:
            _log.warning("the injection classifier did not load at warm-up (%s: %s)", type(exc).__name__, exc)

    async def _classify(self, texts: Sequence[str]) -> list[float]:
        keys = [_digest(t) for t in texts]
        known = {k: self._scores[k] for k in keys if k in self._scores}
        todo = {k: t for k, t in zip(keys, texts, strict=True) if k not in known}
        if todo:
            try:
                scores = await self.classifier.score(list(todo.values()))
            except Exception as exc:  # any failure of the model is a failure of the guard, not a pass
                raise JudgeError(
                    f"the injection classifier failed ({type(exc).__name__}: {exc}); install the 'embed' "
                    "extra or set injection.classifier: false in the deployment to use the rules alone"
                ) from exc
            known.update(zip(todo, scores, strict=True))
            self._scores.update(known)
        return [known[k] for k in keys]

    async def scan(
        self, texts: Sequence[str], *, use_classifier: bool = True, threshold: float | None = None
    ) -> list[TurnVerdict]:
        """Verdicts for raw texts (what `check`, `cosa-guard scan` and the benchmark use)."""
        if not texts:
            return []
        if sum(len(t) for t in texts) > OFF_LOOP_CHARS:
            normalised, structural = await asyncio.to_thread(_rules, texts)
        else:
            normalised, structural = _rules(texts)
        decisive_turns = [any(f.score >= DECISIVE for f in found) for found in structural]
        scores: list[float | None] = [None] * len(texts)
        # A turn the rules already block needs no classifier score: skipping it saves ~10 ms a turn.
        todo = [i for i, d in enumerate(decisive_turns) if use_classifier and not d]
        if todo:
            for i, s in zip(
                todo, await self._classify([normalised[i].detection_text() for i in todo]), strict=True
            ):
                scores[i] = s
        cut = threshold if threshold is not None or not use_classifier else self.classifier.threshold
        verdicts = []
        for found, score, decisive in zip(structural, scores, decisive_turns, strict=True):
            fired = score is not None and cut is not None and score >= cut
            if fired:
                reason = f"classifier score {score:.3f} >= threshold {cut:.3f}"
                found = (*found, Finding("classifier", reason, score=float(score or 0.0)))
            strongest = max([f.score for f in found] + [score or 0.0])
            verdicts.append(TurnVerdict(decisive or fired, strongest, found, score))
        return verdicts

    async def check(self, messages: Sequence[Message], spec: InjectionSpec) -> InputCheck:
        original = tuple(messages)
        if not spec.enabled:
            return InputCheck(original)
        roles = SCANNED_ROLES | (TOOL_ROLES if spec.scan_tool_output else frozenset())
        indices = [i for i, m in enumerate(original) if m.role in roles and m.content]
        verdicts = await self.scan(
            [original[i].content for i in indices], use_classifier=spec.classifier, threshold=spec.threshold
        )
        findings = tuple(
            replace(f, message_index=i) for i, v in zip(indices, verdicts, strict=True) for f in v.findings
        )
        score = max((v.score for v in verdicts), default=0.0)
        attacked = [(i, v) for i, v in zip(indices, verdicts, strict=True) if v.attack]
        if not attacked:
            return InputCheck(original, score=score, findings=findings)
        where = ", ".join(f"message {i} ({v.findings[0].reason})" for i, v in attacked)
        if spec.action == "block":
            return InputCheck(
                original,
                refusal=RefusalReason.INPUT_INJECTION,
                score=score,
                findings=findings,
                notes=(f"blocked: config injection in {where}",),
            )
        if spec.action == "flag":
            return InputCheck(original, score=score, findings=findings, notes=(f"flagged: {where}",))
        cleaned = list(original)
        for i, verdict in attacked:
            cleaned[i] = replace(
                original[i], content=await self._sanitise(original[i].content, verdict, spec)
            )
        return InputCheck(tuple(cleaned), score=score, findings=findings, notes=(f"sanitised: {where}",))

    async def _sanitise(self, text: str, verdict: TurnVerdict, spec: InjectionSpec) -> str:
        """Cut the flagged spans; when that leaves an attack (or there were no spans), drop the turn."""
        spans = sorted(f.span for f in verdict.findings if f.span is not None and f.span[1] > f.span[0])
        if not spans:
            return REMOVED_TURN
        pieces: list[str] = []
        pos = 0
        for start, end in spans:
            if start >= pos:
                pieces.append(text[pos:start])
                pieces.append(REMOVED_SPAN)
            pos = max(pos, end)
        pieces.append(text[pos:])
        remainder = "".join(pieces)
        again = await self.scan([remainder], use_classifier=spec.classifier, threshold=spec.threshold)
        return REMOVED_TURN if again[0].attack else remainder


def _rules(texts: Sequence[str]) -> tuple[list[Normalised], list[tuple[Finding, ...]]]:
    """The normalised texts and what the structural rules found in each (blocking, CPU-bound)."""
    normalised = [normalise(t) for t in texts]
    return normalised, [tuple(scan(n)) for n in normalised]


def _digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def default_input_guard() -> InputGuard:
    """The detector with the shipped classifier (loaded lazily, on the first turn that needs it)."""
    return InjectionDetector()
