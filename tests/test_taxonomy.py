"""The risk taxonomy: stable ids, `other` never allowed, alternative definitions files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import ConfigError
from cosa_guard.taxonomy import (
    ALLOWABLE_IDS,
    CATEGORY_IDS,
    DEFAULT_TAXONOMY,
    OTHER,
    SEEN_IDS,
    Category,
    Taxonomy,
    is_compliant,
)

SHARED_CATEGORIES = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "cosa_configs"
    / ("risk_categories_7plus1.jsonl")
)
PAPER_NAMES = {
    "financial_crime": "Financial Crime and Theft",
    "discrimination": "Discrimination and Verbal Abuse",
    "violence": "Violence",
    "drugs": "Illegal Drug-Related Activities and Substance Abuse",
    "privacy": "Privacy Violations",
    "sexual": "Sexual Misconduct, Exploitation, and Infidelity",
    "weapons": "Weapons, Explosives, Arson, and Illegal Firearm Transactions",
    "other": "Other Harms",
}


def test_ids_are_stable_and_other_is_never_allowable() -> None:
    assert tuple(PAPER_NAMES) == CATEGORY_IDS
    assert OTHER not in ALLOWABLE_IDS
    assert set(CATEGORY_IDS) - ALLOWABLE_IDS == {OTHER}
    assert {"discrimination", "violence", "financial_crime", "privacy"} == SEEN_IDS


def test_default_names_follow_the_paper_and_every_category_is_defined() -> None:
    assert [c.id for c in DEFAULT_TAXONOMY] == list(CATEGORY_IDS)
    for category in DEFAULT_TAXONOMY:
        assert category.name == PAPER_NAMES[category.id]
        assert len(category.definition) > 80
    assert len(DEFAULT_TAXONOMY) == 8
    assert "violence" in DEFAULT_TAXONOMY and "gambling" not in DEFAULT_TAXONOMY


def test_unknown_id_lookup_names_the_known_ids() -> None:
    with pytest.raises(KeyError, match="unknown risk category 'gambling'"):
        DEFAULT_TAXONOMY["gambling"]


@pytest.mark.parametrize(
    ("categories", "allowed", "expected"),
    [
        ([], [], True),
        (["violence"], ["violence"], True),
        (["violence", "drugs"], ["violence"], False),
        (["violence"], ["violence", "drugs"], True),
        (["other"], ["other"], False),  # even a list that names `other` never allows it
        (["other"], list(ALLOWABLE_IDS), False),
    ],
)
def test_compliance_is_subset_inclusion(categories: list[str], allowed: list[str], expected: bool) -> None:
    assert is_compliant(categories, allowed) is expected


def test_a_config_can_never_allow_other() -> None:
    with pytest.raises(ConfigError, match=r"'other' .* can never be allowed"):
        SafetyConfig.from_mapping({"id": "x", "version": 1, "text": "t", "allow": ["violence", "other"]})


def _alternative(prefix: str) -> dict[str, dict[str, str]]:
    return {c.id: {"name": c.name, "definition": f"{prefix} {c.id}"} for c in DEFAULT_TAXONOMY}


def test_alternative_definitions_from_a_yaml_mapping(tmp_path: Path) -> None:
    path = tmp_path / "taxonomy.yaml"
    path.write_text(yaml.safe_dump(_alternative("ALT")), encoding="utf-8")
    taxonomy = Taxonomy.from_file(path)
    assert taxonomy["drugs"].definition == "ALT drugs"
    assert [c.id for c in taxonomy] == list(CATEGORY_IDS)


def test_alternative_definitions_from_a_list_matched_by_name(tmp_path: Path) -> None:
    rows = [{"name": v["name"], "definition": v["definition"]} for v in _alternative("LIST").values()]
    path = tmp_path / "taxonomy.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    assert Taxonomy.from_file(path)["weapons"].definition == "LIST weapons"


def test_alternative_definitions_from_paper_style_jsonl(tmp_path: Path) -> None:
    # The paper's file numbers its categories and keys them by display name only.
    path = tmp_path / "risk.jsonl"
    lines = [
        json.dumps({"id": n, "name": c.name, "definition": f"paper {c.id}"})
        for n, c in enumerate(DEFAULT_TAXONOMY, 1)
    ]
    path.write_text("\n".join(lines) + "\n\n", encoding="utf-8")
    taxonomy = Taxonomy.from_file(path)
    assert taxonomy["privacy"].definition == "paper privacy"
    assert taxonomy[OTHER].name == "Other Harms"


@pytest.mark.skipif(not SHARED_CATEGORIES.exists(), reason="../shared data is absent")
def test_the_papers_released_definitions_load_as_is() -> None:
    taxonomy = Taxonomy.from_file(SHARED_CATEGORIES)
    assert taxonomy["financial_crime"].definition.startswith("Financial crime involves")
    assert taxonomy["financial_crime"].definition != DEFAULT_TAXONOMY["financial_crime"].definition


def test_an_incomplete_taxonomy_is_rejected(tmp_path: Path) -> None:
    data = _alternative("X")
    del data["sexual"]
    path = tmp_path / "t.yaml"
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    with pytest.raises(ValueError, match=r"missing \['sexual'\]"):
        Taxonomy.from_file(path)


def test_an_unmappable_category_is_rejected(tmp_path: Path) -> None:
    rows = [{"name": "Gambling", "definition": "bets"}]
    path = tmp_path / "t.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(ValueError, match="cannot map category 'Gambling'"):
        Taxonomy.from_file(path)


def test_a_scalar_file_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "t.yaml"
    path.write_text("just a string\n", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a mapping or a list"):
        Taxonomy.from_file(path)


def test_an_extra_id_is_rejected() -> None:
    categories = [*DEFAULT_TAXONOMY, Category("gambling", "Gambling", "bets")]
    with pytest.raises(ValueError, match=r"unknown \['gambling'\]"):
        Taxonomy(categories)


@pytest.mark.parametrize(
    ("name", "content", "reason"),
    [
        ("t.yaml", "violence: [unclosed", "bad YAML"),
        ("t.jsonl", "{not json}\n", "Expecting property name"),
        ("t.json", '["just a string"]', "entry 1 is not a mapping"),
        ("t.json", '[{"definition": "d"}]', "entry 1 has no name"),
        ("t.json", '[{"name": "Violence", "definition": "  "}]', "category 'Violence' has no definition"),
    ],
)
def test_a_broken_definitions_file_names_the_file_and_problem(
    tmp_path: Path, name: str, content: str, reason: str
) -> None:
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ValueError, match=reason) as info:
        Taxonomy.from_file(path)
    assert str(info.value).startswith(f"{path}: ")


def test_a_category_defined_twice_is_rejected(tmp_path: Path) -> None:
    rows = [{"name": c.name, "definition": "d"} for c in DEFAULT_TAXONOMY]
    rows.append({"id": "violence", "name": "Violence again", "definition": "other wording"})
    path = tmp_path / "t.json"
    path.write_text(json.dumps(rows), encoding="utf-8")
    with pytest.raises(ValueError, match=r"defined twice: \['violence'\]"):
        Taxonomy.from_file(path)
