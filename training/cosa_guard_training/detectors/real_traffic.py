"""Real benign traffic (`../shared/data/real_traffic/`) for training and calibrating the detectors.

The injection classifier and the category judge were fit on synthetic data; real traffic is
longer, multilingual and full of sensitive words used harmlessly. This module reads that folder
and splits it once for every trainer and benchmark, so no validation row ever reaches training:

- whole sources (`HELD_OUT_SOURCES`) and whole languages (`HELD_OUT_LANGS`) are validation only,
  so validation measures traffic unlike anything trained on;
- of the rest, a fixed fifth of the `group`s (a seed-free hash) is validation; rows that share a
  group (translations of one sentence, one dialogue, one prompt and its answers) stay together.

Nothing here is imported at run time; the product works without `../shared`.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cosa_guard_training.jsonl import read_jsonl

DEFAULT_DATA_DIR = Path("../shared/data")
FOLDER = "real_traffic"

USER_TURN_FILES = ("user_turns_en", "user_turns_multilingual", "sensitive_benign_prompts")
DOCUMENT_FILE = "documents"
BENIGN_EXCHANGE_FILE = "exchanges_benign"
HARMFUL_EXCHANGE_FILE = "exchanges_harmful_labelled"

# Validation-only, chosen before any training run: a source of everyday sentences in nine
# languages, one of Korean reviews and news, the Python PEPs (long English prose full of
# "must", "policy", "deny"), and one language of each of six scripts.
HELD_OUT_SOURCES = frozenset(
    {"github.com/cambridgeltl/xcopa", "github.com/KLUE-benchmark/KLUE", "github.com/python/peps"}
)
HELD_OUT_LANGS = frozenset({"uk", "hu", "mr", "ug", "yue", "am"})
VAL_GROUP_FRACTION = 0.2

Split = Literal["train", "val"]

_INDIC = ("DEVANAGARI", "BENGALI", "GURMUKHI", "GUJARATI", "ORIYA", "TAMIL", "TELUGU", "KANNADA")
_SCRIPT_GROUPS: dict[str, str] = {
    "LATIN": "latin",
    "CYRILLIC": "cyrillic",
    "ARABIC": "arabic_script",
    "GREEK": "greek",
    "CJK": "cjk",
    "HIRAGANA": "cjk",
    "KATAKANA": "cjk",
    "HANGUL": "cjk",
    **{script: "indic" for script in (*_INDIC, "MALAYALAM", "SINHALA")},
}
LANGUAGE_GROUPS = ("en", "latin", "cyrillic", "arabic_script", "greek", "cjk", "indic", "other")
LENGTH_BUCKETS = ("lt200", "200_999", "1000_4999", "5000plus")


@dataclass(frozen=True, slots=True)
class RealRow:
    """One row of a real-traffic file: a text (user turn or document) or a (prompt, response) pair."""

    id: str
    file: str
    kind: str
    lang: str
    source: str
    group: str
    text: str = ""
    prompt: str = ""
    response: str = ""
    label: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def repo(self) -> str:
        """`github.com/<owner>/<repo>`, the source without its path and commit."""
        return self.source.split(":", 1)[0]

    @property
    def split(self) -> Split:
        return split_of(self.repo, self.lang, self.group)

    @property
    def language_group(self) -> str:
        return language_group(self.lang, self.text or self.prompt)


def stable_fraction(key: str) -> float:
    """A number in [0, 1) fixed by `key` alone (no seed, no Python hash randomisation)."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "big") / 2**64


def split_of(repo: str, lang: str, group: str) -> Split:
    if repo in HELD_OUT_SOURCES or lang in HELD_OUT_LANGS:
        return "val"
    return "val" if stable_fraction(f"real-traffic:{group}") < VAL_GROUP_FRACTION else "train"


def dominant_script(text: str) -> str | None:
    """The Unicode script name (first word of the character name) of most letters, or None."""
    counts: Counter[str] = Counter()
    for char in text:
        if char.isalpha():
            name = unicodedata.name(char, "")
            if name:
                counts[name.split(" ", 1)[0]] += 1
    return counts.most_common(1)[0][0] if counts else None


def language_group(lang: str, text: str) -> str:
    """`en`, or the script family of the text (`latin`, `cyrillic`, `arabic_script`, ...)."""
    if lang == "en":
        return "en"
    script = dominant_script(text)
    return _SCRIPT_GROUPS.get(script or "", "other")


def length_bucket(text: str) -> str:
    n = len(text)
    if n < 200:
        return "lt200"
    if n < 1000:
        return "200_999"
    return "1000_4999" if n < 5000 else "5000plus"


def without_leaks(rows: Iterable[RealRow]) -> list[RealRow]:
    """`rows` less the validation rows whose group also has a training row.

    A held-out language or source puts its own rows in validation, but the translations of the
    same sentence in other languages (same `group`) train: such a row would be measured on text
    the model has seen in another language, so validation leaves it out.
    """
    rows = list(rows)
    trained = {row.group for row in rows if row.split == "train"}
    return [row for row in rows if row.split == "train" or row.group not in trained]


def available(data_dir: str | Path = DEFAULT_DATA_DIR) -> bool:
    return (Path(data_dir) / FOLDER / f"{DOCUMENT_FILE}.jsonl").is_file()


def read_rows(data_dir: str | Path, name: str) -> Iterator[RealRow]:
    """Rows of one file (`name` without `.jsonl`); FileNotFoundError names the folder to provide."""
    path = Path(data_dir) / FOLDER / f"{name}.jsonl"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: pass --data-dir pointing at the shared data folder")
    for raw in read_jsonl(path):
        yield RealRow(
            id=str(raw["id"]),
            file=name,
            kind=str(raw.get("kind", "")),
            lang=str(raw.get("lang", "")),
            source=str(raw.get("source", "")),
            group=str(raw.get("group") or raw["id"]),
            text=str(raw.get("text", "")),
            prompt=str(raw.get("prompt", "")),
            response=str(raw.get("response", "")),
            label=None if raw.get("label") is None else str(raw["label"]),
            meta=dict(raw.get("meta") or {}),
        )


def user_turns(data_dir: str | Path = DEFAULT_DATA_DIR) -> list[RealRow]:
    """Every benign user-turn-like text: English, multilingual and sensitive-sounding prompts."""
    return [row for name in USER_TURN_FILES for row in read_rows(data_dir, name)]


def documents(data_dir: str | Path = DEFAULT_DATA_DIR) -> list[RealRow]:
    """Long pasted content: Wikipedia paragraphs, news articles, code, configs, PEPs."""
    return list(read_rows(data_dir, DOCUMENT_FILE))


def benign_exchanges(data_dir: str | Path = DEFAULT_DATA_DIR) -> list[RealRow]:
    return list(read_rows(data_dir, BENIGN_EXCHANGE_FILE))


def harmful_exchanges(data_dir: str | Path = DEFAULT_DATA_DIR) -> list[RealRow]:
    return list(read_rows(data_dir, HARMFUL_EXCHANGE_FILE))
