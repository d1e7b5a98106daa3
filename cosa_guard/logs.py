"""Logging for `cosa-guard` processes: a level, timestamps, logger names and request ids, as text or JSON.

    configure_logging("info", "json")

One handler on the root logger writes to the current stderr. cosa_guard's and uvicorn's records
pass from `level` up; other libraries' only from WARNING, so `info` shows the server's own
events (deployments reloaded, breaker changes, access lines) and not every HTTP request a
client library makes; `debug` shows everything. Each record carries the id of the request being
served when it was written (`-` outside a request), from `cosa_guard.request_ids`.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from cosa_guard.request_ids import current_request_id

LEVELS = ("critical", "error", "warning", "info", "debug")
FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
_OWN_LOGGERS = ("cosa_guard", "uvicorn")


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record: the request being served, or `-`."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = current_request_id.get() or "-"
        return True


class _OthersFromWarning(logging.Filter):
    """Lets other libraries' records through only from WARNING, whatever the configured level."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING or record.name.split(".", 1)[0] in _OWN_LOGGERS


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts (UTC, ISO 8601), level, logger, message, request_id, exc_info."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack_info"] = self.formatStack(record.stack_info)
        return json.dumps(out, ensure_ascii=False, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is at the time, so a replaced stderr (tests, daemons) is followed."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(level: str = "info", fmt: str = "text") -> None:
    """Route records to stderr in `fmt` (`text` or `json`); calling again replaces the earlier setup."""
    if level not in LEVELS:
        raise ValueError(f"log level must be one of {LEVELS}, got {level!r}")
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {FORMATS}, got {fmt!r}")
    handler = _StderrHandler()
    handler.addFilter(RequestIdFilter())
    handler.addFilter(_OthersFromWarning())
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
