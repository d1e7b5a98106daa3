"""Unicode normalisation and decoding: the views of a text that injection detection and config review read.

An attacker hides a config from simple matching with compatibility characters (fullwidth
`＜｜im_start｜＞`), invisible characters (zero-width, bidi overrides, Unicode tag characters that
spell ASCII nobody sees), homoglyphs (Cyrillic `о` in `ignоre`) or an encoding (base64, hex,
rot13, URL-encoding, leetspeak, letters spaced out). `normalise` undoes all of that for
*detection only*: the original text is kept, and what reaches the model changes only when a
deployment sanitises.

`Normalised.text` is the cleaned text (invisible characters removed, NFKC per character,
confusables folded inside mixed-script words); `origin` maps each of its characters back to the
original, so a finding on the cleaned text can name a span of what the user sent. Decoded
payloads are `views`; the hidden characters themselves are `signals` (smuggling is evidence).
Everything here is pure Python and linear in the text length.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import codecs
import re
import unicodedata
import urllib.parse
from dataclasses import dataclass

# Invisible formatting characters that carry no meaning for the model but break up keywords.
_ZERO_WIDTH = frozenset(
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b\u180c\u180d\u180e\u200b\u200c\u200d"
    "\u2060\u2061\u2062\u2063\u2064\u3164\ufeff\uffa0"
)
# Directional controls. Marks (LRM, RLM), embeddings and isolates are how Arabic, Persian, Urdu
# and Hebrew text mixes directions, and apps insert them around names and numbers; only the
# overrides (LRO, RLO) force characters to display against their own direction, which is what
# hides text from a reviewer.
_BIDI = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_BIDI_OVERRIDES = frozenset("\u202d\u202e")
_TAG_FIRST, _TAG_LAST = 0xE0000, 0xE007F
_TAG_CANCEL = 0xE007F
_BLACK_FLAG = "\U0001f3f4"  # emoji subdivision flags (England, Scotland ...) legitimately use tags
_SELECTORS = "\ufe00-\ufe0f\U000e0100-\U000e01ef"
_INVISIBLE = re.compile(
    "[" + re.escape("".join(sorted(_ZERO_WIDTH | _BIDI))) + "\U000e0000-\U000e007f" + _SELECTORS + "]"
)
_TAG_RUN = re.compile("[\U000e0000-\U000e007f]+")
_SELECTOR_RUN = re.compile(f"[{_SELECTORS}]{{4,}}")
_ZERO_WIDTH_IN_WORD = re.compile(
    "(?<=[A-Za-z0-9])[" + re.escape("".join(sorted(_ZERO_WIDTH))) + "](?=[A-Za-z0-9])"
)
_OVERRIDE = re.compile("[" + "".join(sorted(_BIDI_OVERRIDES)) + "]")

# Homoglyphs of Latin letters from Cyrillic, Greek, Armenian and Cherokee that NFKC leaves alone.
# A compact table of the lookalikes seen in attacks, not all of Unicode's confusables.txt: the
# core package stays dependency-light and folding only runs inside mixed-script words.
_CONFUSABLES = str.maketrans(
    {
        # Cyrillic
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i", "ї": "i", "ј": "j", "һ": "h",
        "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "ӏ": "l",
        "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
        "Т": "T", "У": "Y", "Х": "X", "Ѕ": "S", "І": "I", "Ј": "J", "Ԛ": "Q", "Ԝ": "W",
        # Greek
        "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u",
        "χ": "x", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M",
        "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
        # Armenian, Cherokee, Latin extensions
        "օ": "o", "ս": "u", "ց": "g", "Ꭺ": "A", "Ꭼ": "E", "Ꮋ": "H", "Ꭲ": "T",
        "ı": "i", "ȷ": "j", "ʏ": "y", "ᴀ": "a", "ᴄ": "c", "ᴅ": "d", "ᴇ": "e", "ᴏ": "o",
    }
)  # fmt: skip
_CONFUSABLE_CHARS = frozenset(chr(c) for c in _CONFUSABLES)
# Latin letters themselves (Turkish ı, small capitals): folded like the rest, never another script.
_LATIN_LOOKALIKES = frozenset("ıȷɡʏᴀᴄᴅᴇᴏ")
_CONFUSABLE_SEARCH = re.compile("[" + "".join(sorted(_CONFUSABLE_CHARS)) + "]")

_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_LEET_HINT = re.compile(r"[A-Za-z][013457@$]|[013457@$][A-Za-z]")
_LEET_WORD = re.compile(r"(?<![\w@$])(?=[\w@$]*[A-Za-z])(?=[\w@$]*[013457@$])[\w@$]{3,}")
# A digit or symbol standing in for a letter between letters (`1gn0r3`, `pr3v10us`, `5y5t3m`).
# Ordinary tokens have theirs at an edge: `CC0`, `sha1`, `mp3`, `10ms`, `3rd`, `$HOME`, `@property`.
_LEET_INSIDE = re.compile(r"[A-Za-z][013457@$]+[A-Za-z]")
_HEX_WORD = re.compile(r"(?:0[xX])?[0-9A-Fa-f]+")
# A word that touches these is part of an address, a path or a dotted name (`dev@python.org`).
_ADDRESS_BEFORE = frozenset("./\\:")
_ADDRESS_AFTER = re.compile(r"[./\\]\w|://")
_SEGMENT_END = re.compile(r"\n|(?<=[.!?])\s+")
# Disguised sentences this close together form one view, so the classifier reads them in context.
_LEET_GAP = 200
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{12,}={0,2}(?![A-Za-z0-9+/=_-])")
_HEX = re.compile(r"(?<![0-9A-Fa-f])(?:(?:0x|\\x)?[0-9A-Fa-f]{2}[\s:,]?){8,}")
_URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_WORD = re.compile(r"[^\W\d_]+")
# A word spelt with a separator after every letter ("s.a.f.e.t.y", "i g n o r e", "a l l"), one
# separator throughout; "e.g." and "U.S.A." match too, so a view needs more (`_spaced_stretches`).
_SPACED = re.compile(
    r"(?<![A-Za-z0-9])[A-Za-z](?P<sep>[.\-_*· ])(?:[A-Za-z](?P=sep))*[A-Za-z](?![A-Za-z0-9])"
)
_SPACED_GAP = 3  # characters between two spaced-out words of one sentence ("y.o.u.r: a.l.l")
# Frequent short English words: decoding that turns a text into these is very likely intended.
_COMMON = frozenset(
    {
        "the",
        "a",
        "an",
        "and",
        "or",
        "to",
        "of",
        "in",
        "on",
        "is",
        "are",
        "you",
        "your",
        "all",
        "any",
        "be",
        "not",
        "no",
        "now",
        "new",
        "from",
        "with",
        "this",
        "that",
        "for",
        "it",
        "as",
        "at",
        "by",
        "me",
        "my",
        "we",
        "our",
        "do",
        "can",
        "will",
        "must",
        "should",
        "ignore",
        "previous",
        "instructions",
        "safety",
        "config",
        "policy",
        "system",
        "rules",
        "allow",
        "allowed",
        "everything",
        "mode",
    }
)


@dataclass(frozen=True, slots=True)
class Signal:
    """Evidence found while normalising: hidden characters, homoglyphs, an encoded payload."""

    kind: str  # tag_chars, variation_selectors, zero_width, bidi_override, mixed_script, encoded:<codec>
    span: tuple[int, int]  # in the original text
    detail: str = ""


@dataclass(frozen=True, slots=True)
class View:
    """A decoded payload the detectors read as if the user had written it in the clear."""

    kind: str  # base64, hex, url, rot13, leetspeak, tag_chars, variation_selectors
    span: tuple[int, int]  # the encoded stretch, in the original text
    text: str


@dataclass(frozen=True, slots=True)
class Normalised:
    original: str
    text: str
    origin: tuple[int, ...] | None  # origin[i]: index in `original` of `text[i]`; None: the same index
    views: tuple[View, ...] = ()
    signals: tuple[Signal, ...] = ()

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map a span of `text` back onto `original`."""
        if not self.text or start >= end:
            return (0, 0)
        start = min(max(start, 0), len(self.text) - 1)
        end = min(max(end, start + 1), len(self.text))
        if self.origin is None:
            return (start, end)
        return (self.origin[start], self.origin[end - 1] + 1)

    def detection_text(self) -> str:
        """What the classifier reads: the cleaned text followed by every decoded payload."""
        if not self.views:
            return self.text
        decoded = "\n".join(f"[{v.kind}] {clean(v.text)}" for v in self.views)
        return f"{self.text}\n{decoded}"


