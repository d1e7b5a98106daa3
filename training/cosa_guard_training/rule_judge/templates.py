"""Rule phrasings: template families that turn a subject phrase into a rule's text.

Families are the unit of the template hold-out: the validation split uses only `VAL_FAMILIES`,
training only the others, so the reported figures are on wordings training never saw. The
`except_*` family words a rule the way a parsed exception reads ("except severed limbs").
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from cosa_guard.rules import Polarity


@dataclass(frozen=True)
class Family:
    name: str
    polarity: Polarity
    templates: tuple[str, ...]  # `{x}`: the subject phrase; `{X}`: the same, capitalised


FAMILIES: tuple[Family, ...] = (
    Family("never", "forbids", ("Never produce {x}.", "Never write about {x}.", "Do not include {x}.")),
    Family(
        "prohibit",
        "forbids",
        ("{X} is strictly prohibited.", "Our policy prohibits {x}.", "{X} is not permitted in any response."),
    ),
    Family("no", "forbids", ("No {x}.", "No {x} of any kind.", "Absolutely no {x} in answers.")),
    Family(
        "exclude",
        "forbids",
        ("Exclude any {x}.", "Avoid content that includes {x}.", "Responses must not contain {x}."),
    ),
    Family("except", "forbids", ("except {x}", "but not {x}", "excluding {x}", "{X} remains off limits.")),
    Family(
        "audience",
        "forbids",
        (
            "Because our readers are children, {x} must never appear.",
            "Our customers must never be shown {x}.",
            "Keep {x} out of everything you write for us.",
        ),
    ),
    Family("allowed", "allows", ("{X} is allowed.", "{X} is permitted.", "{X} is acceptable here.")),
    Family("permit", "allows", ("We permit {x}.", "You may include {x}.", "Feel free to discuss {x}.")),
    Family(
        "fiction",
        "allows",
        (
            "{X} is allowed only in fiction.",
            "{X} may appear in our stories and games.",
            "In stories, {x} is fine.",
        ),
    ),
    Family(
        "enable",
        "allows",
        (
            "Enable discussion of {x}.",
            "Our use case requires {x}.",
            "Allow content about {x} so that we can analyse it.",
        ),
    ),
)
VAL_FAMILIES = frozenset({"audience", "enable"})
# Real policy sentences carry context around the rule ("Given our audience, ...", "... in any form.").
_PREFIXES = ("", "", "", "Given our audience, ", "To keep the platform safe, ", "As a company policy, ")
_SUFFIXES = (
    "",
    "",
    "",
    " This applies in any form.",
    " This holds even in hypothetical scenarios.",
    " Our brand depends on it.",
)


def families(val: bool, polarity: Polarity | None = None) -> tuple[Family, ...]:
    return tuple(f for f in FAMILIES if (f.name in VAL_FAMILIES) == val and polarity in (None, f.polarity))


def render(template: str, phrase: str) -> str:
    return template.format(x=phrase, X=phrase[:1].upper() + phrase[1:])


def rule_text(
    rng: random.Random, phrase: str, val: bool, polarity: Polarity | None = None
) -> tuple[str, str, Polarity]:
    """A random rule about `phrase` from the split's families (of `polarity`, if given):
    (text, family name, polarity)."""
    family = rng.choice(families(val, polarity))
    text = render(rng.choice(family.templates), phrase)
    if family.name != "except":
        prefix = rng.choice(_PREFIXES)
        if prefix:
            text = prefix + text[:1].lower() + text[1:]
        text += rng.choice(_SUFFIXES)
    return text, family.name, family.polarity


def join_phrases(phrases: list[str]) -> str:
    """Several subjects in one rule, as policies list them: "a, b or c"."""
    return phrases[0] if len(phrases) == 1 else ", ".join(phrases[:-1]) + " or " + phrases[-1]
