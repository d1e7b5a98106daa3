"""Deployments: verified load, API-key lookup, and reloads that keep the last good config serving."""

from __future__ import annotations

import asyncio
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from cosa_guard.config import SafetyConfig
from cosa_guard.deployments import DEFAULT_REFUSAL, DeploymentRegistry, check_file
from cosa_guard.errors import DeploymentError, UnknownDeploymentError
from cosa_guard.settings import hash_api_key, new_api_key
from cosa_guard.signing import (
    add_signature,
    generate_key,
    load_bundle,
    load_private_key,
    sign_config,
    write_keypair,
)
from cosa_guard.taxonomy import DEFAULT_TAXONOMY
from cosa_guard.testing.deployments import write_signed_deployment

GAME = SafetyConfig(id="game", version=1, text="Fictional combat is fine.", allow=("violence",))
BANK = SafetyConfig(id="bank", version=1, text="Explain how frauds work.", allow=("financial_crime",))


def _edit(path: Path, deployment_id: str, **changes: Any) -> None:
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["deployments"][deployment_id].update(changes)
    path.write_text(yaml.safe_dump(document), encoding="utf-8")


def _resign(directory: Path, config: SafetyConfig, deployment_id: str) -> None:
    key = load_private_key(directory / "keys" / "reviewer")
    sign_config(config, key, reviewer="reviewer").save(directory / "bundles" / f"{deployment_id}.json")


def _tamper(bundle_path: Path) -> None:
    data = json.loads(bundle_path.read_text(encoding="utf-8"))
    data["payload"]["config"]["allow"] = ["violence", "weapons"]
    bundle_path.write_text(json.dumps(data), encoding="utf-8")


def test_load_and_look_up_by_api_key_and_id(tmp_path: Path) -> None:
    write_signed_deployment(tmp_path, GAME)
    path, bank_key = write_signed_deployment(tmp_path, BANK)
    registry = DeploymentRegistry.load(path)
    assert registry.ids() == ("bank", "game") and len(registry) == 2
    deployment = registry.by_api_key(bank_key)
    assert deployment.id == "bank" and deployment.config == BANK and deployment.config_hash == BANK.hash
    assert len(deployment.signers) == 1 and deployment.taxonomy is DEFAULT_TAXONOMY
    assert registry.get("game").config == GAME
    assert deployment.refusal_text == DEFAULT_REFUSAL


def test_unknown_api_key_or_id_is_an_error_never_a_default(tmp_path: Path) -> None:
    path, _ = write_signed_deployment(tmp_path, GAME)
    registry = DeploymentRegistry.load(path)
    with pytest.raises(UnknownDeploymentError, match="matches no deployment"):
        registry.by_api_key(new_api_key())
    with pytest.raises(UnknownDeploymentError, match="unknown deployment id 'nope'"):
        registry.get("nope")


def test_api_keys_are_stored_as_hashes(tmp_path: Path) -> None:
    path, key = write_signed_deployment(tmp_path, GAME)
    text = path.read_text(encoding="utf-8")
    assert key not in text and hash_api_key(key) in text
    assert hash_api_key(key) != hash_api_key(key + "x") and new_api_key() != new_api_key()


def test_an_api_key_in_clear_is_refused(tmp_path: Path) -> None:
    path, key = write_signed_deployment(tmp_path, GAME)
    _edit(path, "game", api_keys=[key])
    with pytest.raises(DeploymentError, match="not sha256 hashes; store hashes, never keys in clear"):
        DeploymentRegistry.load(path)


def test_one_api_key_for_two_deployments_is_refused(tmp_path: Path) -> None:
    write_signed_deployment(tmp_path, GAME)
    path, bank_key = write_signed_deployment(tmp_path, BANK)
    _edit(path, "game", api_keys=[hash_api_key(bank_key)])
    with pytest.raises(DeploymentError, match="listed for both 'bank' and 'game'"):
        DeploymentRegistry.load(path)


def test_a_floor_violation_is_rejected_at_load(tmp_path: Path) -> None:
    path, _ = write_signed_deployment(tmp_path, GAME, floor=["violence"])
    with pytest.raises(
        DeploymentError, match=r"deployment 'game': FloorViolationError: .*allows floor category"
    ):
        DeploymentRegistry.load(path)


def test_an_unknown_floor_category_is_rejected(tmp_path: Path) -> None:
    path, _ = write_signed_deployment(tmp_path, GAME, floor=["gambling"])
    with pytest.raises(DeploymentError, match=r"floor lists unknown categories \['gambling'\]"):
        DeploymentRegistry.load(path)


