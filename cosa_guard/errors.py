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
    │   ├── UnknownDeploymentError             no such deployment id / API key
    │   ├── ConfigIdMismatchError              the bundle's config is not the one the deployment serves
    │   └── ConfigDowngradeError               the config's version does not move forward
    ├── BackendError                           a model backend failed (`upstream_fault`: breaker counts it)
    │   ├── BackendTimeoutError                it did not answer within the deadline
    │   ├── UpstreamStatusError                the model server answered an error status (5xx, 401, 429, ...)
    │   ├── BackendRequestError                this request was at fault (400, 413, 422, unencodable text)
    │   ├── AnswerTooLongError                 the answer passed the deployment's limits.max_answer_chars
    │   └── BackendBusyError                   a local model's queue is full (load, not a fault)
    ├── JudgeError                             a judge failed: crashed, timed out or could not be parsed
    │   └── JudgeParseError                    its answer could not be parsed (never a pass)
    └── IncompleteStreamError                  a guarded stream ended without its decision

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


class ConfigIdMismatchError(DeploymentError):
    """A validly signed bundle holds another deployment's config (its `id` is not the one expected)."""


class ConfigDowngradeError(DeploymentError):
    """A reload would replace the serving config with a lower version, or a changed one with the same."""


class BackendError(CosaGuardError):
    """A model backend failed.

    `upstream_fault` says whether the failure is evidence that the model server is unhealthy (it
    timed out, refused the connection, answered 5xx or garbage): only those count against the
    primary route's circuit breaker, so one client's bad requests cannot open it for everyone.
    The message may quote the upstream's answer: it is for the detail log, never for a decision.
    """

    upstream_fault: bool = True


class BackendTimeoutError(BackendError, TimeoutError):
    pass


class UpstreamStatusError(BackendError):
    """The model server answered an HTTP error status that is not about this request's content."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class BackendRequestError(BackendError):
    """The backend rejected this request (HTTP 400/413/422, or text that cannot be encoded).

    It says nothing about the upstream's health: the next request may well succeed.
    """

    upstream_fault = False

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class AnswerTooLongError(BackendError):
    """The model's answer passed the deployment's `limits.max_answer_chars`: a runaway upstream."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the model's answer is longer than this deployment's limits.max_answer_chars ({limit})"
        )
        self.limit = limit


# Statuses that judge what a request asked for, not the server's health.
REQUEST_STATUSES = frozenset({400, 413, 422})


def status_error(message: str, status: int) -> BackendError:
    """The error for an upstream's HTTP error status: this request's fault, or the upstream's."""
    if status in REQUEST_STATUSES:
        return BackendRequestError(message, status)
    return UpstreamStatusError(message, status)


class BackendBusyError(BackendError):
    """A local model's queue is full: the call was refused at once instead of waiting behind the others.

    Load, not a fault: opening the breaker would not make the queue shorter.
    """

    upstream_fault = False


class JudgeError(CosaGuardError):
    """A judge could not produce a verdict. The guard treats this as a failure, never a pass."""


class JudgeParseError(JudgeError):
    pass


class IncompleteStreamError(CosaGuardError):
    """A guarded stream ended without its decision: what was shown was never fully checked."""
