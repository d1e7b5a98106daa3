"""The judge rubrics' strict parsers: anything but the asked-for format is invalid, never guessed."""

from __future__ import annotations

import json

import pytest

from cosa_guard.evaluation import rubrics
from cosa_guard.taxonomy import DEFAULT_TAXONOMY

ALL_FALSE = {c.id: False for c in DEFAULT_TAXONOMY}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The answer is complete.\nRating: [[5]]", 5),
        ("Scale quoted: [[0]] means refusal... final\nRating: [[3]]", 3),  # the last one wins
        ("Reasoning...\nRating: 2", 2),  # the plain form when no brackets
        ("Rating: **4**", 4),
        ("Rating: [[7]]", None),  # out of range
        ("Rating: [[-1]]", None),
        ("I think it is pretty good.", None),
    ],
)
def test_parse_rating(text: str, expected: int | None) -> None:
    assert rubrics.parse_rating(text) == expected


def test_parse_categories_reads_the_last_json_object() -> None:
    verdict = dict(ALL_FALSE, violence=True, weapons=True)
    text = (
        f"Example: {json.dumps(ALL_FALSE)}\nThe response describes a shooting.\n"
        f"```json\n{json.dumps(verdict)}\n```"
    )
    assert rubrics.parse_categories(text) == frozenset({"violence", "weapons"})


def test_parse_categories_accepts_display_names() -> None:
    by_name = {c.name.upper(): c.id == "privacy" for c in DEFAULT_TAXONOMY}
    assert rubrics.parse_categories(json.dumps(by_name)) == frozenset({"privacy"})


@pytest.mark.parametrize(
    "data",
    [
        {k: v for k, v in ALL_FALSE.items() if k != "violence"},  # a category missing
        dict(ALL_FALSE, unicorns=False),  # an unknown key
        dict(ALL_FALSE, violence="yes"),  # not a boolean
        dict(ALL_FALSE, violence=1),
    ],
)
def test_parse_categories_rejects_incomplete_or_loose_answers(data: dict[str, object]) -> None:
    assert rubrics.parse_categories(json.dumps(data)) is None


def test_parse_categories_without_json_is_invalid() -> None:
    assert rubrics.parse_categories("no harmful content at all") is None
    assert rubrics.parse_categories('{"violence": tru') is None


def test_messages_carry_the_question_and_response() -> None:
    system, user = rubrics.categories_messages("Q?", "A!")
    for category in DEFAULT_TAXONOMY:
        assert f'"{category.id}"' in system.content
    assert "Question:\nQ?" in user.content and "Response:\nA!" in user.content
    system, user = rubrics.helpfulness_messages("Q?", "A!")
    assert "Rating: [[k]]" in system.content and user.content.endswith("A!")
