"""Text that UTF-8 can carry.

A Python str may hold surrogate code points (U+D800-U+DFFF), e.g. from a JSON `"\\ud800"` escape
in an upstream answer or a request; UTF-8 cannot encode them, so writing such text to a socket or
a file raises. Every boundary that turns model or client text into bytes goes through here, and
each surrogate becomes U+FFFD, one for one, so that the same text scrubbed whole or in pieces
(a stream's deltas) reads the same.
"""

from __future__ import annotations

import re

REPLACEMENT = "\ufffd"
_SURROGATE = re.compile("[\ud800-\udfff]")


def scrub(text: str) -> str:
    """`text` with every surrogate code point replaced by U+FFFD (the same object when there is none)."""
    if text.isascii():
        return text
    return _SURROGATE.sub(REPLACEMENT, text)


def encode(text: str) -> bytes:
    """`text` as UTF-8; surrogates become U+FFFD instead of raising."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return scrub(text).encode("utf-8")
