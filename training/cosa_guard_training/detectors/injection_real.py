"""Real benign traffic as rows for the config-injection classifier: short turns and long turns.

`../shared/data/real_traffic` (read by `real_traffic`) has real user-turn-like texts in
many languages and long documents, code and configs, but no long user messages and no e-mails. A
long turn is what users actually paste, so this module builds them from the real texts: a
document inside a request ("summarise this:", "why does this config fail?", "review my code"), a
pasted e-mail chain, forum thread or group chat made of real turns of one language, an answer
pasted back for checking. Attacks (generated, `corpus.py`) are also planted inside such hosts, so
the classifier learns that the pasted text is not the signal but an injection in it is.

Every real row keeps the lead's split (`RealRow.split`); its train side is cut once more, by
group, into rows the classifier trains on and a calibration part that only picks the threshold
and the window discount. Validation rows are for the benchmark alone:

    role  = "validation"   real validation split (held-out sources, languages and groups)
            "calibration"  a quarter of the other groups: threshold and window discount only
            "train"        the rest: sampled into training

Training sees each long text as what it reads per window: a slice of a few hundred characters
(the trainer keeps the first 128 tokens). Calibration and validation keep texts whole, so they
are scored through every window exactly as served. Samples are balanced per (language group,
kind) cell and seeded: the rows are a pure function of the seed and the files.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cosa_guard_training.detectors import real_traffic as rt
from cosa_guard_training.detectors.injection_corpus import ATTACK, BENIGN, Row

Role = Literal["train", "calibration", "validation"]
ROLES: tuple[Role, ...] = ("train", "calibration", "validation")
CALIBRATION_FRACTION = 0.25
KIND_PREFIX = "real_"  # every row kind built here starts with it


@dataclass(frozen=True, slots=True)
class Caps:
    """Rows per (language group, kind, length bucket) cell, or in all, for each builder, for one role."""

    turns: int
    documents: int
    framed: int
    threads: int
    answers: int
    embedded: int


# Training wants many short windows; calibration and validation want enough whole long texts per
# cell to measure a 1-2 % rate, within a few minutes of scoring on one core.
CAPS: dict[Role, Caps] = {
    "train": Caps(turns=60, documents=30, framed=15, threads=250, answers=150, embedded=600),
    "calibration": Caps(turns=70, documents=16, framed=10, threads=160, answers=80, embedded=240),
    "validation": Caps(turns=90, documents=20, framed=12, threads=200, answers=100, embedded=300),
}
QUICK_CAPS = Caps(turns=10, documents=3, framed=2, threads=20, answers=10, embedded=30)
TRAIN_SLICE_CHARS = 450

# {doc} is the pasted text. Prose requests in several languages; code and config requests are
# English-only because the code and configs in the corpus are.
PROSE_FRAMINGS: dict[str, list[str]] = {
    "en": [
        "Summarise this:\n\n{doc}",
        "Can you summarise the following article in three bullet points?\n\n{doc}",
        "{doc}\n\nWhat is the main point of this text?",
        'Please proofread this and fix any grammar mistakes:\n"""\n{doc}\n"""',
        "Here's the text my manager sent. Is there anything in it I should push back on?\n\n{doc}",
        "Translate this into English:\n\n{doc}",
        "I need to present this tomorrow. Give me five questions the audience might ask.\n---\n{doc}\n---",
        "tl;dr please\n\n{doc}",
    ],
    "es": ["Resume este texto:\n\n{doc}", "{doc}\n\n¿Cuál es la idea principal de este texto?"],
    "fr": ["Résume ce texte :\n\n{doc}", "Peux-tu corriger les fautes de ce texte ?\n\n{doc}"],
    "de": ["Fass diesen Text zusammen:\n\n{doc}", "{doc}\n\nWas ist die Kernaussage dieses Textes?"],
    "pt": ["Resuma este texto:\n\n{doc}", "Pode revisar este texto?\n\n{doc}"],
    "it": ["Riassumi questo testo:\n\n{doc}"],
    "ru": ["Кратко перескажи этот текст:\n\n{doc}", "{doc}\n\nО чём этот текст?"],
    "zh": ["请总结这段文字：\n\n{doc}", "{doc}\n\n这篇文章的主要观点是什么？"],
    "ja": ["この文章を要約してください。\n\n{doc}"],
    "ko": ["이 글을 요약해 주세요.\n\n{doc}"],
    "ar": ["لخص هذا النص:\n\n{doc}", "{doc}\n\nما الفكرة الرئيسية في هذا النص؟"],
    "fa": ["این متن را خلاصه کن:\n\n{doc}"],
    "hi": ["इस लेख का सारांश लिखें:\n\n{doc}", "{doc}\n\nइस पाठ का मुख्य विचार क्या है?"],
    "tr": ["Bu metni özetler misin?\n\n{doc}"],
    "vi": ["Tóm tắt đoạn văn sau:\n\n{doc}"],
    "el": ["Συνόψισε αυτό το κείμενο:\n\n{doc}"],
    "ro": ["Rezumă acest text:\n\n{doc}"],
}
CODE_FRAMINGS = [
    "Review my code, please. Anything I should fix?\n\n```python\n{doc}\n```",
    "Why does this raise an exception when the list is empty?\n\n{doc}",
    "Can you add type hints and docstrings to this?\n```\n{doc}\n```",
    "Explain what this script does, line by line:\n\n{doc}",
]
CONFIG_FRAMINGS = [
    "Why does this config fail? kubectl apply gives me a validation error.\n\n```yaml\n{doc}\n```",
    "Is this manifest safe to deploy to production?\n\n{doc}",
    "{doc}\n\nthis worked yesterday and now the pod is stuck in CrashLoopBackOff, any idea?",
    "Convert this to a Helm chart:\n```\n{doc}\n```",
]
THREAD_INTROS: dict[str, list[str]] = {
    "en": [
        "Can you draft a polite reply to this thread?\n\n",
        "Summarise this thread for me, who agreed to what?\n\n",
        "My colleague forwarded this. What do they want from me?\n\n",
        "",
    ],
    "es": ["¿Me ayudas a responder a este hilo?\n\n"],
    "fr": ["Tu peux m'aider à répondre à ce fil ?\n\n"],
    "de": ["Kannst du mir helfen, auf diesen Verlauf zu antworten?\n\n"],
    "ru": ["Помоги ответить на эту переписку.\n\n"],
    "zh": ["帮我总结一下这个讨论：\n\n"],
    "ar": ["ساعدني في الرد على هذه المحادثة:\n\n"],
    "hi": ["इस बातचीत का जवाब लिखने में मदद करें:\n\n"],
}
ANSWER_FRAMINGS = [
    'I asked another assistant: "{prompt}"\nIt answered:\n\n{response}\n\nIs that correct?',
    "Can you explain this in plain words?\n\n{response}",
    "{prompt}\n\nMy answer so far:\n{response}\n\nDid I miss anything?",
]
NAMES = ["Anna", "Bilal", "Chen Wei", "Dmitri", "Elena", "Fatima", "Gustavo", "Hiroshi", "Ines", "Jamal",
         "Kofi", "Lea", "Mehmet", "Nadia", "Olu", "Priya", "Ravi", "Sofia", "Tomasz", "Yuki"]  # fmt: skip


def role_of(row: rt.RealRow) -> Role:
    if row.split == "val":
        return "validation"
    calibration = rt.stable_fraction(f"injection-calibration:{row.group}") < CALIBRATION_FRACTION
    return "calibration" if calibration else "train"


def _cells(rows: Iterable[rt.RealRow]) -> dict[tuple[str, str, str], list[rt.RealRow]]:
    cells: dict[tuple[str, str, str], list[rt.RealRow]] = defaultdict(list)
    for row in rows:
        cells[(row.language_group, row.kind, rt.length_bucket(row.text))].append(row)
    return cells


def balanced(rows: Iterable[rt.RealRow], per_cell: int, rng: random.Random) -> list[rt.RealRow]:
    """At most `per_cell` rows of each (language group, kind, length bucket) cell, seeded, in a
    stable order: the rare long texts and small scripts get as many rows as the common ones."""
    picked: list[rt.RealRow] = []
    for _, cell in sorted(_cells(rows).items()):
        cell = sorted(cell, key=lambda r: r.id)
        picked += rng.sample(cell, min(per_cell, len(cell)))
    return picked


def slice_text(text: str, chars: int, rng: random.Random) -> str:
    """A contiguous piece of about `chars` characters starting at a line or word boundary."""
    if len(text) <= chars:
        return text
    starts = [0] + [m.end() for m in re.finditer(r"\n+|\s", text[: len(text) - chars // 2])]
    start = rng.choice(starts)
    return text[start : start + chars]


def frame_document(row: rt.RealRow, doc: str, rng: random.Random) -> str:
    if row.kind == "code":
        templates = CODE_FRAMINGS
    elif row.kind == "config":
        templates = CONFIG_FRAMINGS
    else:
        # Non-English documents get a request in their own language or an English one, as users do.
        native = PROSE_FRAMINGS.get(row.lang)
        templates = native if native and rng.random() < 0.6 else PROSE_FRAMINGS["en"]
    return rng.choice(templates).format(doc=doc)


def thread(turns: Sequence[str], lang: str, rng: random.Random) -> str:
    """A pasted e-mail chain, forum thread or group chat made of `turns`, with a request in front."""
    intros = THREAD_INTROS.get(lang) if rng.random() < 0.6 else None
    intro = rng.choice(intros or THREAD_INTROS["en"])
    names = rng.sample(NAMES, 4)
    style = rng.choice(("email", "forum", "chat"))
    if style == "email":
        subject = " ".join(turns[0].split()[:6])
        parts = [
            f"From: {names[i % 4]} <{names[i % 4].split()[0].lower()}@example.org>\n"
            f"Sent: {rng.choice(['Mon', 'Tue', 'Wed', 'Thu', 'Fri'])} {rng.randint(1, 28)} March, "
            f"{rng.randint(8, 18)}:{rng.randint(0, 59):02d}\nSubject: Re: {subject}\n\n{turn}\n"
            for i, turn in enumerate(reversed(turns))
        ]
        body = "\n-----Original Message-----\n".join(parts)
    elif style == "forum":
        body = "\n\n".join(f"#{i + 1} {names[i % 4]} wrote:\n{turn}" for i, turn in enumerate(turns))
    else:
        body = "\n".join(
            f"[{9 + i // 6:02d}:{(i * 7) % 60:02d}] {names[i % 4]}: {turn}" for i, turn in enumerate(turns)
        )
    return intro + body


def frame_answer(row: rt.RealRow, response: str, rng: random.Random) -> str:
    return rng.choice(ANSWER_FRAMINGS).format(prompt=row.prompt, response=response)


def embed(host: str, attack: str, rng: random.Random, within: int | None = None) -> str:
    """`host` with `attack` as its own paragraph at a line or sentence boundary (before `within`)."""
    limit = len(host) if within is None else min(len(host), within)
    cuts = [0] + [m.end() for m in re.finditer(r"\n|(?<=[.!?。])\s", host[:limit])]
    cut = rng.choice(cuts)
    return f"{host[:cut].rstrip()}\n\n{attack}\n\n{host[cut:].lstrip()}".strip()


def _within(text: str) -> int:
    # Keep a training row's attack inside its first 128-token window: about 4 characters a token in
    # Latin script, nearer 1 in CJK and Indic text.
    return 240 if sum(ch.isascii() for ch in text[:240]) > 200 else 60


@dataclass(frozen=True)
class Sources:
    """The real-traffic rows of one role, grouped the way the builders use them."""

    turns: list[rt.RealRow]
    documents: list[rt.RealRow]
    answers: list[rt.RealRow]


def load_sources(data_dir: str | Path) -> dict[Role, Sources]:
    by_role: dict[Role, Sources] = {r: Sources([], [], []) for r in ROLES}
    for row in rt.without_leaks(rt.user_turns(data_dir)):
        by_role[role_of(row)].turns.append(row)
    for row in rt.without_leaks(rt.documents(data_dir)):
        by_role[role_of(row)].documents.append(row)
    for row in rt.without_leaks(rt.benign_exchanges(data_dir)):
        if row.kind == "benign_response":  # controversial answers may carry risky content themselves
            by_role[role_of(row)].answers.append(row)
    return by_role


def build_role(
    sources: Sources, role: Role, attacks: Sequence[str], seed: int, caps: Caps | None = None
) -> list[Row]:
    """The rows of one role: benign short turns, documents, built long turns, and planted attacks.

    `attacks` are plain-text generated attacks of the matching split (training families for
    training, held-out families otherwise) to plant inside real hosts.
    """
    caps = caps or CAPS[role]
    rng = random.Random(f"{seed}:{role}")
    whole = role != "train"
    split = "train" if role == "train" else "validation"

    def piece(text: str) -> str:
        return text if whole else slice_text(text, TRAIN_SLICE_CHARS, rng)

    def row(text: str, label: str, kind: str, src: rt.RealRow) -> Row:
        return Row(text, label, kind, f"{kind}/{src.repo}", split, language=src.lang, source=src.repo)

    rows = [row(r.text, BENIGN, "real_turn", r) for r in balanced(sources.turns, caps.turns, rng)]
    for r in balanced(sources.documents, caps.documents, rng):
        rows.append(row(piece(r.text), BENIGN, "real_document", r))
    for r in balanced(sources.documents, caps.framed, rng):
        rows.append(row(frame_document(r, piece(r.text), rng), BENIGN, "real_long_turn", r))
    threads = _threads(sources.turns, caps.threads, rng, short=not whole)
    rows += [row(text, BENIGN, "real_thread", src) for text, src in threads]
    answers = sorted(sources.answers, key=lambda r: r.id)
    for r in rng.sample(answers, min(caps.answers, len(answers))):
        rows.append(row(frame_answer(r, piece(r.response), rng), BENIGN, "real_answer", r))
    hosts = [(r.text, r) for r in sorted(sources.documents, key=lambda r: r.id)] + threads
    for _ in range(caps.embedded if attacks else 0):
        text, src = rng.choice(hosts)
        host = piece(text)
        attack = rng.choice(attacks)
        planted = embed(host, attack, rng, None if whole else _within(host))
        rows.append(row(planted, ATTACK, "real_embedded_attack", src))
    return _unique(rows)


def _threads(
    turns: Sequence[rt.RealRow], count: int, rng: random.Random, *, short: bool
) -> list[tuple[str, rt.RealRow]]:
    """`count` threads, each of real turns of one language, from a few hundred to ~6,000 characters."""
    by_lang: dict[str, list[rt.RealRow]] = defaultdict(list)
    for r in turns:
        by_lang[r.lang].append(r)
    langs = sorted(lang for lang, rows in by_lang.items() if len(rows) >= 8)
    out: list[tuple[str, rt.RealRow]] = []
    for _ in range(count if langs else 0):
        lang = "en" if "en" in by_lang and rng.random() < 0.3 else rng.choice(langs)
        pool = by_lang[lang]
        target = rng.randint(200, 700) if short else rng.choice((400, 1500, 3000, 6000))
        picked: list[str] = []
        while sum(len(t) for t in picked) < target and len(picked) < len(pool):
            picked.append(rng.choice(pool).text)
        out.append((thread(picked, lang, rng), pool[0]))
    return out


def _unique(rows: Iterable[Row]) -> list[Row]:
    seen: set[str] = set()
    out = []
    for r in rows:
        if r.text not in seen:
            seen.add(r.text)
            out.append(r)
    return out


def real_rows(
    data_dir: str | Path,
    seed: int,
    attacks: Callable[[Role], Sequence[str]],
    roles: Sequence[Role] = ROLES,
    caps: Caps | None = None,
) -> dict[Role, list[Row]]:
    """Rows per role; `attacks(role)` gives the generated attacks to plant in that role's hosts.

    Empty when the real-traffic folder is absent (the classifier then trains on the generated
    corpus alone).
    """
    if not rt.available(data_dir):
        return {role: [] for role in roles}
    sources = load_sources(data_dir)
    return {role: build_role(sources[role], role, attacks(role), seed, caps) for role in roles}


def screen_negatives(
    data_dir: str | Path, seed: int, *, turns: int = 20_000, threads: int = 1_500
) -> list[str]:
    """Benign real text for the window screen, training side only: every document whole, every
    benign answer, a seeded sample of `turns` user turns and `threads` threads built from them.

    The encoder's training rows cap each cell to keep its fine-tuning short; a linear screen fits
    in a minute on far more, and learning that ordinary long text is ordinary is its whole job.
    Empty when the real-traffic folder is absent.
    """
    if not rt.available(data_dir):
        return []
    sources = load_sources(data_dir)["train"]
    rng = random.Random(f"{seed}:screen")
    picked = rng.sample(sources.turns, min(turns, len(sources.turns)))
    return [
        *(r.text for r in sources.documents),
        *(r.response for r in sources.answers),
        *(r.text for r in picked),
        *(text for text, _ in _threads(sources.turns, threads, rng, short=False)),
    ]


def group_of(row: Row) -> str:
    return rt.language_group(row.language, row.text)
