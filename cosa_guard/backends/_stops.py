"""Stop strings over streamed text: nothing of a stop string is ever released, not even its start.

A piece of streamed text may end with the first characters of a stop string whose rest has not
been generated yet. `StopBuffer` holds such a tail back until the next piece shows whether the stop
string completes (the answer is cut just before it) or not (the tail is released). It holds back
at most `max(len(stop)) - 1` characters, and only while they could still start a stop string;
vLLM's detokenizer holds back a fixed `max(len(stop)) - 1` and cuts the same way
(`include_stop_str_in_output` false).

Where several stop strings occur, the cut is at the one that is complete first (it ends earliest;
of two ending together, the longer): where generation would have stopped. That choice does not
depend on how the text was split into pieces, so a joined stream equals the whole answer cut by
`cut_at_stop`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from cosa_guard.types import Completion

__all__ = ["StopBuffer", "cut_at_stop", "cut_completion"]


def _find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Where `text` is cut: the start of the stop string that ends earliest in it, or None."""
    best: tuple[int, int] | None = None  # (end, start)
    for stop in stops:
        start = text.find(stop) if stop else -1
        if start >= 0 and (best is None or (start + len(stop), start) < best):
            best = (start + len(stop), start)
    return None if best is None else best[1]


def cut_at_stop(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """A whole answer cut before its first stop string, and whether one was found."""
    cut = _find_stop(text, stops)
    return (text, False) if cut is None else (text[:cut], True)


def cut_completion(completion: Completion, stops: Sequence[str]) -> Completion:
    """`completion` cut before its first stop string, with finish_reason `stop` when one was found."""
    text, stopped = cut_at_stop(completion.text, stops)
    return dataclasses.replace(completion, text=text, finish_reason="stop") if stopped else completion


class StopBuffer:
    """Feed it the pieces of an answer; it returns the text that is safe to release.

    After a stop string `stopped` is True and every later piece is dropped (the caller stops the
    generation). At the end of an answer that never hit one, `flush` returns what was held back.
    """

    def __init__(self, stops: Sequence[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.stopped = False
        self._held = ""

    def feed(self, piece: str) -> str:
        if self.stopped or not self.stops:
            return "" if self.stopped else piece
        # Released text never holds the start of a stop string, so one can only begin in `text`.
        text = self._held + piece
        cut = _find_stop(text, self.stops)
        if cut is not None:
            self.stopped, self._held = True, ""
            return text[:cut]
        keep = _could_start_a_stop(text, self.stops)
        self._held = text[len(text) - keep :]
        return text[: len(text) - keep]

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


def _could_start_a_stop(text: str, stops: Sequence[str]) -> int:
    """The length of the longest end of `text` that is the beginning of a stop string (but not all of it)."""
    longest = min(len(text), max(len(s) for s in stops) - 1)
    for n in range(longest, 0, -1):
        tail = text[-n:]
        if any(s.startswith(tail) for s in stops):
            return n
    return 0