def clean(text: str) -> str:
    """The cleaned text alone; idempotent: `clean(clean(t)) == clean(t)`."""
    return _clean(text)[0]


def normalise(text: str) -> Normalised:
    """Clean `text`, record hidden characters as signals and decode obvious encodings into views."""
    cleaned, origin = _clean(text)
    signals: list[Signal] = []
    views: list[View] = []
    _scan_invisible(text, signals, views)
    _scan_mixed_script(text, signals)
    _decode_views(cleaned, origin, signals, views)
    return Normalised(text, cleaned, origin, tuple(views), tuple(signals))


def _clean(text: str) -> tuple[str, tuple[int, ...] | None]:
    # Fast path (most turns): nothing to strip and already NFKC, so indices do not move.
    if text.isascii() or (unicodedata.is_normalized("NFKC", text) and not _INVISIBLE.search(text)):
        return _fold_confusables(text), None
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if _INVISIBLE.match(ch):
            continue
        # Per character, so every output character keeps the index it came from.
        for piece in unicodedata.normalize("NFKC", ch) if not ch.isascii() else ch:
            if not _INVISIBLE.match(piece):
                out.append(piece)
                origin.append(i)
    folded = _fold_confusables("".join(out))
    if len(folded) != len(out):  # cannot happen with a 1:1 table; keep the map honest anyway
        raise AssertionError("confusable folding changed the text length")
    return folded, tuple(origin)


