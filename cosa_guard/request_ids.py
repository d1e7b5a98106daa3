"""Request ids: one per call, shared by the response body, the `x-request-id` header, the audit record
and every log line written while the call runs.

An id is a random per-process prefix and a counter: unique across processes without calling
os.urandom on every request (which hands the GIL to other threads under load). A client may bring
its own id (`x-request-id`) so that its logs and ours line up; one that is too long or holds
characters a log line or header should not carry is replaced by a fresh one.
"""

from __future__ import annotations

import itertools
import re
import secrets
from contextvars import ContextVar

_ID_PREFIX = secrets.token_hex(8)
_ID_COUNTER = itertools.count()

MAX_CLIENT_ID_CHARS = 128
_CLIENT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")

# The id of the call this task serves, for log records (`cosa_guard.logs.RequestIdFilter`).
current_request_id: ContextVar[str | None] = ContextVar("cosa_guard_request_id", default=None)


def new_request_id() -> str:
    return f"{_ID_PREFIX}{next(_ID_COUNTER):016x}"


def accept_request_id(client_id: str | None) -> str:
    """The client's id when it is safe to echo and log (1-128 of `A-Z a-z 0-9 . _ : -`), else a new one."""
    if client_id and len(client_id) <= MAX_CLIENT_ID_CHARS and _CLIENT_ID.fullmatch(client_id):
        return client_id
    return new_request_id()
