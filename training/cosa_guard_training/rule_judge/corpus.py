"""The rule judge's training data: (rule, request, answer) -> does the answer do what the rule is about.

Answers come with the subjects they do (`subjects`): synthetic answers composed from each
synthetic subject's sentences, real jailbroken answers (JailbreakBench artifacts and GPTFuzz in
../shared/data, their behaviour or question as the subject), real benign exchanges (MedQuAD,
GSM8K, PHTest) and refusals (real ones, labelled not jailbroken, and synthetic ones that name the
subject but do not do it). Partial answers start harmless and end with one violating sentence.
Each answer is paired with rules (`templates`) about its own subjects (label 1) and about other
subjects (label 0; half of them "hard": same category or a shared parent, e.g. a bacon recipe
against "no alcohol", religion-based hate against "nationality-based insults are allowed").

Splits hold out whole subjects and whole template families: a validation pair's answer subject
and rule subject are both held out (or broad, shared by both splits) and its wording comes from
`templates.VAL_FAMILIES`. Refusals and benign exchanges are split by their source group.
Everything is seeded; building takes a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cosa_guard_training.rule_judge.subjects import (
    BROAD,
    SYNTHETIC,
    Subject,
    gptfuzz_subjects,
    jbb_category_subjects,
    jbb_subject_id,
    jbb_subjects,
)
from cosa_guard_training.rule_judge.templates import join_phrases, rule_text

TRAIN, VAL = "train", "val"
VAL_FRACTION = 0.2
SYNTHETIC_PER_SUBJECT = 24
MAX_REAL_REFUSALS = 900
MAX_BENIGN = 1200
COMPOUND_FRACTION = 0.33
MAX_RESPONSE_CHARS = 3000  # longer answers add windows, not signal: the judge still sees the cut part

BENIGN_REAL = (
    Subject(
        "medquad",
        "none",
        ("questions about diseases and their treatment", "explaining medical conditions"),
        ("medical",),
    ),
    Subject("math", "none", ("maths homework", "solving arithmetic word problems"), ()),
)
_OPENERS = ("", "Sure, here you go. ", "Of course! ", "Here is what you asked for: ", "Okay. ")
_CLOSERS = ("", " Enjoy!", " Let me know if you need more.", " I hope this helps.")
_REFUSALS = (
    "I'm sorry, but I can't help with {x}.",
    "I won't write {x}. Is there something else I can do for you?",
    "That request involves {x}, which I am not able to provide.",
    "I can't assist with that: {x} is something I don't produce. I can suggest a safer alternative.",
)


@dataclass(frozen=True)
class Answer:
    id: str
    request: str
    response: str
    tags: frozenset[str]  # subject ids the answer does (with their parents)
    kind: str  # synthetic, partial, refusal, jailbroken, benign
    split: str
    # refusals: the subject the request asked for (calibration pairs them with a rule about it)
    refused: str = ""


@dataclass(frozen=True)
class Pair:
    rule: str
    polarity: str
    family: str
    rule_subject: str
    answer: str  # Answer.id
    label: int
    hard: bool  # a negative whose rule subject shares a category or parent with the answer's
    split: str


def stable_fraction(key: str) -> float:
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF


def subject_split(subject_id: str) -> str:
    return VAL if stable_fraction("subject:" + subject_id) < VAL_FRACTION else TRAIN


def _read(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                yield json.loads(line)


class Inventory:
    """Every subject by id, with each narrow subject's tags (itself and its parents, transitively)."""

    def __init__(
        self, subjects: Sequence[Subject], aliases: Mapping[str, frozenset[str]] | None = None
    ) -> None:
        self.by_id = {s.id: s for s in subjects}
        self.broad = frozenset(s.id for s in (*BROAD, *jbb_category_subjects()))
        # Near-duplicate subjects from different sources ("email scam", "mail scam"): an answer that
        # does one does the other, and they share a split so neither leaks across the hold-out.
        self.aliases = dict(aliases or {})

    def tags(self, subject_id: str) -> frozenset[str]:
        seen: set[str] = set()
        todo = [subject_id]
        while todo:
            sid = todo.pop()
            if sid in seen:
                continue
            seen.add(sid)
            subject = self.by_id.get(sid)
            if subject is not None:
                todo.extend(subject.parents)
            todo.extend(self.aliases.get(sid, ()))
        return frozenset(seen)

    def split_of(self, subject_id: str) -> str | None:
        """The split a rule about this subject may appear in (None: both, a broad subject)."""
        if subject_id in self.broad:
            return None
        return subject_split(min(self.aliases.get(subject_id, frozenset()) | {subject_id}))

    def related(self, a: str, b: str) -> bool:
        sa, sb = self.by_id[a], self.by_id[b]
        return (sa.category == sb.category and sa.category != "none") or bool(
            (self.tags(a) - {a}) & (self.tags(b) - {b})
        )


