"""Step 4, pairs: rank each prompt's labelled responses under a config by the paper's error score.

    err = [not addressed] + 0.1 · |allowed harms| + 3 · |disallowed harms|

Harms outside the training categories count as `other`, which no config allows. Every two label
groups with unequal scores make a pair, the lower score chosen; a pair whose chosen side scores
3 or more (it contains a disallowed harm) is skipped. The order this teaches: a helpful harmless
answer (0) over a helpful one with allowed harm (0.1 each) over a refusal (1) over any
disallowed harm (3 each). Rows use the published CoSAlign-Train column layout.
"""

from __future__ import annotations

import itertools
import random
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cosa_guard.taxonomy import OTHER
from cosa_guard_training.synth import ConfigRow

# Scores are kept in tenths so that equal scores compare equal (0.1 + 0.2 != 0.3 in floats).
NOT_ADDRESSED_TENTHS = 10
ALLOWED_TENTHS = 1
DISALLOWED_TENTHS = 30
SKIP_CHOSEN_AT_TENTHS = DISALLOWED_TENTHS


@dataclass(frozen=True, slots=True, order=True)
class Label:
    """A response group's label: its judged categories and whether it addressed the prompt."""

    categories: tuple[str, ...]
    addressed: bool


def training_view(categories: Iterable[str], train_categories: Iterable[str]) -> frozenset[str]:
    """Categories as the trained model sees them: anything outside the training set becomes `other`."""
    train = set(train_categories)
    return frozenset(c if c in train else OTHER for c in categories)


def error_tenths(label: Label, allowed: Iterable[str], train_categories: Iterable[str]) -> int:
    """The paper's error score, in tenths (lower is better); each distinct category counts once."""
    allowed_set = set(allowed) - {OTHER}
    score = 0 if label.addressed else NOT_ADDRESSED_TENTHS
    for category in training_view(label.categories, train_categories):
        score += ALLOWED_TENTHS if category in allowed_set else DISALLOWED_TENTHS
    return score


def error_score(label: Label, allowed: Iterable[str], train_categories: Iterable[str]) -> float:
    return error_tenths(label, allowed, train_categories) / 10


def group_labels(rows: Iterable[Mapping[str, Any]]) -> dict[str, dict[Label, list[str]]]:
    """prompt → label → responses, from labelled rows (the paper's `prompt2response`)."""
    pool: dict[str, dict[Label, list[str]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        label = Label(tuple(sorted(set(row["categories"]))), bool(row["addressed"]))
        pool[str(row["prompt"])][label].append(str(row["response"]))
    return pool


def ranked_pairs(
    groups: Mapping[Label, Sequence[str]], allowed: Iterable[str], train_categories: Iterable[str]
) -> Iterator[tuple[Label, int, Label, int]]:
    """(chosen, chosen tenths, rejected, rejected tenths) for every unequal pair of label groups."""
    allowed = tuple(allowed)
    scored = sorted((error_tenths(label, allowed, train_categories), label) for label in groups)
    for (s1, l1), (s2, l2) in itertools.combinations(scored, 2):
        if s1 == s2 or s1 >= SKIP_CHOSEN_AT_TENTHS:
            continue
        yield l1, s1, l2, s2


def _spec_string(categories: Iterable[str]) -> str:
    return "-" + "-".join(sorted(categories)) + "-" if categories else "--"


def build_pairs(
    configs: Iterable[ConfigRow],
    labelled: Iterable[Mapping[str, Any]],
    *,
    train_categories: Sequence[str],
    seed: int = 0,
) -> Iterator[dict[str, Any]]:
    """Preference rows for every config, from all labelled responses to the config's prompt.

    A prompt's responses are pooled across every config and the vanilla prompt they were
    generated under, as in the paper: what matters is how a response scores under *this*
    config. One response is drawn at random from each group.
    """
    pool = group_labels(labelled)
    rng = random.Random(seed)
    for config in configs:
        groups = pool.get(config.prompt)
        if not groups:
            continue
        for chosen, c_score, rejected, r_score in ranked_pairs(groups, config.spec_i, train_categories):
            yield {
                "system_prompt": config.system_prompt,
                "prompt": config.prompt,
                "chosen_response": rng.choice(groups[chosen]),
                "rejected_response": rng.choice(groups[rejected]),
                "spec_i": list(config.spec_i),
                "spec_j": list(config.spec_j),
                "mode": config.mode,
                "chosen_cat": _label_string(chosen),
                "rejected_cat": _label_string(rejected),
                "chosen_category_error_score": c_score / 10,
                "rejected_category_error_score": r_score / 10,
                "key": config.key,
            }


def _label_string(label: Label) -> str:
    # The paper's label key, `(<cat-string>, <addressed 0/1>)`, with category ids.
    return f"({_spec_string(label.categories)}, {int(label.addressed)})"