def _disguised_words(text: str) -> list[re.Match[str]]:
    """Latin words with lookalikes in them (`ignоre`, `sаfety`): only Latin letters and lookalikes.

    Whole Cyrillic or Greek words, and native words with a Latin typo in them (`Симанcом`),
    are not. In mostly non-Latin text a word must also be mostly ASCII: Ukrainian typed with a
    Latin `i` (`вiн`) is Ukrainian, where `уоu` among English words is a disguise.
    """
    if text.isascii() or not _CONFUSABLE_SEARCH.search(text):
        return []
    words = list(_WORD.finditer(text))
    latin_text: bool | None = None
    found = []
    for match in words:
        word = match.group(0)
        ascii_letters = sum(ch.isascii() for ch in word)
        if not ascii_letters or not any(ch in _CONFUSABLE_CHARS for ch in word):
            continue
        if not all(ch.isascii() or ch in _CONFUSABLE_CHARS or _is_latin(ch) for ch in word):
            continue
        foreign = sum(ch in _CONFUSABLE_CHARS and ch not in _LATIN_LOOKALIKES for ch in word)
        if ascii_letters < foreign:
            if latin_text is None:
                latin_text = 2 * sum(sum(ch.isascii() for ch in w.group(0)) for w in words) >= sum(
                    len(w.group(0)) for w in words
                )
            if not latin_text:
                continue
        found.append(match)
    return found


def _is_latin(ch: str) -> bool:
    return unicodedata.name(ch, "").startswith("LATIN ")


def _fold_confusables(text: str) -> str:
    """Fold lookalikes only inside disguised Latin words."""
    disguised = _disguised_words(text)
    if not disguised:
        return text
    pieces = []
    pos = 0
    for match in disguised:
        pieces += [text[pos : match.start()], match.group(0).translate(_CONFUSABLES)]
        pos = match.end()
    pieces.append(text[pos:])
    return "".join(pieces)