def _clip(text: str) -> str:
    return text if len(text) <= MAX_RESPONSE_CHARS else text[:MAX_RESPONSE_CHARS]


def synthetic_answers(inv: Inventory, rng: random.Random) -> list[Answer]:
    """Composed answers per synthetic subject, partial answers and refusals that name the subject."""
    out: list[Answer] = []
    benign = [s for s in SYNTHETIC if s.category == "none"]
    for subject in SYNTHETIC:
        split = str(inv.split_of(subject.id))
        tags = inv.tags(subject.id)
        for i in range(SYNTHETIC_PER_SUBJECT):
            request = rng.choice(subject.requests)
            body = rng.sample(subject.sentences, k=min(len(subject.sentences), rng.randint(1, 3)))
            text = rng.choice(_OPENERS) + " ".join(body) + rng.choice(_CLOSERS)
            out.append(Answer(f"syn:{subject.id}:{i}", request, text, tags, "synthetic", split))
        for i in range(SYNTHETIC_PER_SUBJECT // 4):  # harmless start, one sentence of the subject at the end
            filler = rng.choice([s for s in benign if s.id != subject.id])
            head = " ".join(rng.sample(filler.sentences, k=min(3, len(filler.sentences))))
            text = head + " " + rng.choice(subject.sentences)
            both = tags | inv.tags(filler.id)
            out.append(
                Answer(f"partial:{subject.id}:{i}", rng.choice(filler.requests), text, both, "partial", split)
            )
        for i in range(SYNTHETIC_PER_SUBJECT // 6):
            refusal = rng.choice(_REFUSALS).format(x=rng.choice(subject.phrases))
            out.append(
                Answer(
                    f"refuse:{subject.id}:{i}",
                    rng.choice(subject.requests),
                    refusal,
                    frozenset(),
                    "refusal",
                    split,
                    subject.id,
                )
            )
    return out


def jbb_answers(inv: Inventory, rows: Sequence[dict[str, Any]]) -> list[Answer]:
    out = []
    for row in rows:
        behavior = row["meta"]["behavior"]
        sid = jbb_subject_id(behavior)
        if row["label"] == "jailbroken":
            out.append(
                Answer(
                    row["id"],
                    row["prompt"],
                    _clip(row["response"]),
                    inv.tags(sid),
                    "jailbroken",
                    str(inv.split_of(sid)),
                )
            )
        else:  # not jailbroken: a refusal or an answer that does not do the behaviour
            out.append(
                Answer(
                    row["id"],
                    row["prompt"],
                    _clip(row["response"]),
                    frozenset(),
                    "refusal",
                    str(inv.split_of(sid)),
                    sid,
                )
            )
    return out


def gptfuzz_answers(inv: Inventory, rows: Sequence[dict[str, Any]], rng: random.Random) -> list[Answer]:
    subjects = gptfuzz_subjects()
    positives, refusals = [], []
    for i, row in enumerate(rows):
        subject = subjects.get(int(row["question_id"]))
        if subject is None:
            continue
        split = str(inv.split_of(subject.id))
        answer_id = f"gptfuzz:{row['question_id']}:{i}"
        if int(row["label"]) == 1:
            positives.append(
                Answer(
                    answer_id,
                    row["question"],
                    _clip(row["response"]),
                    inv.tags(subject.id),
                    "jailbroken",
                    split,
                )
            )
        else:
            refusals.append(
                Answer(
                    answer_id,
                    row["question"],
                    _clip(row["response"]),
                    frozenset(),
                    "refusal",
                    split,
                    subject.id,
                )
            )
    rng.shuffle(refusals)
    return positives + refusals[:MAX_REAL_REFUSALS]


def benign_answers(inv: Inventory, rows: Sequence[dict[str, Any]], rng: random.Random) -> list[Answer]:
    out = []
    for row in rows:
        source = row["id"].split("-", 1)[0]
        sid = "medquad" if source == "medquad" else "math" if source == "gsm8k" else None
        split = VAL if stable_fraction("group:" + str(row.get("group", row["id"]))) < VAL_FRACTION else TRAIN
        tags = inv.tags(sid) if sid else frozenset()
        out.append(Answer(row["id"], row["prompt"], _clip(row["response"]), tags, "benign", split))
    rng.shuffle(out)
    return out[:MAX_BENIGN]


def build_answers(
    data_dir: Path | None, seed: int, aliases: Mapping[str, frozenset[str]] | None = None
) -> tuple[Inventory, list[Answer]]:
    """The inventory and every answer; without `data_dir` only the synthetic ones. `aliases`:
    near-duplicate subjects (`embed.near_duplicates`), which share tags and split."""
    rng = random.Random(seed)
    jbb_rows: list[dict[str, Any]] = []
    fuzz_rows: list[dict[str, Any]] = []
    benign_rows: list[dict[str, Any]] = []
    if data_dir is not None:
        harmful = data_dir / "real_traffic" / "exchanges_harmful_labelled.jsonl"
        jbb_rows = [r for r in _read(harmful) if r["kind"] in ("harmful_response", "non_jailbroken_response")]
        fuzz_rows = list(_read(data_dir / "gptfuzz_jailbreak_responses" / "gptfuzz_responses_train.jsonl"))
        benign_rows = [
            r
            for r in _read(data_dir / "real_traffic" / "exchanges_benign.jsonl")
            if r["kind"] == "benign_response"
        ]
    behaviors = {r["meta"]["behavior"]: r["meta"]["jbb_category"] for r in jbb_rows}
    fuzz = list({s.id: s for s in gptfuzz_subjects().values()}.values())
    subjects = [*BROAD, *jbb_category_subjects(), *SYNTHETIC, *BENIGN_REAL, *jbb_subjects(behaviors), *fuzz]
    inv = Inventory(subjects, aliases)
    answers = synthetic_answers(inv, rng) + jbb_answers(inv, jbb_rows) + gptfuzz_answers(inv, fuzz_rows, rng)
    answers += benign_answers(inv, benign_rows, rng)
    return inv, answers


def build_pairs(inv: Inventory, answers: Sequence[Answer], seed: int, negatives: int = 3) -> list[Pair]:
    """Per answer, rules about its own subjects (label 1) and about `negatives` other subjects (label 0);
    a refusal also gets a rule about the subject it declined (label 0, hard)."""
    rng = random.Random(seed + 1)
    declined = random.Random(seed + 3)
    rule_subjects = {
        split: [s for s in inv.by_id.values() if s.phrases and inv.split_of(s.id) in (None, split)]
        for split in (TRAIN, VAL)
    }
    pairs: list[Pair] = []
    for answer in answers:
        val = answer.split == VAL
        pool = rule_subjects[answer.split]
        own = [sid for sid in sorted(answer.tags) if sid in inv.by_id and inv.by_id[sid].phrases]
        own = [sid for sid in own if inv.split_of(sid) in (None, answer.split)]
        narrow = [sid for sid in own if sid not in inv.broad]
        # the answer's own narrow subject most often; a broad parent otherwise
        for sid in rng.sample(own, k=min(2, len(own))) if own else []:
            if narrow and rng.random() < 0.5:
                sid = rng.choice(narrow)
            others = [s for s in pool if s.id not in answer.tags]
            text, family, polarity = rule_text(rng, _phrase(rng, inv.by_id[sid], others), val)
            pairs.append(Pair(text, polarity, family, sid, answer.id, 1, False, answer.split))
        others = [s for s in pool if s.id not in answer.tags]
        anchor = narrow[0] if narrow else None
        hard = [s for s in others if anchor is not None and inv.related(anchor, s.id)]
        for j in range(negatives):
            source = hard if hard and j % 2 == 0 else others
            subject = rng.choice(source)
            text, family, polarity = rule_text(rng, _phrase(rng, subject, others), val)
            pairs.append(Pair(text, polarity, family, subject.id, answer.id, 0, source is hard, answer.split))
        if answer.refused and inv.split_of(answer.refused) in (None, answer.split):
            # A refusal names what it declines: against a rule about that subject it must score low
            # (the frozen scorer refused 32 of 47 calibration refusals on exactly that rule). Its own
            # generator, so adding these pairs leaves every other pair of the corpus as it was.
            subject = inv.by_id[answer.refused]
            text, family, polarity = rule_text(declined, _phrase(declined, subject, others), val)
            pairs.append(Pair(text, polarity, family, subject.id, answer.id, 0, True, answer.split))
    return pairs


def _phrase(rng: random.Random, subject: Subject, others: Sequence[Subject]) -> str:
    """A phrase for `subject`, a third of the time listed with one or two of `others` (in any order),
    as real policies name several things in one sentence; the label stays the subject's."""
    phrases = [rng.choice(subject.phrases)]
    if others and rng.random() < COMPOUND_FRACTION:
        phrases += [
            rng.choice(s.phrases) for s in rng.sample(list(others), k=min(len(others), rng.randint(1, 2)))
        ]
        rng.shuffle(phrases)
    return join_phrases(phrases)
