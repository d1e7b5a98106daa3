"""StopBuffer: streamed text is cut before a stop string, and no part of one is ever released."""

from __future__ import annotations

import itertools
import random

import pytest

from cosa_guard.backends._stops import StopBuffer, cut_at_stop

CASES = [
    ("The knight rode out at dawn.", ("knight",)),
    ("The knight rode out at dawn.", ("\x00never", "rode", "out")),
    ("no stop here, only a near miss: kni", ("knight",)),
    ("abcd", ("abcd", "c")),  # "c" is complete first: generation stops there
    ("xabcx", ("bc", "abc")),  # both end together: the longer one started first
    ("aaab", ("aab",)),  # a stop string that overlaps a false start of itself
    ("\n\nQuestion: and more", ("\n\nQuestion:",)),
    ("nothing to cut", ()),
    ("nothing to cut", ("",)),
]


def streamed(text: str, stops: tuple[str, ...], cuts: list[int]) -> tuple[list[str], bool]:
    buffer = StopBuffer(stops)
    bounds = [0, *sorted(cuts), len(text)]
    released = [buffer.feed(text[a:b]) for a, b in itertools.pairwise(bounds)]
    released.append(buffer.flush())
    return released, buffer.stopped


@pytest.mark.parametrize(("text", "stops"), CASES)
def test_any_split_of_a_stream_joins_to_the_whole_answer_cut(text: str, stops: tuple[str, ...]) -> None:
    expected = cut_at_stop(text, stops)
    rng = random.Random(text)
    splits = [[i] for i in range(len(text) + 1)]
    splits += [rng.sample(range(len(text) + 1), k=min(len(text), 4)) for _ in range(50)]
    splits.append(list(range(len(text))))  # one character at a time
    for cuts in splits:
        released, stopped = streamed(text, stops, cuts)
        assert ("".join(released), stopped) == expected, cuts


def test_cut_at_stop_cuts_before_the_stop_string() -> None:
    assert cut_at_stop("Paris.\n\nQ: next", ("\n\n",)) == ("Paris.", True)
    assert cut_at_stop("abcd", ("abcd", "c")) == ("ab", True)
    assert cut_at_stop("xabcx", ("bc", "abc")) == ("x", True)
    assert cut_at_stop("Paris.", ("\n\n", "")) == ("Paris.", False)


def test_only_what_could_start_a_stop_string_is_held_back() -> None:
    buffer = StopBuffer(["knight", "END"])
    assert buffer.feed("The kn") == "The "  # "kn" may become "knight"
    assert buffer.feed("ow") == "know"  # it did not
    assert buffer.feed("s E") == "s "
    assert buffer.feed("N") == ""  # "EN" may still become "END"
    assert buffer.feed("D and more") == ""
    assert buffer.stopped
    assert buffer.feed("later text") == "" and buffer.flush() == ""


def test_at_the_end_the_held_back_text_is_released() -> None:
    buffer = StopBuffer(["knight"])
    assert buffer.feed("a sword and a kni") == "a sword and a "
    assert buffer.flush() == "kni" and not buffer.stopped


def test_without_stop_strings_pieces_pass_through() -> None:
    buffer = StopBuffer([])
    assert buffer.feed("any ") == "any " and buffer.feed("text") == "text" and buffer.flush() == ""
