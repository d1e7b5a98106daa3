"""A model's answer as the guard takes it in: text UTF-8 can carry, and no longer than the deployment allows.

Both rules hold where the answer enters the guard, before it is judged, cached, audited or sent,
so that every later step sees the same text: a lone surrogate becomes U+FFFD (what the client
receives is what the judge read and the audit records), and an answer past
`limits.max_answer_chars` is a backend failure (an upstream that never stops costs no more memory than
that, and nothing of it is returned unchecked).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import replace

from cosa_guard import utf8
from cosa_guard.errors import AnswerTooLongError
from cosa_guard.types import Chunk


def checked_answer(text: str, max_chars: int) -> str:
    """`text` with surrogates replaced; AnswerTooLongError past `max_chars`."""
    if len(text) > max_chars:
        raise AnswerTooLongError(max_chars)
    return utf8.scrub(text)


async def checked_chunks(chunks: AsyncGenerator[Chunk, None], max_chars: int) -> AsyncGenerator[Chunk, None]:
    """`chunks` with surrogates replaced; AnswerTooLongError once their text passes `max_chars`.

    Closing this generator closes `chunks`.
    """
    total = 0
    try:
        async for chunk in chunks:
            total += len(chunk.text)
            if total > max_chars:
                raise AnswerTooLongError(max_chars)
            text = utf8.scrub(chunk.text)
            yield chunk if text is chunk.text else replace(chunk, text=text)
    finally:
        await chunks.aclose()
