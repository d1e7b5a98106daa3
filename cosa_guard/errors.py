"""Every exception cosa_guard raises, in one place.

    CosaGuardError
    ├── MissingExtraError (also ImportError)   an optional dependency is not installed
    ├── ConfigError                            a SafetyConfig or its YAML is invalid
    │   └── LintError                          lint found errors; `.issues` lists them
    ├── BundleError                            a signed bundle does not verify
    │   ├── MalformedBundleError               not a bundle (bad JSON, missing parts)
    │   ├── TamperedBundleError                a signature does not match the payload
    │   ├── UnknownKeyError                    signed only by keys outside the trust set
    │   ├── InsufficientSignersError           fewer distinct trusted signers than required
    │   ├── ExpiredConfigError                 the config's `expires_at` has passed
    │   ├── PinMismatchError                   the config hash differs from the deployment's pin
    │   └── FloorViolationError                the config allows one of the deployment's floor categories
    ├── DeploymentError                        a deployments file or deployment is unusable
    │   └── UnknownDeploymentError             no such deployment id / API key
    ├── BackendError                           a model backend failed
    │   └── BackendTimeoutError                it did not answer within the deadline
    └── JudgeError                             a judge failed: crashed, timed out or could not be parsed
        └── JudgeParseError                    its answer could not be parsed (never a pass)

A *refusal* is not an exception: the guard returns it as a normal `Decision`.
"""

from __future__ import annotations


class CosaGuardError(Exception):
    """Base class of every cosa_guard error."""


class MissingExtraError(CosaGuardError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, module: str, extra: str, purpose: str = "") -> None:
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{module!r} is not installed{what}. Install it with: pip install 'cosa-guard[{extra}]'"
        )
        self.module = module
        self.extra = extra


class ConfigError(CosaGuardError, ValueError):
    """A safety config is invalid."""


class LintError(ConfigError):
    """Lint found errors in a config; `issues` holds them."""

    def __init__(self, message: str, issues: list[object] | None = None) -> None:
        super().__init__(message)
        self.issues = list(issues or [])


class BundleError(CosaGuardError):
    """A signed config bundle failed verification."""


class MalformedBundleError(BundleError):
    pass


class TamperedBundleError(BundleError):
    pass


class UnknownKeyError(BundleError):
    pass


class InsufficientSignersError(BundleError):
    pass


class ExpiredConfigError(BundleError):
    pass


class PinMismatchError(BundleError):
    pass


class FloorViolationError(BundleError):
    pass


class DeploymentError(CosaGuardError):
    """A deployments file or one deployment in it cannot be used."""


class UnknownDeploymentError(DeploymentError, KeyError):
    """No deployment has this id or API key. Never falls back to a default config."""

    def __str__(self) -> str:  # KeyError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "unknown deployment"


class BackendError(CosaGuardError):
    """A model backend failed."""


class BackendTimeoutError(BackendError, TimeoutError):
    pass


class BackendBusyError(BackendError):
    """A local model's queue is full: the call was refused at once instead of waiting behind the others."""


class JudgeError(CosaGuardError):
    """A judge could not produce a verdict. The guard treats this as a failure, never a pass."""


class JudgeParseError(JudgeError):
    pass