def test_a_pin_must_match(tmp_path: Path) -> None:
    path, _ = write_signed_deployment(tmp_path, GAME, pin=GAME.hash)
    assert DeploymentRegistry.load(path).get("game").config_hash == GAME.hash
    _edit(path, "game", pin="sha256:" + "0" * 64)
    with pytest.raises(DeploymentError, match=r"PinMismatchError: config hash .* differs from the pinned"):
        DeploymentRegistry.load(path)


def test_min_signers_needs_a_second_trusted_reviewer(tmp_path: Path) -> None:
    path, _ = write_signed_deployment(tmp_path, GAME, min_signers=2)
    with pytest.raises(DeploymentError, match="InsufficientSignersError: bundle has 1 distinct"):
        DeploymentRegistry.load(path)
    bob = generate_key()
    write_keypair(bob, tmp_path / "keys" / "bob")
    bundle_path = tmp_path / "bundles" / "game.json"
    add_signature(load_bundle(bundle_path), bob, signer="bob").save(bundle_path)
    with pytest.raises(DeploymentError, match="InsufficientSignersError"):
        DeploymentRegistry.load(path)  # bob signed, but this deployment does not trust bob yet
    _edit(path, "game", trusted_keys=["keys/reviewer.pub", "keys/bob.pub"])
    assert len(DeploymentRegistry.load(path).get("game").signers) == 2


def test_an_expired_config_does_not_load(tmp_path: Path) -> None:
    expires = datetime.now(UTC) + timedelta(days=1)
    path, _ = write_signed_deployment(tmp_path, GAME.model_copy(update={"expires_at": expires}))
    DeploymentRegistry.load(path)
    with pytest.raises(DeploymentError, match="ExpiredConfigError"):
        DeploymentRegistry.load(path, now=expires + timedelta(seconds=1))


def test_an_alternative_taxonomy_file(tmp_path: Path) -> None:
    definitions = {c.id: {"name": c.name, "definition": f"paper wording of {c.id}"} for c in DEFAULT_TAXONOMY}
    (tmp_path / "taxonomy.yaml").write_text(yaml.safe_dump(definitions), encoding="utf-8")
    path, _ = write_signed_deployment(tmp_path, GAME, taxonomy="taxonomy.yaml")
    taxonomy = DeploymentRegistry.load(path).get("game").taxonomy
    assert taxonomy["violence"].definition == "paper wording of violence"


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("deployments: [unclosed", "bad YAML"),
        (
            "version: 1\ndeployments:\n  game: {bundle: b.json, trusted_keys: [k.pub]}\n",
            "routes: Field required",
        ),
        ("version: 2\ndeployments: {}\n", "version: Input should be 1"),
    ],
)
def test_a_bad_deployments_file_names_the_problem(tmp_path: Path, content: str, reason: str) -> None:
    path = tmp_path / "deployments.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DeploymentError, match=reason):
        DeploymentRegistry.load(path)


def test_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DeploymentError, match="cannot read"):
        DeploymentRegistry.load(tmp_path / "absent.yaml")


def test_reload_keeps_the_last_good_config_when_a_bundle_is_tampered(tmp_path: Path) -> None:
    write_signed_deployment(tmp_path, BANK)
    path, game_key = write_signed_deployment(tmp_path, GAME)
    registry = DeploymentRegistry.load(path)
    _tamper(tmp_path / "bundles" / "game.json")
    _resign(tmp_path, BANK.model_copy(update={"version": 2}), "bank")

    report = registry.reload()

    assert not report.ok
    assert set(report.kept) == {"game"}
    assert report.kept["game"].startswith("TamperedBundleError: ")
    assert report.loaded == ("bank",)
    served = registry.by_api_key(game_key)
    assert served.config == GAME and served.config.allow == ("violence",)
    assert registry.get("bank").config.version == 2  # the good one moved on


def test_reload_applies_a_newly_signed_config(tmp_path: Path) -> None:
    path, key = write_signed_deployment(tmp_path, GAME)
    registry = DeploymentRegistry.load(path)
    newer = SafetyConfig.from_mapping({**GAME.model_dump(), "version": 2, "allow": ["violence", "drugs"]})
    _resign(tmp_path, newer, "game")
    report = registry.reload()
    assert report.ok and report.loaded == ("game",)
    assert registry.by_api_key(key).config_hash == newer.hash


