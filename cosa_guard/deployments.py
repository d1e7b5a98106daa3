"""Deployments: the server-side binding of a deployment id to a signed config and its guard settings.

A request names a deployment through its credentials (an API key) or its id on a trusted code
path, never through a config: only a signed bundle listed here can change what is allowed.

This module reads a deployments file (its shape: `cosa_guard.settings`, with an example), verifies
every bundle it names and serves the result as `LoadedDeployment`s from a `DeploymentRegistry`.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from types import MappingProxyType

import yaml
from pydantic import ValidationError

from cosa_guard.config import SafetyConfig, format_validation_error
from cosa_guard.errors import (
    ConfigDowngradeError,
    ConfigIdMismatchError,
    CosaGuardError,
    DeploymentError,
    UnknownDeploymentError,
)
from cosa_guard.review import lint
from cosa_guard.served import Served, ServedLedger
from cosa_guard.settings import DeploymentsFile, DeploymentSpec, hash_api_key
from cosa_guard.signing import Keyring, load_bundle, verify_bundle
from cosa_guard.taxonomy import CATEGORY_IDS, DEFAULT_TAXONOMY, Taxonomy


@dataclass(frozen=True, slots=True)
class LoadedDeployment:
    """A deployment whose bundle verified: what the guard serves."""

    id: str
    spec: DeploymentSpec
    config: SafetyConfig
    config_hash: str
    signers: tuple[str, ...] = ()
    taxonomy: Taxonomy = DEFAULT_TAXONOMY
    base_dir: Path = Path(".")

    @property
    def refusal_text(self) -> str:
        return self.config.refusal or DEFAULT_REFUSAL

    @property
    def served(self) -> Served:
        return Served(self.config.id, self.config.version, self.config_hash)


DEFAULT_REFUSAL = "I'm sorry, but I can't help with that request under this service's safety policy."


# --- Loading ---------------------------------------------------------------------------------------

_log = logging.getLogger(__name__)
_API_KEY_HASH = re.compile(r"^sha256:[0-9a-f]{64}$")


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """What a reload did. A deployment whose new bundle fails keeps serving its last good config."""

    loaded: tuple[str, ...] = ()
    kept: Mapping[str, str] = field(default_factory=dict)  # id -> why its last good config still serves
    removed: tuple[str, ...] = ()
    failed: Mapping[str, str] = field(default_factory=dict)  # new ids that did not load: id -> why

    @property
    def ok(self) -> bool:
        return not self.kept and not self.failed


@dataclass(frozen=True, slots=True)
class _State:
    deployments: Mapping[str, LoadedDeployment]
    api_keys: tuple[tuple[str, str], ...]  # (stored hash, deployment id)
    fingerprint: tuple[tuple[str, int, int], ...]  # (path, mtime_ns, size) of every file read


class DeploymentRegistry:
    """The deployments a server serves, verified at load and swapped atomically on reload.

        registry = DeploymentRegistry.load("deployments.yaml")
        registry.by_api_key(key)            # LoadedDeployment, or UnknownDeploymentError
        report = registry.reload()          # after the file or a bundle changed

    Readers never lock: every lookup reads one immutable snapshot, and a reload replaces that
    snapshot with a single assignment. A reload never lowers a deployment's config version (unless
    its `allow_downgrade`); `ledger` extends that rule to the other processes of one server.
    """

    def __init__(
        self,
        deployments: Iterable[LoadedDeployment] = (),
        path: str | Path | None = None,
        ledger: ServedLedger | None = None,
    ) -> None:
        self._path = Path(path) if path is not None else None
        self._ledger = ledger
        self._reload_lock = threading.Lock()
        loaded = {d.id: d for d in deployments}
        self._state = _State(MappingProxyType(loaded), _api_key_index(loaded), ())

    @classmethod
    def load(
        cls, path: str | Path, now: datetime | None = None, ledger: ServedLedger | None = None
    ) -> DeploymentRegistry:
        """Load and verify every deployment; DeploymentError naming each one that fails.

        With a `ledger`, a config below what another process of the server records fails too.
        """
        registry = cls(path=path, ledger=ledger)
        try:
            parsed, fingerprint = _read_file(registry._path_or_raise())
        except DeploymentError as exc:
            raise DeploymentError(f"cannot load deployments: {exc}") from exc
        loaded, failures = _load_all(parsed, now, ledger.read() if ledger is not None else {})
        if failures:
            reasons = "; ".join(f"deployment {i!r}: {why}" for i, why in sorted(failures.items()))
            raise DeploymentError(f"{path}: {reasons}")
        registry._state = _State(MappingProxyType(loaded), _api_key_index(loaded), fingerprint)
        registry._record_served()
        return registry

    def get(self, deployment_id: str) -> LoadedDeployment:
        try:
            return self._state.deployments[deployment_id]
        except KeyError:
            raise UnknownDeploymentError(
                f"unknown deployment id {deployment_id!r}; only deployments in the server's deployments file "
                "are served"
            ) from None

    def by_api_key(self, api_key: str) -> LoadedDeployment:
        """The deployment whose stored hash matches `api_key`, compared in constant time."""
        state = self._state
        presented = hash_api_key(api_key)
        match = None
        for stored, deployment_id in state.api_keys:  # no early exit: timing says nothing about position
            if hmac.compare_digest(stored, presented):
                match = deployment_id
        if match is None:
            raise UnknownDeploymentError("the API key matches no deployment")
        return state.deployments[match]

    def ids(self) -> tuple[str, ...]:
        return tuple(sorted(self._state.deployments))

    def __len__(self) -> int:
        return len(self._state.deployments)

    def reload(self, now: datetime | None = None) -> ReloadReport:
        """Re-read the file and every bundle; keep the last good config of each deployment that fails."""
        with self._reload_lock:
            old = self._state
            try:
                parsed, fingerprint = _read_file(self._path_or_raise())
            except DeploymentError as exc:
                reason = str(exc)
                _log.warning("deployments reload failed, keeping every deployment as it was: %s", reason)
                # Remember what was seen, so that a watcher retries on the next change, not every poll.
                seen = [Path(p) for p, _, _ in old.fingerprint] or [self._path_or_raise()]
                self._state = replace(old, fingerprint=_fingerprint(seen))
                return ReloadReport(kept={i: reason for i in old.deployments})
            loaded, failures = _load_all(parsed, now, self._floor(old.deployments))
            kept = {i: why for i, why in failures.items() if i in old.deployments}
            failed = {i: why for i, why in failures.items() if i not in old.deployments}
            # A failing bundle keeps its last good config, but never a key the operator removed.
            merged = {
                **loaded,
                **{i: _with_api_keys(old.deployments[i], parsed.deployments[i]) for i in kept},
            }
            try:
                index = _api_key_index(merged)
            except DeploymentError as exc:
                reason = str(exc)
                _log.warning("deployments reload rejected, keeping every deployment as it was: %s", reason)
                self._state = replace(old, fingerprint=fingerprint)
                return ReloadReport(kept={i: reason for i in old.deployments})
            self._state = _State(MappingProxyType(merged), index, fingerprint)
            self._record_served()
        for deployment_id, why in kept.items():
            _log.warning("deployment %r keeps serving its last good config: %s", deployment_id, why)
        for deployment_id, why in failed.items():
            _log.warning("deployment %r was not loaded: %s", deployment_id, why)
        removed = tuple(sorted(set(old.deployments) - set(parsed.deployments)))
        return ReloadReport(tuple(sorted(loaded)), kept, removed, failed)

    def changed_on_disk(self) -> bool:
        """True when the deployments file, a bundle, a key or a taxonomy file changed since the last load."""
        if self._path is None:
            return False
        state = self._state
        return (
            not state.fingerprint
            or _fingerprint(Path(p) for p, _, _ in state.fingerprint) != state.fingerprint
        )

    async def watch(self, interval_s: float = 2.0) -> None:
        """Poll the files every `interval_s` and reload when one changed; runs until cancelled."""
        while True:
            await asyncio.sleep(interval_s)
            if await asyncio.to_thread(self.changed_on_disk):
                report = await asyncio.to_thread(self.reload)
                _log.info(
                    "deployments reloaded: loaded %s, kept %s, removed %s",
                    report.loaded,
                    report.kept,
                    report.removed,
                )

    def _floor(self, serving: Mapping[str, LoadedDeployment]) -> dict[str, Served]:
        """What each deployment serves here, or in another process of this server when that is newer."""
        floor = self._ledger.read() if self._ledger is not None else {}
        for deployment_id, deployment in serving.items():
            other = floor.get(deployment_id)
            if (
                other is None
                or other.config_id != deployment.config.id
                or other.version < deployment.config.version
            ):
                floor[deployment_id] = deployment.served
        return floor

    def _record_served(self) -> None:
        if self._ledger is not None:
            self._ledger.record({i: d.served for i, d in self._state.deployments.items()})

    def _path_or_raise(self) -> Path:
        if self._path is None:
            raise DeploymentError("this registry was built in memory and has no deployments file to read")
        return self._path


def check_file(
    path: str | Path, now: datetime | None = None
) -> tuple[dict[str, LoadedDeployment], dict[str, str]]:
    """Verify every deployment in a file without serving it: (loaded by id, why each other one failed).

    DeploymentError when the file itself cannot be read or parsed. An API key listed for two
    deployments shows up as a failure under `(api_keys)`.
    """
    parsed, _ = _read_file(Path(path))
    loaded, failures = _load_all(parsed, now, {})
    try:
        _api_key_index(loaded)
    except DeploymentError as exc:
        failures["(api_keys)"] = str(exc)
    return loaded, failures


def _read_file(path: Path) -> tuple[_ParsedFile, tuple[tuple[str, int, int], ...]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DeploymentError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        data = yaml.safe_load(text)
        spec = DeploymentsFile.model_validate(data)
    except yaml.YAMLError as exc:
        raise DeploymentError(f"{path}: bad YAML: {' '.join(str(exc).split())}") from exc
    except ValidationError as exc:
        raise DeploymentError(f"{path}: {format_validation_error(exc)}") from exc
    parsed = _ParsedFile(spec.deployments, path.resolve().parent)
    return parsed, _fingerprint([path, *parsed.referenced_files()])


@dataclass(frozen=True, slots=True)
class _ParsedFile:
    deployments: Mapping[str, DeploymentSpec]
    base_dir: Path

    def resolve(self, relative: str) -> Path:
        return self.base_dir / Path(relative).expanduser()

    def referenced_files(self) -> list[Path]:
        paths = []
        for spec in self.deployments.values():
            paths.append(self.resolve(spec.bundle))
            paths.extend(self.resolve(k) for k in spec.trusted_keys)
            if spec.taxonomy:
                paths.append(self.resolve(spec.taxonomy))
        return paths


def _fingerprint(paths: Iterable[Path]) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in paths:
        try:
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
        except OSError:
            out.append((str(path), -1, -1))
    return tuple(out)


def _load_all(
    parsed: _ParsedFile, now: datetime | None, floor: Mapping[str, Served]
) -> tuple[dict[str, LoadedDeployment], dict[str, str]]:
    """Every deployment of `parsed` that verifies; `floor`: what each one serves now, if anything."""
    loaded: dict[str, LoadedDeployment] = {}
    failures: dict[str, str] = {}
    for deployment_id, spec in parsed.deployments.items():
        try:
            loaded[deployment_id] = _load_one(deployment_id, spec, parsed, now, floor.get(deployment_id))
        except (CosaGuardError, OSError, ValueError) as exc:
            failures[deployment_id] = f"{type(exc).__name__}: {exc}"
    return loaded, failures


def _load_one(
    deployment_id: str,
    spec: DeploymentSpec,
    parsed: _ParsedFile,
    now: datetime | None,
    serving: Served | None,
) -> LoadedDeployment:
    unknown_floor = sorted(set(spec.floor) - set(CATEGORY_IDS))
    if unknown_floor:
        raise DeploymentError(f"floor lists unknown categories {unknown_floor}; known: {list(CATEGORY_IDS)}")
    clear = [k for k in spec.api_keys if not _API_KEY_HASH.match(k)]
    if clear:
        raise DeploymentError(
            f"api_keys holds {len(clear)} value(s) that are not sha256 hashes; store hashes, never keys in "
            "clear (cosa-guard keygen --api-key prints both)"
        )
    keyring = Keyring.from_files(parsed.resolve(k) for k in spec.trusted_keys)
    verified = verify_bundle(
        load_bundle(parsed.resolve(spec.bundle)),
        keyring,
        min_signers=spec.min_signers,
        now=now,
        pin=spec.pin,
        floor=spec.floor,
    )
    _check_binding(deployment_id, spec, verified.config)
    if serving is not None and not spec.allow_downgrade:
        _check_forward(verified.config, verified.config_hash, serving)
    taxonomy = Taxonomy.from_file(parsed.resolve(spec.taxonomy)) if spec.taxonomy else DEFAULT_TAXONOMY
    for issue in lint(
        verified.config.model_dump(mode="json"), floor=spec.floor, judge_kind=spec.judge.kind, now=now
    ).issues:
        _log.warning("deployment %r: %s", deployment_id, issue)
    return LoadedDeployment(
        id=deployment_id,
        spec=spec,
        config=verified.config,
        config_hash=verified.config_hash,
        signers=verified.signers,
        taxonomy=taxonomy,
        base_dir=parsed.base_dir,
    )


def _check_binding(deployment_id: str, spec: DeploymentSpec, config: SafetyConfig) -> None:
    """A bundle signed for one deployment must not serve another: its config id names the deployment."""
    expected = spec.config_id or deployment_id
    if config.id == expected:
        return
    how = (
        f"its config_id is {expected!r}"
        if spec.config_id
        else "a deployment serves the config whose id is its own unless it sets config_id"
    )
    raise ConfigIdMismatchError(
        f"the bundle holds config {config.id!r}, but deployment {deployment_id!r} serves {expected!r} "
        f"({how}); point bundle at a bundle of {expected!r}, or set config_id: {config.id} if this "
        "deployment is meant to serve that config"
    )


def _check_forward(config: SafetyConfig, config_hash: str, serving: Served) -> None:
    """Versions only move forward: an older or same-numbered changed config never replaces the serving one."""
    if config.id != serving.config_id or config_hash == serving.config_hash:
        return  # another config on purpose (config_id changed), or the same config again
    if config.version > serving.version:
        return
    what = (
        "a lower version than"
        if config.version < serving.version
        else "a different config with the same version as"
    )
    raise ConfigDowngradeError(
        f"config {config.id!r} v{config.version} is {what} v{serving.version}, which is serving: versions "
        f"only move forward; sign the change as v{serving.version + 1}, or set allow_downgrade: true on this "
        "deployment to go back on purpose"
    )


def _with_api_keys(kept: LoadedDeployment, spec: DeploymentSpec) -> LoadedDeployment:
    """`kept` (its last good config) reached by the API keys the file lists now.

    A key removed from the file stops working even when the same reload rejects the new bundle;
    entries that are not hashes (themselves a reason the deployment failed) are left out.
    """
    keys = tuple(k for k in spec.api_keys if _API_KEY_HASH.match(k))
    if keys == kept.spec.api_keys:
        return kept
    return replace(kept, spec=kept.spec.model_copy(update={"api_keys": keys}))


def _api_key_index(deployments: Mapping[str, LoadedDeployment]) -> tuple[tuple[str, str], ...]:
    owner: dict[str, str] = {}
    for deployment_id, deployment in sorted(deployments.items()):
        for stored in deployment.spec.api_keys:
            if stored in owner:
                raise DeploymentError(
                    f"one API key is listed for both {owner[stored]!r} and {deployment_id!r}; "
                    "give each deployment its own key (cosa-guard keygen --api-key)"
                )
            owner[stored] = deployment_id
    return tuple(owner.items())
