"""Which config each deployment serves, shared by a server's worker processes through one small file.

A worker that a SIGHUP rolling restart starts loads every bundle afresh: on its own it has no
serving version to compare with, and an older, validly signed bundle copied back would serve
again. So every worker records what it serves after each load and reload, and a new worker reads
the record as the floor its configs may not go below (docs/configs.md, "Versions only move
forward"). One process needs no file: its registry remembers what it serves.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Served:
    """The config a deployment serves: what a later load of the same config id must not go below."""

    config_id: str
    version: int
    config_hash: str


class ServedLedger:
    """A JSON file `{deployment id: {config_id, version, config_hash}}`, updated under a lock."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def read(self) -> dict[str, Served]:
        """What the workers recorded; empty when nothing was (a damaged file is logged and ignored)."""
        try:
            raw = json.loads(self.path.read_text(encoding="utf-8"))
            return {i: Served(**entry) for i, entry in raw.items()}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError, TypeError, AttributeError) as exc:
            logger.error("cannot read the served-versions file %s (%s); starting without it", self.path, exc)
            return {}

    def record(self, served: Mapping[str, Served]) -> None:
        """Replace the entries of these deployments; the others' stay as other workers wrote them."""
        with self._locked():
            current = self.read()
            current.update(served)
            body = {
                i: {"config_id": s.config_id, "version": s.version, "config_hash": s.config_hash}
                for i, s in sorted(current.items())
            }
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            tmp.write_text(json.dumps(body), encoding="utf-8")
            os.replace(tmp, self.path)  # readers never see half a file

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