def _scan_invisible(text: str, signals: list[Signal], views: list[View]) -> None:
    if text.isascii() or not _INVISIBLE.search(text):
        return
    for m in _TAG_RUN.finditer(text):
        start, end = m.span()
        hidden = "".join(chr(ord(c) - _TAG_FIRST) for c in m.group(0) if ord(c) != _TAG_CANCEL)
        is_flag = start > 0 and text[start - 1] == _BLACK_FLAG and ord(text[end - 1]) == _TAG_CANCEL
        if is_flag and len(hidden) <= 7 and hidden.isalnum():
            continue
        signals.append(Signal("tag_chars", (start, end), f"{end - start} tag characters"))
        if hidden.strip():
            views.append(View("tag_chars", (start, end), hidden))
    # One selector after an emoji is normal; a run of them encodes bytes, one per selector.
    for m in _SELECTOR_RUN.finditer(text):
        data = bytes(ord(c) - 0xFE00 if ord(c) <= 0xFE0F else ord(c) - 0xE0100 + 16 for c in m.group(0))
        hidden = data.decode("utf-8", errors="ignore")
        signals.append(Signal("variation_selectors", m.span(), f"{len(m.group(0))} variation selectors"))
        if hidden.strip():
            views.append(View("variation_selectors", m.span(), hidden))
    # ZWNJ and ZWJ are part of Persian, Urdu and Indic spelling and of emoji sequences: only a
    # zero-width character between two ASCII letters or digits (`ig\u200bnore`) is evidence.
    zero_width = [m.start() for m in _ZERO_WIDTH_IN_WORD.finditer(text)]
    if zero_width:
        signals.append(
            Signal("zero_width", (zero_width[0], zero_width[-1] + 1), f"{len(zero_width)} inside words")
        )
    overrides = [m.start() for m in _OVERRIDE.finditer(text)]
    if overrides:
        signals.append(
            Signal("bidi_override", (overrides[0], overrides[-1] + 1), f"{len(overrides)} overrides")
        )


def _scan_mixed_script(text: str, signals: list[Signal]) -> None:
    for match in _disguised_words(text):
        word = match.group(0)
        # `kırmızı` is Turkish: a Latin lookalike alone mixes no scripts.
        if any(ch in _CONFUSABLE_CHARS and ch not in _LATIN_LOOKALIKES for ch in word):
            # The detail names the word's length, not the word: findings reach the audit record, which
            # holds no client text unless the deployment asks for it (`include_text`).
            signals.append(Signal("mixed_script", match.span(), f"a {len(word)}-letter word"))


def _readable(decoded: str) -> bool:
    """Decoded bytes that read as text (not random binary that happened to decode)."""
    if len(decoded) < 4:
        return False
    printable = sum(ch.isprintable() or ch in "\n\t" for ch in decoded)
    letters = sum(ch.isalpha() for ch in decoded)
    return printable / len(decoded) > 0.95 and letters / len(decoded) > 0.5


def _decode_views(
    cleaned: str, origin: tuple[int, ...] | None, signals: list[Signal], views: list[View]
) -> None:
    def add(kind: str, start: int, end: int, decoded: str) -> None:
        span = (start, end) if origin is None else (origin[start], origin[end - 1] + 1)
        views.append(View(kind, span, decoded))
        signals.append(Signal(f"encoded:{kind}", span, f"{len(decoded)} characters that read as text"))

    for m in _BASE64.finditer(cleaned):
        token = m.group(0)
        try:
            raw = base64.urlsafe_b64decode(
                token.replace("+", "-").replace("/", "_") + "=" * (-len(token.rstrip("=")) % 4)
            )
            decoded = raw.decode("utf-8")
        except (binascii.Error, ValueError):
            continue
        if _readable(decoded) and (" " in decoded.strip() or decoded.lstrip().startswith(("<", "{"))):
            add("base64", m.start(), m.end(), decoded)
    for m in _HEX.finditer(cleaned):
        digits = re.sub(r"0x|\\x|[\s:,]", "", m.group(0))
        try:
            decoded = bytes.fromhex(digits).decode("utf-8")
        except ValueError:
            continue
        if _readable(decoded):
            add("hex", m.start(), m.end(), decoded)
    escapes = list(_URL_ESCAPE.finditer(cleaned))
    if len(escapes) >= 3:
        # Decode the whole stretch at once: attackers leave spaces and letters unescaped in between.
        start, end = escapes[0].start(), escapes[-1].end()
        decoded = urllib.parse.unquote(cleaned[start:end])
        if _readable(decoded):
            add("url", start, end, decoded)
    words = _WORD.findall(cleaned)
    common = sum(w.lower() in _COMMON for w in words)
    # Ordinary prose is full of common words; only a text nearly without them can be rot13.
    if len(words) >= 3 and common <= len(words) // 10:
        rot_common = sum(codecs.encode(w, "rot13").lower() in _COMMON for w in words)
        if rot_common >= 3 and rot_common >= 3 * max(1, common):
            add("rot13", 0, len(cleaned), codecs.encode(cleaned, "rot13"))
    for start, end, decoded in _leet_views(cleaned):
        add("leetspeak", start, end, decoded)
    for start, end in _spaced_stretches(cleaned):
        add("spaced", start, end, _SPACED.sub(lambda m: m.group(0)[::2], cleaned[start:end]))


