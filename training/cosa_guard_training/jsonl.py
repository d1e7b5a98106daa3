"""JSON Lines in and out: every pipeline step reads and writes files a person can open and read.

Steps that call models (responses, labels) append one line per finished item through
`append_resumable`, so an interrupted run resumes where it stopped and never pays twice.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Hashable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

from tqdm.auto import tqdm

__all__ = ["append_resumable", "read_jsonl", "write_jsonl"]

T = TypeVar("T")


def read_jsonl(path: str | Path) -> Iterator[dict[str, Any]]:
    """Rows of a JSONL file; blank lines are skipped, a broken line names its file and line number."""
    with Path(path).open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not valid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object per line")
            yield row


def write_jsonl(path: str | Path, rows: Iterable[Mapping[str, Any]]) -> int:
    """Write `rows` atomically (a temporary file renamed into place) and return how many were written."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".tmp")
    count = 0
    with tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(dumps(row) + "\n")
            count += 1
    tmp.replace(target)
    return count


def dumps(row: Mapping[str, Any]) -> str:
    return json.dumps(row, ensure_ascii=False, sort_keys=False)


def drop_torn_tail(path: Path) -> None:
    """Cut a last line left half-written by a killed run, so the file parses and can be appended to."""
    if not path.exists():
        return
    data = path.read_bytes()
    if not data or data.endswith(b"\n"):
        return
    path.write_bytes(data[: data.rfind(b"\n") + 1])


async def append_resumable(
    items: Sequence[T],
    work: Callable[[T], Awaitable[Mapping[str, Any] | None]],
    output: str | Path,
    *,
    key: Callable[[Mapping[str, Any]], Hashable],
    item_key: Callable[[T], Hashable],
    desc: str,
    concurrency: int = 4,
) -> tuple[int, int, int]:
    """Run `work` on every item whose key is not yet in `output`, appending each result as it lands.

    `work` returns the row to write, or None for an item that failed this time (it is retried by
    the next run). Returns (written now, failed now, already done before this run).
    """
    path = Path(output)
    done = await asyncio.to_thread(_finished_keys, path, key)
    todo = [item for item in items if item_key(item) not in done]
    pending = iter(todo)
    counts = {"written": 0, "failed": 0}

    # A fixed pool of workers takes items in order: calls start in a reproducible order (a scripted
    # backend answers the same way on every run) and memory stays flat however long the list.
    # Rows are a line each: writing one is cheap next to the model call that produced it.
    async def worker(fh: IO[str], bar: Any) -> None:
        for item in pending:
            row = await work(item)
            bar.update()
            if row is None:
                counts["failed"] += 1
                continue
            fh.write(dumps(row) + "\n")
            fh.flush()
            counts["written"] += 1

    fh = await asyncio.to_thread(path.open, "a", encoding="utf-8")
    try:
        with tqdm(total=len(todo), desc=desc, unit="item") as bar:
            workers = [asyncio.ensure_future(worker(fh, bar)) for _ in range(max(1, concurrency))]
            try:
                await asyncio.gather(*workers)
            except BaseException:
                # One worker failed (or we were cancelled): stop the others before the file closes.
                for task in workers:
                    task.cancel()
                await asyncio.gather(*workers, return_exceptions=True)
                raise
    finally:
        fh.close()
    return counts["written"], counts["failed"], len(items) - len(todo)


def _finished_keys(path: Path, key: Callable[[Mapping[str, Any]], Hashable]) -> set[Hashable]:
    path.parent.mkdir(parents=True, exist_ok=True)
    drop_torn_tail(path)
    return {key(r) for r in read_jsonl(path)} if path.exists() else set()
