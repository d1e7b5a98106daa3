"""Real-traffic rows for the category judge: benign exchanges and labelled jailbreak answers.

`real_traffic` reads `../shared/data/real_traffic/` and fixes its train/validation
split (held-out sources and languages, a fifth of the groups); this module turns its exchanges
into the judge's `Example`s on the same split, so training never sees a validation row:

- MedQuAD and GSM8K answers, and PHTest answers to prompts its authors label *harmless* (prompts
  built to sound harmful: homonyms, history, fiction, safety advice), carry no category: good,
  harmless answers (`real_benign`), or refusals of them (`real_refusal`);
- JailbreakBench answers judged jailbroken carry the behaviour's category hint (`real_jailbroken`;
  a hint is per behaviour, but the jailbroken answers checked (eight sampled, and the five that open
  like a refusal) all go on to carry out the ask, so the hint is taken as the answer's category);
  answers judged not jailbroken carry none (`real_not_jailbroken`);
- PHTest answers to *controversial* prompts (`real_controversial`, validation side only) are never
  trained or calibrated on: a full answer to such a prompt may carry risky content, so it is
  neither a clean negative nor, when flagged, a sure false positive; the benchmark reports their
  flag rate apart;
- hh-rlhf red-team transcripts are left out: chosen/rejected ranks two answers against each
  other, and both may be harmful or both harmless, so neither side is a category label.

Training takes a capped, seeded share of the two large plain sources (MedQuAD, GSM8K: they teach
little past the first thousand) so a run still fits a shared CPU; validation keeps every row.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from cosa_guard.taxonomy import CATEGORY_IDS
from cosa_guard_training.detectors import real_traffic as rt
from cosa_guard_training.detectors.judge_corpus import TRAIN, VAL, Example, stable_fraction

SOURCE_PREFIX = "real_traffic/"
BENIGN = "real_benign"
REFUSAL = "real_refusal"
CONTROVERSIAL = "real_controversial"
JAILBROKEN = "real_jailbroken"
NOT_JAILBROKEN = "real_not_jailbroken"
# Good answers and refusals of harmless prompts: a category found on one is a false positive.
BENIGN_KINDS = frozenset({BENIGN, REFUSAL})
# Training rows kept per plain source (the rest are dropped from training, never moved to validation).
TRAIN_CAPS = {"MedQuAD": 1000, "grade-school-math": 500}
# Source names as the benchmark prints them (`real_fpr_source_<name>`).
SHORT_NAMES = {
    "MedQuAD": "medquad",
    "grade-school-math": "gsm8k",
    "FalseRefusal": "phtest",
    "artifacts": "jbb",
}
_PHTEST = "FalseRefusal"
_FULL_COMPLIANCE = "1_full_compliance"


def source_name(row: rt.RealRow) -> str:
    """`MedQuAD`, `grade-school-math`, `FalseRefusal` (PHTest), `artifacts` (JailbreakBench), ..."""
    return row.repo.rsplit("/", 1)[-1]


def example_of(row: rt.RealRow) -> Example | None:
    """The judge's example for one exchange, or None when the row carries no usable label."""
    source = source_name(row)
    cats: tuple[str, ...] = ()
    if row.kind == "harmful_response":
        hint = str(row.meta.get("cosa_category_hint", ""))
        if hint not in CATEGORY_IDS:
            return None
        kind, cats = JAILBROKEN, (hint,)
    elif row.kind == "non_jailbroken_response":
        kind = NOT_JAILBROKEN
    elif row.kind == "controversial_response":
        if row.split != "val":
            return None
        kind = CONTROVERSIAL
    elif row.kind == "benign_response":
        kind = REFUSAL if source == _PHTEST and row.label != _FULL_COMPLIANCE else BENIGN
    else:
        return None
    split = VAL if row.split == "val" else TRAIN
    return Example(row.prompt, row.response, cats, kind, row.group, SOURCE_PREFIX + source, split)


def real_pairs(data_dir: str | Path = rt.DEFAULT_DATA_DIR) -> list[tuple[rt.RealRow, Example]]:
    """Every usable exchange with its example (both splits, training caps applied); [] without data."""
    if not rt.available(data_dir):
        return []
    rows = rt.without_leaks([*rt.benign_exchanges(data_dir), *rt.harmful_exchanges(data_dir)])
    return _capped((row, ex) for row in rows if (ex := example_of(row)) is not None)


def _capped(pairs: Iterable[tuple[rt.RealRow, Example]]) -> list[tuple[rt.RealRow, Example]]:
    """Training rows of the capped sources limited to TRAIN_CAPS (a seed-free hash picks them), in
    file order."""
    pairs = list(pairs)
    dropped: set[str] = set()
    taken: dict[str, int] = {}
    for row, ex in sorted(pairs, key=lambda p: stable_fraction("real-judge:" + p[0].id)):
        cap = TRAIN_CAPS.get(source_name(row))
        if ex.split == TRAIN and cap is not None:
            taken[ex.source] = taken.get(ex.source, 0) + 1
            if taken[ex.source] > cap:
                dropped.add(row.id)
    return [(row, ex) for row, ex in pairs if row.id not in dropped]


def real_examples(data_dir: str | Path = rt.DEFAULT_DATA_DIR) -> list[Example]:
    """The rows to train and calibrate on: every usable exchange but the controversial ones."""
    return [ex for _, ex in real_pairs(data_dir) if ex.kind != CONTROVERSIAL]
