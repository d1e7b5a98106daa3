"""Signed config bundles: Ed25519 signatures over a reviewed safety config.

A bundle is JSON:

    {"format": "cosa-guard-bundle/1",
     "payload": {"config": {...canonical SafetyConfig...},
                 "review": {"reviewer", "reviewed_at", "lint": {...}, "note"}},
     "signatures": [{"key_id", "algorithm": "ed25519", "signature": "<base64>", "signer", "signed_at"}]}

Every signature covers `canonical_json(payload)`, so the file may be pretty-printed or its keys
reordered, but any change to the config or the review record breaks every signature. Further
reviewers append signatures without touching the payload. `signer` and `signed_at` are not
signed: only the key id says who signed, which is why `VerifiedConfig.signers` holds key ids.

    key = generate_key()
    bundle = sign_config(config, key, reviewer="alice")
    verified = verify_bundle(bundle, Keyring([key.public_key()]), min_signers=1)
    verified.config_hash                    # == config.hash, stamped on every decision
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cosa_guard.config import SafetyConfig, canonical_json, format_validation_error
from cosa_guard.errors import (
    BundleError,
    ExpiredConfigError,
    FloorViolationError,
    InsufficientSignersError,
    LintError,
    MalformedBundleError,
    PinMismatchError,
    TamperedBundleError,
    UnknownKeyError,
)
from cosa_guard.review import LintReport, ReviewRecord, lint

BUNDLE_FORMAT: Literal["cosa-guard-bundle/1"] = "cosa-guard-bundle/1"
KEY_ID_CHARS = 16
MAX_DEPTH = 32  # a real bundle nests 4 levels; Python's JSON and hashing recurse, so deeper is refused


def key_id(public_key: Ed25519PublicKey) -> str:
    """First 16 hex characters of the SHA-256 of the raw 32-byte public key."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:KEY_ID_CHARS]


def generate_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def write_keypair(key: Ed25519PrivateKey, path: str | Path) -> tuple[Path, Path]:
    """Write the private key (PKCS8 PEM, mode 0600) to `path` and its public key to `path.pub`.

    Refuses to overwrite an existing private key: losing one means re-signing every bundle.
    """
    path = Path(path)
    pub_path = path.with_name(path.name + ".pub")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BundleError(f"{path} already exists; choose another --out path or remove it first") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(pem)
    pub_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return path, pub_path


_PRIVATE_HINT = "create one with `cosa-guard keygen --out KEYFILE`"
_PUBLIC_HINT = "use the KEYFILE.pub that `cosa-guard keygen` wrote"


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    key = _load_pem(path, "private", _PRIVATE_HINT)
    if not isinstance(key, Ed25519PrivateKey):
        raise BundleError(f"{path}: not an Ed25519 private key; {_PRIVATE_HINT}")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    key = _load_pem(path, "public", _PUBLIC_HINT)
    if not isinstance(key, Ed25519PublicKey):
        raise BundleError(f"{path}: not an Ed25519 public key; {_PUBLIC_HINT}")
    return key


def _load_pem(path: str | Path, kind: Literal["private", "public"], hint: str) -> object:
    try:
        pem = Path(path).read_bytes()
    except OSError as exc:
        raise BundleError(f"cannot read {kind} key {path}: {exc.strerror}; {hint}") from exc
    try:
        if kind == "private":
            return serialization.load_pem_private_key(pem, password=None)
        return serialization.load_pem_public_key(pem)
    except (ValueError, TypeError) as exc:
        raise BundleError(f"{path}: not a PEM {kind} key ({exc}); {hint}") from exc


class Keyring:
    """The reviewer public keys a deployment trusts, by key id."""

    __slots__ = ("_keys",)

    def __init__(self, keys: Iterable[Ed25519PublicKey] = ()) -> None:
        self._keys = {key_id(k): k for k in keys}

    @classmethod
    def from_files(cls, paths: Iterable[str | Path]) -> Keyring:
        return cls(load_public_key(p) for p in paths)

    def get(self, kid: str) -> Ed25519PublicKey | None:
        return self._keys.get(kid)

    def __contains__(self, kid: object) -> bool:
        return kid in self._keys

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)


