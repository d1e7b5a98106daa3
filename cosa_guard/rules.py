"""A config's rules: its free-form text split into numbered, reviewable statements.

CoSA configs are prose. To enforce the prose (not only the `allow` list) the text is split into
rules, each with a polarity (the rule allows or forbids something), the risk categories it
concerns and, for an exception ("violence is allowed, except severed limbs"), the number of the
rule it narrows. `cosa-guard lint` shows the rules to the reviewer, `sign` signs them with the
config, and the rule judge (`cosa_guard.judges.rules`) judges an answer against each of them.
A config signed before rules existed has its rules derived at load and flagged as unreviewed.

Shared interface (issue 19): `Rule` and `RuleSet` are the contract between the rule parser,
signing, the rule judge and the decision. Keep their fields stable.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cosa_guard.rule_lexicon import categories_of
from cosa_guard.taxonomy import CATEGORY_IDS, OTHER

if TYPE_CHECKING:
    from cosa_guard.config import SafetyConfig

Polarity = Literal["allows", "forbids"]
MAX_RULES = 64
MAX_RULE_CHARS = 2_000


class Rule(BaseModel):
    """One statement of a config's policy text."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int = Field(ge=1, description="1-based position, shown to reviewers and in decisions")
    text: str = Field(
        min_length=1, max_length=MAX_RULE_CHARS, description="the rule as the reviewer approved it"
    )
    polarity: Polarity
    categories: tuple[str, ...] = Field(default=(), description="risk category ids the rule concerns")
    exception_of: int | None = Field(default=None, description="the rule this one narrows, if any")

    @field_validator("categories")
    @classmethod
    def _categories_known_and_sorted(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [c for c in value if c not in CATEGORY_IDS]
        if unknown:
            raise ValueError(f"unknown risk categories {unknown}; known: {list(CATEGORY_IDS)}")
        # Sorted like `allow`, so the order a reviewer wrote them in never changes the config hash.
        return tuple(sorted(set(value)))

    @model_validator(mode="after")
    def _allows_no_other(self) -> Rule:
        if self.polarity == "allows" and OTHER in self.categories:
            raise ValueError(f"rule {self.number} allows 'other' (Other Harms), which no config may allow")
        return self


def check_rules(rules: Sequence[Rule]) -> None:
    """Raise ValueError unless rules are numbered 1..n in order and each exception narrows an allows rule."""
    if len(rules) > MAX_RULES:
        raise ValueError(f"{len(rules)} rules, at most {MAX_RULES}")
    by_number = {}
    for position, rule in enumerate(rules, 1):
        if rule.number != position:
            raise ValueError(
                f"rules must be numbered 1..{len(rules)} in order; rule {position} is {rule.number}"
            )
        by_number[rule.number] = rule
    for rule in rules:
        if rule.exception_of is None:
            continue
        parent = by_number.get(rule.exception_of)
        if parent is None or parent.polarity != "allows" or rule.polarity != "forbids":
            raise ValueError(
                f"rule {rule.number}: exception_of must name another rule that allows, and the exception "
                f"must forbid (rule {rule.exception_of} "
                + (
                    "does not exist)"
                    if parent is None
                    else f"{parent.polarity}, rule {rule.number} {rule.polarity})"
                )
            )


class RuleSet(BaseModel):
    """A config's rules and whether a reviewer signed them (False: derived from the text at load)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    rules: tuple[Rule, ...] = Field(default=(), max_length=MAX_RULES)
    reviewed: bool = False

    @model_validator(mode="after")
    def _valid(self) -> RuleSet:
        check_rules(self.rules)
        return self


def config_rules(config: SafetyConfig) -> RuleSet:
    """The rules a config is enforced by: its signed rules (reviewed) or, if it has none, derived ones.

    Derived rules are capped at MAX_RULES (lint warns when a text yields more) and cached per
    config, so a judge may call this on every request.
    """
    return _config_rules(config)


@functools.lru_cache(maxsize=256)
def _config_rules(config: SafetyConfig) -> RuleSet:
    if config.rules:
        return RuleSet(rules=config.rules, reviewed=True)
    return RuleSet(rules=derive_rules(config.text, config.allow)[:MAX_RULES], reviewed=False)


# --- Deriving rules from the text -------------------------------------------------------------
#
# Deterministic and model-free, so a reviewer can predict it and the runtime derives exactly
# what lint showed. The text is cut into units: each bullet or numbered item is one unit (its
# author's own unit of policy), each sentence of prose is one. A unit is cut further into
# segments at sentence ends, semicolons and contrast words ("except", "unless", "but",
# "however"); each segment gets a polarity from cue words. Within a unit, segments join the
# rule before them, except that a forbidding segment after an allowing one starts a new rule
# that is an exception of it ("violence is allowed, except severed limbs"). A forbidding
# segment followed by a carve-out ("no violence, except historical battles") stays one forbids
# rule: its text carries the carve-out, and an exception may only narrow an allows rule.
#
# Statements with no polarity (who the deployment is, its tone, its audience) are context and
# become no rule; so are allows statements that name no risk category, which unlock nothing.
# Forbidding statements are kept even with no category ("no pork products"): those are the
# rules only a text-reading judge can enforce, and lint points them out to the reviewer.

_BULLET = re.compile(r"^\s*(?:[-*\u2022\u2013]|\(?\d{1,2}[.)\-]|\(?[a-zA-Z]\))\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?-i:(?![a-z]))|(?<=[\u3002\uff01\uff1f])\s*")
# Where a unit is cut into segments: sentence ends, semicolons, and before a contrast word (but
# not between "but" and the word it introduces, as in "but excludes").
_CUT = re.compile(
    _SENTENCE_END.pattern + r"|;\s*"
    r"|(?<!\bbut)(?<!\band),?\s+(?=(?:except|excluding|excludes?|unless|other\s+than|apart\s+from|but"
    r"|however|although|though|yet)\b)",
    re.IGNORECASE,
)
# A clause that opens with one of these narrows what came before it.
_EXCEPT = re.compile(
    r"^\W*(?:except|excluding|excludes?|unless|other than|apart from|but not)\b", re.IGNORECASE
)
_CONTRAST = re.compile(r"^\W*(?:however|but|nevertheless|nonetheless|yet|although|though)\b", re.IGNORECASE)
_FORBIDS = re.compile(
    r"\b(?:must\s+not|mustn't|may\s+not|cannot|can't|can\s+not|should\s+not|shouldn't|shall\s+not"
    r"|will\s+not|won't|do\s+not|don't|does\s+not|doesn't|never|no(?!\s+(?:matter|longer|doubt)\b)"
    r"|nothing|not\s+(?:be\s+)?(?:allowed|permitted|permissible|acceptable|tolerated|included|shared)"
    r"|forbid\w*|prohibit\w*|ban|bans|banned|avoid\w*|exclud\w*|refus\w*|disallow\w*|steer\s+clear"
    r"|free\s+(?:from|of))\b",
    re.IGNORECASE,
)
_ALLOWS = re.compile(
    r"\b(?:may(?!\s+not\b)|allow\w*|permit\w*|permissible|enabl\w*|acceptable|unlock\w*|welcome"
    r"|encouraged|fully|in\s+full|in\s+detail|frank\w*|(?:is|are)\s+fine|ok(?:ay)?\s+to|free\s+to"
    r"|can\s+(?:discuss|describe|depict|include|contain|mention|show|explain|cover|talk|write|portray)"
    r"|needs?\s+(?:vivid|detailed|full|frank|accurate|explicit|graphic))\b",
    re.IGNORECASE,
)
# Requirements ("must adhere", "should focus on", "only ...") forbid what breaks them, unless
# the statement also says what it allows ("only minor sexual content is permissible").
_REQUIRES = re.compile(r"\b(?:must|should|only|required|imperative|mandat\w*)\b", re.IGNORECASE)
# Function words that tell English text from the languages configs are most often written in.
_ENGLISH = frozenset(
    re.findall(
        r"\S+",
        "the and of to a an in is are we our you your for that it not no or with be as on any all this "
        "may must can do does content about from by",
    )
)
_FOREIGN = frozenset(
    re.findall(
        r"\S+",
        "le la les des du et est dans pour une un pas aucun der die das und ist nicht keine kein wir "
        "el los las y es para por una del que il di che non per o os não com um uma de en het niet",
    )
)


@dataclass(slots=True)
class _Draft:
    unit: str
    start: int
    end: int
    polarity: Polarity | None
    block: int
    contrast: bool = False
    parent: _Draft | None = None
    categories: tuple[str, ...] = field(default=())

    @property
    def text(self) -> str:
        return self.unit[self.start : self.end].strip(" ,;")


def derive_rules(text: str, allow: Iterable[str] = ()) -> tuple[Rule, ...]:
    """Numbered rules read from a config's policy text; `allow` decides statements with no cue words.

    A statement without a polarity cue whose categories are all on `allow` allows them
    ("investigators need explanations of how fraud schemes work" with `allow: [financial_crime]`).
    Text that is not English becomes one forbids rule per statement with no categories, for the
    reviewer to set by hand.
    """
    allowed = frozenset(allow)
    units = list(_units(text))
    if not _looks_english(text):
        drafts = [_Draft(unit, 0, len(unit), "forbids", block) for block, unit, _ in units]
    else:
        drafts = [d for block, unit, default in units for d in _drafts(unit, block, default, allowed)]
    return _number(_link(drafts))


def _blocks(text: str) -> list[tuple[bool, str]]:
    """(is a bullet, text) per bullet or numbered item and per prose paragraph, wrapped lines joined."""
    blocks: list[tuple[bool, str]] = []
    previous_blank = True
    for line in text.splitlines():
        if not line.strip():
            previous_blank = True
            continue
        marker = _BULLET.match(line)
        if marker:
            blocks.append((True, line[marker.end() :].strip()))
        elif (
            blocks
            and not previous_blank
            and (not blocks[-1][0] or not blocks[-1][1].endswith((".", "!", "?", ":")))
        ):
            blocks[-1] = (blocks[-1][0], f"{blocks[-1][1]} {line.strip()}")
        else:
            blocks.append((False, line.strip()))
        previous_blank = False
    return blocks


def _units(text: str) -> Iterator[tuple[int, str, Polarity | None]]:
    """(block index, unit text, polarity a lead-in gave it) per bullet item and prose sentence."""
    blocks = _blocks(text)
    lead_in: Polarity | None = None
    for index, (bullet, body) in enumerate(blocks):
        if bullet:
            yield index, body, lead_in
            continue
        lead_in = None
        sentences = [s for s in _SENTENCE_END.split(body) if s.strip()]
        next_is_bullet = index + 1 < len(blocks) and blocks[index + 1][0]
        if next_is_bullet and sentences and sentences[-1].rstrip().endswith(":"):
            # "We do not allow the following:" frames the bullets after it and is no rule itself.
            lead_in = _polarity(sentences.pop())
        for sentence in sentences:
            yield index, sentence.strip(), None


def _drafts(unit: str, block: int, default: Polarity | None, allowed: frozenset[str]) -> list[_Draft]:
    drafts: list[_Draft] = []
    for start, end in _segments(unit):
        segment = unit[start:end]
        polarity = _polarity(segment)
        current = drafts[-1] if drafts else None
        excepts = _EXCEPT.match(segment) is not None
        contrast = excepts or _CONTRAST.match(segment) is not None
        if current is None:
            drafts.append(_Draft(unit, start, end, polarity, block, contrast=contrast))
        elif current.polarity == "allows" and (excepts or polarity == "forbids"):
            drafts.append(_Draft(unit, start, end, "forbids", block, contrast=contrast, parent=current))
        else:
            current.end = end
            current.polarity = current.polarity or polarity
    for draft in drafts:
        draft.categories = categories_of(draft.text)
        if draft.polarity is None:
            draft.polarity = default or _by_allow_list(draft.categories, allowed)
    return drafts


def _segments(unit: str) -> Iterator[tuple[int, int]]:
    """(start, end) of each segment of `unit`, so rules keep the author's exact wording."""
    start = 0
    for cut in _CUT.finditer(unit):
        if unit[start : cut.start()].strip(" ,;"):
            yield start, cut.start()
        start = cut.end()
    if unit[start:].strip(" ,;"):
        yield start, len(unit)


def _polarity(text: str) -> Polarity | None:
    if _FORBIDS.search(text):
        return "forbids"
    if _ALLOWS.search(text):
        return "allows"
    if _REQUIRES.search(text):
        return "forbids"
    return None


def _by_allow_list(categories: tuple[str, ...], allowed: frozenset[str]) -> Polarity | None:
    return "allows" if categories and set(categories) <= allowed else None


def _link(drafts: list[_Draft]) -> list[_Draft]:
    """Drop context, then tie each forbids rule to the allows rule it narrows, if any."""
    kept: list[_Draft] = []
    for draft in drafts:
        if draft.polarity == "allows":
            draft.categories = tuple(c for c in draft.categories if c != OTHER)
            if draft.categories:
                kept.append(draft)
            continue
        if draft.polarity != "forbids":
            continue
        if not (draft.parent in kept and _narrows(draft, draft.parent)):
            draft.parent = _parent_of(draft, kept)
        if draft.parent is not None and not draft.categories:
            draft.categories = draft.parent.categories
        kept.append(draft)
    return kept


def _narrows(draft: _Draft, parent: _Draft | None) -> bool:
    """Whether a forbids segment after an allows one in the same unit is its exception, not a new topic."""
    return parent is not None and (
        draft.contrast or not draft.categories or bool(set(draft.categories) & set(parent.categories))
    )


def _parent_of(draft: _Draft, earlier: list[_Draft]) -> _Draft | None:
    """The allows rule a forbids rule narrows: the one its "however" answers, else the nearest sharing one."""
    if draft.contrast and earlier and earlier[-1].block == draft.block and earlier[-1].polarity == "allows":
        return earlier[-1]
    shared = [d for d in earlier if d.polarity == "allows" and set(d.categories) & set(draft.categories)]
    return shared[-1] if shared else None


def _number(drafts: list[_Draft]) -> tuple[Rule, ...]:
    numbers: dict[int, int] = {}
    rules: list[Rule] = []
    for draft in drafts:
        for piece in _pieces(draft.text):
            number = len(rules) + 1
            numbers.setdefault(id(draft), number)
            parent = numbers.get(id(draft.parent)) if draft.parent is not None else None
            rules.append(
                Rule(
                    number=number,
                    text=piece,
                    polarity=draft.polarity or "forbids",
                    categories=draft.categories,
                    exception_of=parent,
                )
            )
    return tuple(rules)


def _pieces(text: str) -> Iterator[str]:
    """`text` in pieces a rule can hold, cut at whitespace: nothing of a long statement is lost."""
    while len(text) > MAX_RULE_CHARS:
        cut = text.rfind(" ", 0, MAX_RULE_CHARS)
        cut = cut if cut > 0 else MAX_RULE_CHARS
        yield text[:cut]
        text = text[cut:].lstrip()
    if text:
        yield text


def _looks_english(text: str) -> bool:
    words = re.findall(r"[^\W\d_]+", text.lower())
    letters = sum(len(w) for w in words)
    if sum(len(w) for w in words if w.isascii()) * 2 < letters:
        return False
    return sum(w in _ENGLISH for w in words) >= sum(w in _FOREIGN for w in words)
