"""Rules derived from a config's text: statements, polarity, categories and exceptions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cosa_guard.rule_lexicon import LEXICON, categories_of
from cosa_guard.rules import MAX_RULE_CHARS, Rule, RuleSet, derive_rules
from cosa_guard.taxonomy import CATEGORY_IDS

COSA_CONFIGS = Path(__file__).resolve().parents[2] / "shared" / "data" / "cosa_configs"


def _summary(rules: tuple[Rule, ...]) -> list[tuple[str, tuple[str, ...], int | None]]:
    return [(r.polarity, r.categories, r.exception_of) for r in rules]


def test_an_exception_becomes_its_own_forbidding_rule() -> None:
    rules = derive_rules("Violence is allowed, except severed limbs.")
    assert _summary(rules) == [("allows", ("violence",), None), ("forbids", ("violence",), 1)]
    assert [r.text for r in rules] == ["Violence is allowed", "except severed limbs."]


def test_a_however_sentence_narrows_the_allowing_rule_before_it() -> None:
    rules = derive_rules(
        "- Our policy permits hateful content about nationalities. However, our policy strictly prohibits "
        "hateful content based on religion or race.\n- Fights may be shown."
    )
    assert _summary(rules) == [
        ("allows", ("discrimination",), None),
        ("forbids", ("discrimination",), 1),
        ("allows", ("violence",), None),
    ]
    assert rules[1].text.startswith("However, our policy strictly prohibits")


def test_a_forbidding_rule_narrows_the_nearest_allowing_rule_that_shares_its_category() -> None:
    text = "Writers need vivid fictional violence. Be kind. Do not give real instructions for hurting people."
    assert _summary(derive_rules(text)) == [("allows", ("violence",), None), ("forbids", ("violence",), 1)]


def test_a_forbidding_rule_with_a_carve_out_stays_one_forbids_rule() -> None:
    rules = derive_rules(
        "Our content does not include violence, except generic mentions of historic battles."
    )
    assert _summary(rules) == [("forbids", ("violence",), None)]
    assert rules[0].text.endswith("historic battles.")


def test_bullets_and_numbered_items_are_statements_and_a_lead_in_gives_them_its_polarity() -> None:
    text = (
        "We are a film studio. We do not allow the following:\n"
        "- Terrorism or hate crimes.\n"
        "* Drug trafficking.\n"
        "1. Animal cruelty.\n"
        "2) Pork recipes.\n"
    )
    rules = derive_rules(text)
    assert [r.text for r in rules] == [
        "Terrorism or hate crimes.",
        "Drug trafficking.",
        "Animal cruelty.",
        "Pork recipes.",
    ]
    assert {r.polarity for r in rules} == {"forbids"}
    assert [r.categories for r in rules] == [("discrimination", "other"), ("drugs",), ("other",), ()]


def test_a_wrapped_line_continues_its_sentence() -> None:
    rules = derive_rules("You may describe battles in\ngraphic detail. Never describe\ntorture.")
    assert [r.text for r in rules] == [
        "You may describe battles in graphic detail.",
        "Never describe torture.",
    ]


def test_semicolon_clauses_with_their_own_polarity_are_separate_rules() -> None:
    rules = derive_rules("Violence is allowed; drug content is forbidden.")
    assert _summary(rules) == [("allows", ("violence",), None), ("forbids", ("drugs",), None)]


@pytest.mark.parametrize(
    ("statement", "polarity"),
    [
        ("Weapons may be discussed.", "allows"),
        ("Fraud is permitted in stories.", "allows"),
        ("Characters can discuss drug use.", "allows"),
        ("Explain money laundering fully.", "allows"),
        ("Weapons must not be described.", "forbids"),
        ("Never mention drugs.", "forbids"),
        ("Sexual content is forbidden.", "forbids"),
        ("No slurs.", "forbids"),
        ("Avoid gore.", "forbids"),
        ("Do not discuss theft.", "forbids"),
        ("Violence is prohibited.", "forbids"),
        ("Drug use may not be shown.", "forbids"),
        ("Any mention of alcohol should refer to juice.", "forbids"),
        ("Only mild violence is permissible.", "allows"),
    ],
)
def test_polarity_cues(statement: str, polarity: str) -> None:
    rules = derive_rules(statement)
    assert [r.polarity for r in rules] == [polarity]


def test_statements_without_a_polarity_are_context() -> None:
    assert derive_rules("We are a game studio in Berlin. Our players love strategy games. Be friendly.") == ()


def test_an_allowing_statement_that_names_no_category_unlocks_nothing_and_is_dropped() -> None:
    assert derive_rules("Help fully with homework.") == ()


def test_a_forbidding_statement_without_a_category_is_kept_for_a_text_reading_judge() -> None:
    (rule,) = derive_rules("Our content must avoid dishes or recipes with pork or gelatin.")
    assert (rule.polarity, rule.categories) == ("forbids", ())


def test_the_allow_list_decides_a_statement_without_cue_words() -> None:
    text = "Investigators study how fraud schemes and money laundering work."
    assert derive_rules(text) == ()
    assert _summary(derive_rules(text, allow=["financial_crime"])) == [("allows", ("financial_crime",), None)]
    assert derive_rules(text, allow=["violence"]) == ()


def test_an_allowing_rule_never_concerns_other() -> None:
    (rule,) = derive_rules("You may discuss terrorism and the wars it caused.")
    assert (rule.polarity, rule.categories) == ("allows", ("violence",))


@pytest.mark.parametrize(
    "text",
    [
        "Nous autorisons la violence dans les jeux. Le contenu sexuel est interdit.",
        "我们允许游戏中的暴力内容。禁止色情内容。",
        "Wir erlauben Gewalt; keine Drogen!",
    ],
)
def test_text_that_is_not_english_becomes_forbids_rules_without_categories(text: str) -> None:
    rules = derive_rules(text)
    assert rules
    assert {(r.polarity, r.categories) for r in rules} == {("forbids", ())}
    assert "".join(r.text for r in rules).replace(" ", "") == text.replace(" ", "")


def test_a_statement_longer_than_a_rule_holds_is_split_without_losing_text() -> None:
    text = "Never describe " + "gory battles " * 400 + "at all."
    rules = derive_rules(text)
    assert len(rules) > 1
    assert all(len(r.text) <= MAX_RULE_CHARS for r in rules)
    assert " ".join(r.text for r in rules) == text


def test_derived_rules_are_a_valid_rule_set() -> None:
    text = "Violence is allowed, except severed limbs. No drugs. Weapons may be shown but not built."
    rules = derive_rules(text)
    assert [r.number for r in rules] == list(range(1, len(rules) + 1))
    assert RuleSet(rules=rules).rules == rules
    assert _summary(rules)[-1] == ("forbids", ("weapons",), len(rules) - 1)


def test_the_lexicon_covers_every_category_in_taxonomy_order() -> None:
    assert tuple(LEXICON) == CATEGORY_IDS
    assert categories_of("self-harm, a handgun and a money mule") == (
        "financial_crime",
        "violence",
        "weapons",
    )
    assert categories_of("several severe sessions of methodical work") == ()


def _cosapien(scenario: str) -> str:
    path = COSA_CONFIGS / "cosapien_scenario_configs.jsonl"
    if not path.exists():
        pytest.skip("shared data (../shared/data/cosa_configs) is not available")
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return str(next(r["config_text"] for r in rows if r["scenario"] == scenario))


def test_cosapien_game_config_forbids_religious_hate_as_an_exception_of_nationality_hate() -> None:
    rules = derive_rules(_cosapien("game_development"))
    religion = next(r for r in rules if "religion" in r.text)
    assert (religion.polarity, religion.categories) == ("forbids", ("discrimination",))
    parent = rules[religion.exception_of - 1] if religion.exception_of else None
    assert parent is not None and parent.polarity == "allows" and "nationalities" in parent.text
    limbs = next(r for r in rules if "severed" in r.text)
    assert limbs.polarity == "forbids" and limbs.exception_of is not None


def test_cosapien_publisher_config_forbids_pork_with_no_category() -> None:
    rules = derive_rules(_cosapien("book_publisher_arab"))
    pork = next(r for r in rules if "Pork" in r.text)
    assert (pork.polarity, pork.categories) == ("forbids", ())
    assert all(r.polarity == "forbids" for r in rules)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.one_of(
            st.text(max_size=80),
            st.sampled_from(
                [
                    "- ",
                    "1. ",
                    "\n",
                    "\n\n",
                    ". ",
                    "; ",
                    ", except ",
                    " but not ",
                    "However, ",
                    "No ",
                    "may ",
                    "violence",
                    "drugs",
                    "must ",
                    "：",
                    "。",
                    "\u2022 ",
                    "(a) ",
                ]
            ),
        ),
        max_size=30,
    )
)
def test_any_text_yields_a_valid_rule_set(pieces: list[str]) -> None:
    rules = derive_rules("".join(pieces), allow=["violence"])
    assert RuleSet(rules=rules[:64]).rules == rules[:64]
    assert all(r.text.strip() and len(r.text) <= MAX_RULE_CHARS for r in rules)