class Signature(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    key_id: str = Field(pattern=rf"^[0-9a-f]{{{KEY_ID_CHARS}}}$")
    algorithm: Literal["ed25519"] = "ed25519"
    signature: str
    signer: str = ""
    signed_at: datetime | None = None


class Bundle(BaseModel):
    """A signed config. `payload` stays the plain JSON that was signed, never a re-serialised model."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: Literal["cosa-guard-bundle/1"]
    payload: dict[str, Any]
    signatures: tuple[Signature, ...] = ()

    def payload_bytes(self) -> bytes:
        return canonical_json(self.payload)

    def config(self) -> SafetyConfig:
        """The config as signed. Raises MalformedBundleError when it is not a valid, canonical config."""
        raw = self.payload.get("config")
        if not isinstance(raw, dict):
            raise MalformedBundleError(
                "bundle payload has no config object; re-create it with `cosa-guard sign`"
            )
        try:
            config = SafetyConfig.model_validate(raw)
        except ValidationError as exc:
            raise MalformedBundleError(f"bundle config is invalid ({format_validation_error(exc)})") from exc
        if canonical_json(raw) != config.canonical_json():
            # Otherwise the signed bytes and the hash stamped on decisions would describe different texts.
            raise MalformedBundleError(
                "bundle config is not in canonical form; re-create it with `cosa-guard sign`"
            )
        return config

    def review(self) -> ReviewRecord:
        try:
            return ReviewRecord.model_validate(self.payload.get("review"))
        except ValidationError as exc:
            raise MalformedBundleError(
                f"bundle review record is invalid ({format_validation_error(exc)})"
            ) from exc

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, ensure_ascii=False) + "\n"

    def save(self, path: str | Path) -> Path:
        """Write the bundle atomically: a server reloading meanwhile reads the old file or the new one."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        os.replace(tmp, path)
        return path


def parse_bundle(data: Bundle | str | bytes | Mapping[str, Any]) -> Bundle:
    """A Bundle from JSON text or a mapping; MalformedBundleError when it is not one."""
    if isinstance(data, Bundle):
        return data
    obj: object = data
    if isinstance(data, (str, bytes)):
        try:
            obj = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MalformedBundleError(
                f"bundle is not valid JSON ({exc}); re-create it with `cosa-guard sign`"
            ) from exc
        except RecursionError:  # deeper than the parser goes
            raise _too_deep() from None
    if _depth(obj) > MAX_DEPTH:
        raise _too_deep()
    if not isinstance(obj, Mapping):
        raise MalformedBundleError("bundle must be a JSON object; re-create it with `cosa-guard sign`")
    if obj.get("format") != BUNDLE_FORMAT:
        raise MalformedBundleError(
            f"not a cosa-guard bundle (format {obj.get('format')!r}, expected {BUNDLE_FORMAT!r})"
        )
    try:
        return Bundle.model_validate(obj)
    except ValidationError as exc:
        raise MalformedBundleError(f"malformed bundle ({format_validation_error(exc)})") from exc


def _too_deep() -> MalformedBundleError:
    return MalformedBundleError(
        f"bundle nests deeper than {MAX_DEPTH} levels; re-create it with `cosa-guard sign`"
    )


def _depth(obj: object) -> int:
    """How deeply `obj` nests (a scalar is 0), without recursing; stops counting past MAX_DEPTH."""
    deepest = 0
    stack: list[tuple[object, int]] = [(obj, 0)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else ()
        if children:
            deepest = max(deepest, depth + 1)
            if deepest > MAX_DEPTH:
                return deepest
            stack.extend((child, depth + 1) for child in children)
    return deepest


def load_bundle(path: str | Path) -> Bundle:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise MalformedBundleError(f"cannot read bundle {path}: {exc.strerror}") from exc
    return parse_bundle(raw)


def sign_config(
    config: SafetyConfig,
    key: Ed25519PrivateKey,
    reviewer: str,
    note: str = "",
    lint_report: LintReport | None = None,
    now: datetime | None = None,
) -> Bundle:
    """Review and sign a config. Refuses (LintError) a config whose lint report has errors.

    `lint_report` is the report the reviewer saw (with the deployment's floor and judge); without
    one, the config is linted with no deployment context.
    """
    # Re-validated so that a `model_copy(update=...)` (which skips validation) is signed in canonical form.
    config = SafetyConfig.from_mapping(config.model_dump(mode="json"))
    report = lint_report if lint_report is not None else lint(config.model_dump(mode="json"), now=now)
    if not report.ok:
        raise LintError(
            "refusing to sign a config with lint errors: " + "; ".join(str(i) for i in report.errors),
            list(report.errors),
        )
    when = now or datetime.now(UTC)
    review = ReviewRecord(reviewer=reviewer, reviewed_at=when, lint=report.summary(), note=note)
    payload = {"config": config.model_dump(mode="json"), "review": review.model_dump(mode="json")}
    unsigned = Bundle(format=BUNDLE_FORMAT, payload=payload)
    return add_signature(unsigned, key, signer=reviewer, now=when)


def add_signature(bundle: Bundle, key: Ed25519PrivateKey, signer: str, now: datetime | None = None) -> Bundle:
    """A copy of `bundle` with one more signature; the payload is untouched."""
    kid = key_id(key.public_key())
    if any(s.key_id == kid for s in bundle.signatures):
        raise BundleError(f"bundle is already signed by key {kid}; a second reviewer needs their own key")
    signature = Signature(
        key_id=kid,
        signature=base64.b64encode(key.sign(bundle.payload_bytes())).decode("ascii"),
        signer=signer,
        signed_at=now or datetime.now(UTC),
    )
    return bundle.model_copy(update={"signatures": (*bundle.signatures, signature)})


@dataclass(frozen=True, slots=True)
class VerifiedConfig:
    config: SafetyConfig
    config_hash: str
    signers: tuple[str, ...]  # distinct trusted key ids, sorted
    review: ReviewRecord


def verify_bundle(
    bundle: Bundle | str | bytes | Mapping[str, Any],
    keyring: Keyring,
    min_signers: int = 1,
    now: datetime | None = None,
    pin: str | None = None,
    floor: Iterable[str] = (),
) -> VerifiedConfig:
    """Check a bundle against the trusted keys; each rejection raises its own BundleError subclass.

    Signatures are checked before the payload is interpreted, so a changed payload reads as
    tampering, never as a config that happens to be invalid.
    """
    bundle = parse_bundle(bundle)
    if not bundle.signatures:
        raise InsufficientSignersError(
            f"bundle is unsigned, {min_signers} trusted signature(s) required; sign it with "
            "`cosa-guard sign BUNDLE.json --key KEYFILE --reviewer NAME`"
        )
    message = bundle.payload_bytes()
    trusted: set[str] = set()
    for sig in bundle.signatures:
        public = keyring.get(sig.key_id)
        if public is None:
            continue
        try:
            public.verify(base64.b64decode(sig.signature, validate=True), message)
        except (InvalidSignature, binascii.Error, ValueError):
            raise TamperedBundleError(
                f"signature by trusted key {sig.key_id} does not match the payload: the bundle was changed "
                "after signing; review the config again and re-sign it"
            ) from None
        trusted.add(sig.key_id)
    if not trusted:
        seen = sorted({s.key_id for s in bundle.signatures}) or ["none"]
        raise UnknownKeyError(
            f"bundle is signed only by untrusted keys ({', '.join(seen)}); add the reviewer's .pub to the "
            "trusted keys or have a trusted reviewer sign it"
        )
    if len(trusted) < min_signers:
        raise InsufficientSignersError(
            f"bundle has {len(trusted)} distinct trusted signer(s), {min_signers} required; have another "
            "trusted reviewer sign it (`cosa-guard sign BUNDLE.json --key ...`)"
        )
    config = bundle.config()
    review = bundle.review()
    if config.is_expired(now) and config.expires_at is not None:
        raise ExpiredConfigError(
            f"config {config.id!r} v{config.version} expired at {config.expires_at.isoformat()}; "
            "review it again with a later expires_at and re-sign it"
        )
    unlocked_floor = sorted(set(config.allow) & set(floor))
    if unlocked_floor:
        raise FloorViolationError(
            f"config {config.id!r} allows floor categor{'y' if len(unlocked_floor) == 1 else 'ies'} "
            f"{', '.join(unlocked_floor)}, which this deployment never unlocks; remove "
            f"{'it' if len(unlocked_floor) == 1 else 'them'} from allow and re-sign"
        )
    if pin is not None and config.hash != pin:
        raise PinMismatchError(
            f"config hash {config.hash} differs from the pinned {pin}; update the deployment's pin only if "
            "this new config was reviewed for it"
        )
    return VerifiedConfig(
        config=config, config_hash=config.hash, signers=tuple(sorted(trusted)), review=review
    )