def _spaced_stretches(cleaned: str) -> list[tuple[int, int]]:
    """Spans of spaced-out words in a row, two of them four letters or longer ("i.g.n.o.r.e a.l.l
    r.u.l.e.s"): one alone is a shout ("S-T-O-P"), short ones are acronyms ("i.e. N.A.S.A."), and
    words far apart are not one sentence written that way."""
    stretches: list[list[int]] = []  # start, end, words of four letters or more
    for m in _SPACED.finditer(cleaned):
        long_word = int(len(m.group(0)) >= 7)  # four letters and their three separators
        if stretches and m.start() - stretches[-1][1] <= _SPACED_GAP:
            stretches[-1][1:] = [m.end(), stretches[-1][2] + long_word]
        else:
            stretches.append([m.start(), m.end(), long_word])
    return [(start, end) for start, end, long_words in stretches if long_words >= 2]


def _leet_views(cleaned: str) -> list[tuple[int, int, str]]:
    """The sentences (or lines) with disguised words and their neighbours, spelt out; never the whole text.

    Two disguised words make a text leetspeak. A long paste with two of them gets views of those
    sentences only: the rest is in the cleaned text already, and a second copy of it would double
    the classifier's work and give a benign document a second chance to be flagged.
    """
    if not _LEET_HINT.search(cleaned):
        return []
    words = [m for m in _LEET_WORD.finditer(cleaned) if m.group(0).translate(_LEET).isalpha()]
    disguised = [m for m in words if _disguised(cleaned, m)]
    if len(disguised) < 2:
        return []
    bounds = [0] + [b for m in _SEGMENT_END.finditer(cleaned) for b in m.span()] + [len(cleaned)]
    stretches: list[list[int]] = []
    for m in disguised:
        # Even entries open a segment, odd ones open a separator, and a word is never in a separator.
        # The view reaches one segment either side: a disguised line's header (`-----BEGIN ...`)
        # or its template turn is what the rules need to see with it.
        i = bisect.bisect_right(bounds, m.start()) - 1
        start, end = bounds[max(i - 2, 0)], bounds[min(i + 3, len(bounds) - 1)]
        if stretches and start - stretches[-1][1] <= _LEET_GAP:
            stretches[-1][1] = max(stretches[-1][1], end)
        else:
            stretches.append([start, end])
    # Every candidate is spelt out, `_` and all: `<|1m_5t4r7|>` is a template token, not an identifier.
    return [(start, end, _LEET_WORD.sub(_spell_out, cleaned[start:end])) for start, end in stretches]


def _disguised(text: str, word: re.Match[str]) -> bool:
    token = word.group(0)
    if not _LEET_INSIDE.search(token) or _HEX_WORD.fullmatch(token):
        return False
    before = text[word.start() - 1] if word.start() else ""
    return before not in _ADDRESS_BEFORE and not _ADDRESS_AFTER.match(text, word.end())


def _spell_out(word: re.Match[str]) -> str:
    return word.group(0).translate(_LEET)
