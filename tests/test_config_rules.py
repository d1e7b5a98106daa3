"""A config's rules: validated, signed with the config, derived at load when a config has none."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from cosa_guard.config import SafetyConfig
from cosa_guard.errors import ConfigError, TamperedBundleError
from cosa_guard.rules import Rule, config_rules, derive_rules
from cosa_guard.signing import (
    BUNDLE_FORMAT,
    Bundle,
    Keyring,
    add_signature,
    generate_key,
    sign_config,
    verify_bundle,
)

KEY = generate_key()
TRUST = Keyring([KEY.public_key()])
NOW = datetime(2026, 6, 1, tzinfo=UTC)
BASE: dict[str, Any] = {
    "id": "game-studio",
    "version": 3,
    "text": "Write fictional combat scenes.\n\nStay strict on everything else.",
    "allow": ["violence", "drugs"],
    "refusal": "Not here.",
    "description": "Writers' room — ünïcode kept as is",
}
RULES = [
    {"number": 1, "text": "Violence is allowed", "polarity": "allows", "categories": ["violence"]},
    {"number": 2, "text": "except severed limbs.", "polarity": "forbids", "exception_of": 1},
    {"number": 3, "text": "No pork recipes.", "polarity": "forbids"},
]


def test_a_config_without_rules_hashes_as_it_did_before_rules_existed() -> None:
    # The hash this config had before `rules` was a field (computed on the commit before it).
    config = SafetyConfig.from_mapping(BASE)
    assert config.hash == "sha256:e2bdcf6ea7423f24ba798ea22a8cf8f12f361b899694c7a2f777f55a2954ff85"
    assert "rules" not in config.model_dump(mode="json")
    assert SafetyConfig.from_mapping({**BASE, "rules": []}).hash == config.hash


def test_rules_are_part_of_the_canonical_form_and_the_hash() -> None:
    config = SafetyConfig.from_mapping({**BASE, "rules": RULES})
    assert json.loads(config.canonical_json())["rules"][1] == {
        "number": 2,
        "text": "except severed limbs.",
        "polarity": "forbids",
        "categories": [],
        "exception_of": 1,
    }
    assert config.hash != SafetyConfig.from_mapping(BASE).hash
    edited = [*RULES[:2], {**RULES[2], "text": "No pork or gelatin recipes."}]
    assert SafetyConfig.from_mapping({**BASE, "rules": edited}).hash != config.hash


def test_rule_categories_are_sorted_so_their_order_never_changes_the_hash() -> None:
    one = [{"number": 1, "text": "x", "polarity": "forbids", "categories": ["weapons", "drugs"]}]
    two = [{"number": 1, "text": "x", "polarity": "forbids", "categories": ["drugs", "weapons", "drugs"]}]
    assert (
        SafetyConfig.from_mapping({**BASE, "rules": one}).hash
        == SafetyConfig.from_mapping({**BASE, "rules": two}).hash
    )


@pytest.mark.parametrize(
    ("rules", "reason"),
    [
        ([{**RULES[0], "number": 2}], "numbered 1..1 in order"),
        ([RULES[0], {**RULES[1], "number": 1}], "numbered 1..2 in order"),
        ([RULES[0], {**RULES[1], "exception_of": 7}], "rule 7 does not exist"),
        ([RULES[0], {**RULES[1], "exception_of": 2}], "rule 2 forbids"),
        ([RULES[0], {**RULES[2], "number": 2, "polarity": "allows", "exception_of": 1}], "rule 2 allows"),
        ([{**RULES[0], "categories": ["gore"]}], "unknown risk categories ['gore']"),
        ([{**RULES[0], "categories": ["other"]}], "allows 'other'"),
        ([{**RULES[0], "polarity": "maybe"}], "rules.0.polarity"),
        ([{**RULES[0], "text": ""}], "rules.0.text"),
    ],
)
def test_invalid_rules_are_config_errors(rules: list[dict[str, Any]], reason: str) -> None:
    with pytest.raises(ConfigError, match="rules") as caught:
        SafetyConfig.from_mapping({**BASE, "rules": rules})
    assert reason in str(caught.value)


def test_a_config_with_rules_enforces_them_as_reviewed() -> None:
    config = SafetyConfig.from_mapping({**BASE, "rules": RULES})
    ruleset = config_rules(config)
    assert ruleset.reviewed
    assert ruleset.rules == config.rules == tuple(Rule.model_validate(r) for r in RULES)


def test_a_config_without_rules_gets_derived_unreviewed_rules_once() -> None:
    config = SafetyConfig.from_mapping(
        {**BASE, "text": "Violence is allowed, except severed limbs. No drugs."}
    )
    ruleset = config_rules(config)
    assert not ruleset.reviewed
    assert ruleset.rules == derive_rules(config.text, config.allow)
    assert len(ruleset.rules) == 3
    assert config_rules(SafetyConfig.from_mapping(config.model_dump(mode="json"))) is ruleset


def test_a_bundle_signed_before_rules_existed_still_verifies_and_derives_its_rules() -> None:
    config = SafetyConfig.from_mapping({**BASE, "text": "Violence is allowed, except severed limbs."})
    old_payload = {
        "config": {k: v for k, v in json.loads(config.canonical_json()).items()},
        "review": {"reviewer": "alice", "reviewed_at": "2026-05-01T00:00:00Z", "lint": {}, "note": ""},
    }
    assert "rules" not in old_payload["config"]
    bundle = add_signature(Bundle(format=BUNDLE_FORMAT, payload=old_payload), KEY, signer="alice", now=NOW)
    verified = verify_bundle(bundle.to_json(), TRUST, now=NOW)
    assert verified.config_hash == config.hash
    assert [r.polarity for r in config_rules(verified.config).rules] == ["allows", "forbids"]
    assert not config_rules(verified.config).reviewed


def test_signed_rules_are_covered_by_the_signature() -> None:
    bundle = sign_config(SafetyConfig.from_mapping({**BASE, "rules": RULES}), KEY, reviewer="alice", now=NOW)
    assert config_rules(verify_bundle(bundle, TRUST, now=NOW).config).reviewed
    data = json.loads(bundle.to_json())
    data["payload"]["config"]["rules"][2]["text"] = "Pork recipes are fine."
    with pytest.raises(TamperedBundleError):
        verify_bundle(data, TRUST, now=NOW)
