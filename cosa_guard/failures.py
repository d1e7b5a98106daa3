"""How a failure is told: a short fixed message, never the exception's own text.

An exception's text can hold what no judge has seen: a `UnicodeEncodeError` quotes the whole
request it could not encode (the rendered config included), an upstream's error body can quote
the model's answer, a judge's parse error quotes the judge's output. So decisions, error bodies,
audit records and the ordinary logs describe a failure by its type only (`describe`), and the
exception itself goes to the `cosa_guard.detail` logger (`log_detail`). That logger is off by
default: it is set to WARNING when this module is imported (unless it was configured before) and
writes at DEBUG, so even a root logger at DEBUG leaves it silent. Turn it on with
`logging.getLogger("cosa_guard.detail").setLevel(logging.DEBUG)`, knowing that what it writes may
contain prompt, config and model text.
"""

from __future__ import annotations

import logging

from cosa_guard.errors import (
    AnswerTooLongError,
    BackendError,
    BackendRequestError,
    BackendTimeoutError,
    JudgeError,
    JudgeParseError,
    UpstreamStatusError,
)
from cosa_guard.types import FailureKind

DETAIL_LOGGER = "cosa_guard.detail"

_detail = logging.getLogger(DETAIL_LOGGER)
if _detail.level == logging.NOTSET:
    _detail.setLevel(logging.WARNING)


def describe(exc: BaseException) -> str:
    """A fixed description of `exc` from its type (and HTTP status): safe for clients and audit."""
    if isinstance(exc, BackendTimeoutError):
        return "the model backend timed out"
    if isinstance(exc, UpstreamStatusError):
        return f"the model server answered HTTP {exc.status}"
    if isinstance(exc, BackendRequestError):
        if exc.status is None:
            return "the request could not be sent to the model"
        return f"the model server rejected the request (HTTP {exc.status})"
    if isinstance(exc, AnswerTooLongError):
        return f"the model's answer passed limits.max_answer_chars ({exc.limit})"
    if isinstance(exc, BackendError):
        return "the model backend failed"
    if isinstance(exc, JudgeParseError):
        return "the judge's answer could not be parsed"
    if isinstance(exc, JudgeError):
        return "the judge failed"
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"unexpected {type(exc).__name__}"


def backend_failure_kind(exc: BaseException) -> FailureKind:
    """The kind of a failed model call: a backend timeout, or any other backend failure."""
    return FailureKind.TIMEOUT if isinstance(exc, BackendTimeoutError) else FailureKind.BACKEND


def is_upstream_fault(exc: BaseException | None) -> bool:
    """Is `exc` evidence that the model server is unhealthy (so it counts against its breaker)?

    A bug of ours or a request the upstream rejects says nothing about the upstream; a backend
    that raises bare timeouts or connection errors instead of `BackendError` still counts.
    """
    if isinstance(exc, BackendError):
        return exc.upstream_fault
    return isinstance(exc, TimeoutError | ConnectionError)


def log_detail(request_id: str, where: str, exc: BaseException) -> None:
    """The exception of a failed call, for the operator's eyes only (off by default; see above)."""
    if _detail.isEnabledFor(logging.DEBUG):
        _detail.debug(
            "request %s: %s failed (may contain prompt, config or model text): %r",
            request_id,
            where,
            exc,
            exc_info=exc,
        )