def test_reload_keeps_a_config_whose_new_bundle_breaks_the_floor(tmp_path: Path) -> None:
    path, key = write_signed_deployment(tmp_path, GAME, floor=["weapons"])
    registry = DeploymentRegistry.load(path)
    _resign(tmp_path, GAME.model_copy(update={"version": 2, "allow": ("violence", "weapons")}), "game")
    report = registry.reload()
    assert report.kept["game"].startswith("FloorViolationError")
    assert registry.by_api_key(key).config == GAME


def test_reload_with_a_broken_file_keeps_every_deployment(tmp_path: Path) -> None:
    write_signed_deployment(tmp_path, BANK)
    path, key = write_signed_deployment(tmp_path, GAME)
    registry = DeploymentRegistry.load(path)
    path.write_text("deployments: [broken", encoding="utf-8")
    report = registry.reload()
    assert set(report.kept) == {"bank", "game"} and "bad YAML" in report.kept["game"]
    assert registry.by_api_key(key).config == GAME


def test_reload_removes_and_refuses_new_failing_deployments(tmp_path: Path) -> None:
    write_signed_deployment(tmp_path, BANK)
    path, _ = write_signed_deployment(tmp_path, GAME)
    registry = DeploymentRegistry.load(path)
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    del document["deployments"]["bank"]
    document["deployments"]["newcomer"] = {
        **document["deployments"]["game"],
        "api_keys": [],
        "pin": BANK.hash,
    }
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    report = registry.reload()
    assert report.removed == ("bank",)
    assert report.failed["newcomer"].startswith("PinMismatchError")
    assert registry.ids() == ("game",)
    with pytest.raises(UnknownDeploymentError):
        registry.get("newcomer")


