"""What a guarded LangChain call raises instead of answering.

    GuardDecisionError (a cosa_guard CosaGuardError)
    ├── GuardFailedError    the guard could not decide (timeout, backend, judge, config): always raised
    └── GuardRefusalError   the guard refused: raised where the caller asked (`raise_on_refusal=True`),
                            and by `with_structured_output` (a refusal is no instance of the schema)

Raising is what lets LangChain's own recovery work: `with_retry(retry_if_exception_type=
(GuardFailedError,))` retries an outage, `with_fallbacks([...])` answers with another runnable.
The exceptions carry the guard's decision and identifiers; their message says only the decision's
label and the identifiers, never the prompt or the model's text, so it is safe to log.
"""

from __future__ import annotations

from cosa_guard.errors import CosaGuardError
from cosa_guard.types import Decision, DecisionKind, GuardResponse

__all__ = ["GuardDecisionError", "GuardFailedError", "GuardRefusalError", "raise_for"]


class GuardDecisionError(CosaGuardError):
    """A guarded call that did not allow an answer.

    `decision` is the guard's `Decision` (`label` is its one-token form, `failed:backend`),
    `refusal` the deployment's refusal text (what the call would have answered with), and
    `deployment_id`, `config_hash`, `request_id`, `route`, `categories`, `rule` (the deciding
    config rule, `{"number", "text"}`, or None) and `rules_reviewed` identify the call as
    `response_metadata["cosa_guard"]` would have.
    """

    def __init__(self, response: GuardResponse) -> None:
        self.decision: Decision = response.decision
        self.label = response.decision.label
        self.refusal = response.text
        self.deployment_id = response.deployment_id
        self.config_hash = response.config_hash
        self.request_id = response.request_id
        self.route = response.route.value
        self.categories = sorted(response.categories)
        self.rule = response.rule
        self.rules_reviewed = response.rules_reviewed
        super().__init__(
            f"{self.label} (deployment {self.deployment_id!r}, config {self.config_hash}, "
            f"request {self.request_id or '-'})"
        )


class GuardFailedError(GuardDecisionError):
    """The guard could not decide and the deployment fails closed (`decision.failure` says why)."""


class GuardRefusalError(GuardDecisionError):
    """The guard refused the call (`decision.reason` says why)."""


def raise_for(response: GuardResponse, *, raise_on_refusal: bool) -> None:
    """Raise for a failed decision always, for a refused one when `raise_on_refusal`."""
    kind = response.decision.kind
    if kind is DecisionKind.FAILED:
        raise GuardFailedError(response)
    if kind is DecisionKind.REFUSED and raise_on_refusal:
        raise GuardRefusalError(response)
