"""SafetyConfig: validation reasons, canonical JSON and a hash that formatting never changes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cosa_guard.config import MAX_TEXT_CHARS, SafetyConfig, canonical_json, content_hash
from cosa_guard.errors import ConfigError
from cosa_guard.taxonomy import ALLOWABLE_IDS

BASE = {
    "id": "game-studio",
    "version": 3,
    "text": "Write fictional combat scenes.\n\nStay strict on everything else.",
    "allow": ["violence", "drugs"],
    "refusal": "Not here.",
    "description": "Writers' room — ünïcode kept as is",
}


def test_from_yaml_parses_a_config_and_sorts_allow() -> None:
    config = SafetyConfig.from_yaml(yaml.safe_dump(BASE))
    assert config.id == "game-studio"
    assert config.allow == ("drugs", "violence")
    assert not config.is_free_form
    assert config.hash.startswith("sha256:") and len(config.hash) == len("sha256:") + 64


def test_load_reads_a_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(BASE), encoding="utf-8")
    assert SafetyConfig.load(path).hash == SafetyConfig.from_mapping(BASE).hash


def test_free_form_config_has_no_allow_list() -> None:
    config = SafetyConfig.from_mapping({"id": "kids", "version": 1, "text": "No alcohol, no dating."})
    assert config.is_free_form and config.allow == ()


@pytest.mark.parametrize(
    ("change", "field", "reason"),
    [
        ({"allow": ["other"]}, "allow", "'other' (Other Harms) can never be allowed"),
        ({"allow": ["violence", "gambling"]}, "allow", "unknown risk categories ['gambling']"),
        ({"allow": "violence"}, "allow", "must be a list of category ids"),
        ({"text": "   \n  "}, "text", "text: must not be blank"),
        ({"text": ""}, "text", "at least 1 character"),
        ({"text": "x" * (MAX_TEXT_CHARS + 1)}, "text", f"at most {MAX_TEXT_CHARS} characters"),
        ({"id": "Game Studio!"}, "id", "should match pattern"),
        ({"version": 0}, "version", "greater than or equal to 1"),
        ({"expires_at": "2030-01-01T00:00:00"}, "expires_at", "needs a timezone"),
        ({"colour": "blue"}, "colour", "unknown field"),
    ],
)
def test_invalid_configs_name_the_field_and_reason(
    change: dict[str, object], field: str, reason: str
) -> None:
    with pytest.raises(ConfigError) as info:
        SafetyConfig.from_mapping({**BASE, **change})
    assert f"{field}: " in str(info.value)
    assert reason in str(info.value)


@pytest.mark.parametrize("missing", ["id", "version", "text"])
def test_missing_required_fields_are_named(missing: str) -> None:
    data = {k: v for k, v in BASE.items() if k != missing}
    with pytest.raises(ConfigError, match=rf"{missing}: Field required"):
        SafetyConfig.from_mapping(data)


def test_bad_yaml_and_non_mapping_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="bad YAML"):
        SafetyConfig.from_yaml("id: [unclosed")
    with pytest.raises(ConfigError, match="must be a YAML mapping"):
        SafetyConfig.from_yaml("- just\n- a list\n")


def test_expiry() -> None:
    when = datetime(2030, 1, 1, tzinfo=UTC)
    config = SafetyConfig.from_mapping({**BASE, "expires_at": when.isoformat()})
    assert not config.is_expired(when - timedelta(seconds=1))
    assert config.is_expired(when)
    assert not SafetyConfig.from_mapping(BASE).is_expired()


def test_canonical_json_is_sorted_compact_utf8() -> None:
    data = canonical_json({"b": 1, "a": ["é", {"d": None, "c": True}]})
    assert data == '{"a":["é",{"c":true,"d":null}],"b":1}'.encode()
    assert content_hash(data) == content_hash(canonical_json({"a": ["é", {"c": True, "d": None}], "b": 1}))


def test_canonical_json_rejects_nan() -> None:
    with pytest.raises(ValueError):
        canonical_json({"x": float("nan")})


def test_different_configs_hash_differently() -> None:
    base = SafetyConfig.from_mapping(BASE)
    assert SafetyConfig.from_mapping({**BASE, "version": 4}).hash != base.hash
    assert SafetyConfig.from_mapping({**BASE, "text": BASE["text"] + " "}).hash != base.hash
    assert json.loads(base.canonical_json())["allow"] == ["drugs", "violence"]


_allow = st.lists(st.sampled_from(sorted(ALLOWABLE_IDS)), max_size=7)
# Printable text and newlines: PyYAML itself does not round-trip some control/astral mixes at narrow widths.
_text = st.text(
    st.characters(categories=("L", "N", "P", "S", "Zs"), max_codepoint=0xFFFF) | st.just("\n"),
    min_size=1,
    max_size=200,
).filter(str.strip)


@settings(max_examples=60, deadline=None)
@given(
    allow=_allow,
    text=_text,
    order=st.randoms(use_true_random=False),
    indent=st.integers(2, 8),
    flow=st.booleans(),
    width=st.integers(20, 200),
)
def test_key_order_whitespace_and_allow_order_never_change_the_hash(
    allow: list[str],
    text: str,
    order,
    indent: int,
    flow: bool,
    width: int,  # type: ignore[no-untyped-def]
) -> None:
    data = {"id": "prop", "version": 2, "text": text, "allow": allow, "description": "d"}
    reference = SafetyConfig.from_mapping(data).hash
    keys = list(data)
    order.shuffle(keys)
    shuffled_allow = list(allow)
    order.shuffle(shuffled_allow)
    reordered = {k: (shuffled_allow if k == "allow" else data[k]) for k in keys}
    source = yaml.safe_dump(
        reordered, sort_keys=False, indent=indent, default_flow_style=flow, width=width, allow_unicode=True
    )
    # Blank lines and trailing spaces outside values are insignificant YAML whitespace.
    source = "\n# a comment\n" + source.replace("\n", "  \n") if not flow else "\n\n" + source
    assert SafetyConfig.from_yaml(source).hash == reference