def test_changed_on_disk_tracks_bundles(tmp_path: Path) -> None:
    path, _ = write_signed_deployment(tmp_path, GAME)
    registry = DeploymentRegistry.load(path)
    assert not registry.changed_on_disk()
    bundle = tmp_path / "bundles" / "game.json"
    stat = bundle.stat()
    os.utime(bundle, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert registry.changed_on_disk()
    registry.reload()
    assert not registry.changed_on_disk()


async def test_watch_reloads_a_changed_bundle(tmp_path: Path) -> None:
    path, key = write_signed_deployment(tmp_path, GAME)
    registry = DeploymentRegistry.load(path)
    watcher = asyncio.create_task(registry.watch(interval_s=0.01))
    try:
        newer = GAME.model_copy(update={"version": 7})
        _resign(tmp_path, newer, "game")
        bundle = tmp_path / "bundles" / "game.json"
        stat = bundle.stat()  # same-second rewrites: make sure the fingerprint moves
        os.utime(bundle, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
        for _ in range(500):
            if registry.by_api_key(key).config.version == 7:
                break
            await asyncio.sleep(0.01)
        assert registry.by_api_key(key).config.version == 7
    finally:
        watcher.cancel()
        with pytest.raises(asyncio.CancelledError):
            await watcher


def test_check_file_reports_each_deployment(tmp_path: Path) -> None:
    write_signed_deployment(tmp_path, BANK)
    path, _ = write_signed_deployment(tmp_path, GAME)
    _tamper(tmp_path / "bundles" / "game.json")
    loaded, failures = check_file(path)
    assert set(loaded) == {"bank"} and set(failures) == {"game"}
    assert failures["game"].startswith("TamperedBundleError")


def test_an_in_memory_registry_has_no_file_to_reload() -> None:
    registry = DeploymentRegistry()
    assert len(registry) == 0 and not registry.changed_on_disk()
    with pytest.raises(DeploymentError, match="built in memory"):
        registry.reload()


def test_reload_keeps_the_last_good_config_when_the_taxonomy_file_breaks(tmp_path: Path) -> None:
    definitions = {c.id: {"name": c.name, "definition": f"v1 {c.id}"} for c in DEFAULT_TAXONOMY}
    (tmp_path / "taxonomy.yaml").write_text(yaml.safe_dump(definitions), encoding="utf-8")
    path, key = write_signed_deployment(tmp_path, GAME, taxonomy="taxonomy.yaml")
    registry = DeploymentRegistry.load(path)
    (tmp_path / "taxonomy.yaml").write_text("violence: [unclosed", encoding="utf-8")
    report = registry.reload()
    assert report.kept["game"].startswith("ValueError: ") and "bad YAML" in report.kept["game"]
    assert registry.by_api_key(key).taxonomy["violence"].definition == "v1 violence"


# --- A bundle belongs to one deployment, and versions only move forward ------------------------------


def test_a_bundle_signed_for_one_deployment_is_not_served_under_another(tmp_path: Path) -> None:
    path, _ = write_signed_deployment(tmp_path, GAME)
    _edit(path, "game", bundle="bundles/bank.json")
    _resign(tmp_path, BANK, "bank")  # validly signed, by a trusted key, for the bank deployment
    _, failures = check_file(path)
    assert failures["game"].startswith("ConfigIdMismatchError: the bundle holds config 'bank'")
    with pytest.raises(DeploymentError, match="ConfigIdMismatchError"):
        DeploymentRegistry.load(path)


def test_a_deployment_may_name_the_config_it_serves(tmp_path: Path) -> None:
    path, key = write_signed_deployment(tmp_path, GAME, deployment_id="game-eu")
    assert yaml.safe_load(path.read_text())["deployments"]["game-eu"]["config_id"] == "game"
    assert DeploymentRegistry.load(path).by_api_key(key).config == GAME
    _edit(path, "game-eu", config_id="bank")
    assert check_file(path)[1]["game-eu"].startswith("ConfigIdMismatchError")


def test_reload_keeps_the_serving_config_when_the_new_bundle_holds_another_deployments(
    tmp_path: Path,
) -> None:
    write_signed_deployment(tmp_path, BANK)
    path, key = write_signed_deployment(tmp_path, GAME)
    registry = DeploymentRegistry.load(path)
    _edit(path, "game", bundle="bundles/bank.json")
    report = registry.reload()
    assert report.kept["game"].startswith("ConfigIdMismatchError")
    assert registry.by_api_key(key).config == GAME


@pytest.mark.parametrize(
    ("serving", "older"),
    [
        (GAME.model_copy(update={"version": 3}), GAME.model_copy(update={"version": 2})),
        (GAME.model_copy(update={"version": 3}), GAME.model_copy(update={"version": 3, "text": "Anything."})),
    ],
    ids=["lower-version", "same-version-changed"],
)
def test_reload_refuses_to_roll_a_config_back(
    tmp_path: Path, serving: SafetyConfig, older: SafetyConfig
) -> None:
    path, key = write_signed_deployment(tmp_path, serving)
    registry = DeploymentRegistry.load(path)
    _resign(tmp_path, older, "game")  # an older bundle, still validly signed, copied back
    report = registry.reload()
    assert report.kept["game"].startswith("ConfigDowngradeError: config 'game' v")
    assert "allow_downgrade" in report.kept["game"]
    assert registry.by_api_key(key).config_hash == serving.hash


def test_allow_downgrade_lets_the_operator_roll_back(tmp_path: Path) -> None:
    path, key = write_signed_deployment(tmp_path, GAME.model_copy(update={"version": 3}))
    registry = DeploymentRegistry.load(path)
    _resign(tmp_path, GAME, "game")
    _edit(path, "game", allow_downgrade=True)
    assert registry.reload().ok
    assert registry.by_api_key(key).config == GAME


def test_the_served_ledger_stops_a_rollback_in_another_process(tmp_path: Path) -> None:
    """A worker started by a rolling restart has no memory; the ledger the others keep is its floor."""
    from cosa_guard.served import ServedLedger

    ledger = ServedLedger(tmp_path / "served.json")
    path, _ = write_signed_deployment(tmp_path, GAME.model_copy(update={"version": 2}))
    DeploymentRegistry.load(path, ledger=ledger)  # the first worker
    _resign(tmp_path, GAME, "game")
    with pytest.raises(DeploymentError, match="ConfigDowngradeError"):
        DeploymentRegistry.load(path, ledger=ledger)  # its replacement
    assert DeploymentRegistry.load(path).get("game").config == GAME  # a fresh server has no floor


def test_removing_an_api_key_applies_even_when_the_bundle_fails(tmp_path: Path) -> None:
    path, leaked = write_signed_deployment(tmp_path, GAME)
    registry = DeploymentRegistry.load(path)
    fresh = new_api_key()
    _edit(path, "game", api_keys=[hash_api_key(fresh)])
    _tamper(tmp_path / "bundles" / "game.json")  # the same reload brings a failing bundle
    report = registry.reload()
    assert report.kept["game"].startswith("TamperedBundleError")
    with pytest.raises(UnknownDeploymentError):
        registry.by_api_key(leaked)
    assert registry.by_api_key(fresh).config == GAME  # the last good config, under the new key
