"""How far two graders agree on compliance: raw agreement and Cohen's kappa, pure arithmetic.

Each pair is (grader A says the answer complies, grader B says it complies) for one answer that
both graded. Raw agreement is the share of pairs where they say the same; Cohen's kappa corrects
it for the agreement two graders would reach by chance given how often each says "complies":
kappa = (p_o - p_e) / (1 - p_e). Kappa is 1 for perfect agreement, 0 for chance level and
negative below it; it is undefined (None) when chance agreement is already 1, i.e. both graders
gave one and the same answer to every pair.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Agreement:
    """Agreement of grader `a` with grader `b` over `n` answers both graded."""

    a: str
    b: str
    n: int
    both_comply: int
    both_violate: int
    only_a_violates: int
    only_b_violates: int

    @property
    def agree(self) -> int:
        return self.both_comply + self.both_violate

    @property
    def raw(self) -> float | None:
        return self.agree / self.n if self.n else None

    @property
    def kappa(self) -> float | None:
        if not self.n:
            return None
        a_complies = (self.both_comply + self.only_b_violates) / self.n
        b_complies = (self.both_comply + self.only_a_violates) / self.n
        chance = a_complies * b_complies + (1 - a_complies) * (1 - b_complies)
        if chance >= 1:
            return None
        return (self.agree / self.n - chance) / (1 - chance)


def agreement(a: str, b: str, pairs: Iterable[tuple[bool, bool]]) -> Agreement:
    """Count the four outcomes of (a complies, b complies) pairs."""
    counts = {(True, True): 0, (False, False): 0, (False, True): 0, (True, False): 0}
    for pair in pairs:
        counts[pair] += 1
    return Agreement(
        a,
        b,
        n=sum(counts.values()),
        both_comply=counts[True, True],
        both_violate=counts[False, False],
        only_a_violates=counts[False, True],
        only_b_violates=counts[True, False],
    )
