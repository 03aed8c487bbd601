"""Stop sequences held back until decided: properties over any text, any stops, any chunking."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from app.domain.stops import StopHoldback, cut_at_stop

# A small alphabet, so that stops occur, overlap and half-occur often.
TEXT = st.text(alphabet="ab \n", max_size=40)
STOPS = st.lists(st.text(alphabet="ab \n", min_size=1, max_size=4), min_size=1, max_size=3)


def first_stop_answer(text: str, stops: list[str]) -> str:
    """The reference: generate one character at a time, stop as soon as the text ends with a stop, drop it."""
    for end in range(1, len(text) + 1):
        ending = [s for s in stops if text[:end].endswith(s)]
        if ending:
            return text[: end - max(len(s) for s in ending)]
    return text


def split(text: str, cuts: list[int]) -> list[str]:
    """`text` in pieces at the given offsets (any order, any repeats)."""
    points = sorted({min(c, len(text)) for c in cuts})
    bounds = [0, *points, len(text)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def run(pieces: list[str], stops: list[str]) -> tuple[list[str], bool]:
    """What a provider sends: each piece's released text until a stop, then the held tail if none."""
    holdback = StopHoldback(stops)
    sent = []
    for piece in pieces:
        sent.append(holdback.feed(piece))
        if holdback.stopped:
            break
    sent.append(holdback.flush())
    return sent, holdback.stopped


@given(TEXT, STOPS, st.lists(st.integers(min_value=0, max_value=40), max_size=12))
def test_the_answer_never_contains_a_stop_and_is_the_text_before_the_first_stop(
        text: str, stops: list[str], cuts: list[int]) -> None:
    sent, stopped = run(split(text, cuts), stops)
    answer = "".join(sent)

    assert not any(stop in answer for stop in stops)
    assert answer == first_stop_answer(text, stops)
    assert stopped == any(stop in text for stop in stops)


@given(TEXT, STOPS, st.lists(st.integers(min_value=0, max_value=40), max_size=12))
def test_what_is_sent_so_far_is_always_a_stop_free_prefix_of_the_answer(
        text: str, stops: list[str], cuts: list[int]) -> None:
    sent, _ = run(split(text, cuts), stops)
    answer = first_stop_answer(text, stops)

    so_far = ""
    for piece in sent:
        so_far += piece
        assert answer.startswith(so_far)
        assert not any(stop in so_far for stop in stops)


@given(TEXT, STOPS)
def test_a_stop_free_text_goes_out_whole(text: str, stops: list[str]) -> None:
    clean = [s for s in stops if s not in text]

    sent, stopped = run(list(text), clean or ["\x00"])

    assert "".join(sent) == text and not stopped


@st.composite
def nested_stops(draw: st.DrawFn) -> list[str]:
    """A stop and a shorter stop inside it: the shorter one completes first, though it starts later."""
    outer = draw(st.text(alphabet="ab \n", min_size=2, max_size=5))
    start = draw(st.integers(min_value=0, max_value=len(outer) - 1))
    end = draw(st.integers(min_value=start + 1, max_value=len(outer)))
    return [outer, outer[start:end]]


@given(TEXT, nested_stops(), st.lists(st.integers(min_value=0, max_value=40), max_size=12))
def test_of_two_stops_the_first_to_complete_ends_the_answer(
        text: str, stops: list[str], cuts: list[int]) -> None:
    text = text[: len(text) // 2] + stops[0] + text[len(text) // 2:]

    sent, stopped = run(split(text, cuts), stops)

    assert stopped and "".join(sent) == first_stop_answer(text, stops)


def test_multi_word_stops_split_across_tokens() -> None:
    sent, stopped = run(["In", " the", " depths", " of", " the", " sea"], [" of the"])

    assert "".join(sent) == "In the depths" and stopped
    assert " of" not in "".join(sent)


def test_held_newlines_are_released_when_the_stop_does_not_complete() -> None:
    holdback = StopHoldback(["\n\n\n"])

    assert holdback.feed("one\n\n") == "one"
    assert holdback.feed("two") == "\n\ntwo"
    assert holdback.feed("\n") == ""
    assert holdback.flush() == "\n"


def test_cut_at_stop_cuts_at_the_earliest_stop_sequence() -> None:
    assert cut_at_stop("one. two! three", ("!", ".")) == ("one", True)
    assert cut_at_stop("no stop here", ("###",)) == ("no stop here", False)


def test_cut_at_stop_takes_the_stop_that_completes_first() -> None:
    assert cut_at_stop("abcd", ("abcd", "c")) == ("ab", True)
    assert cut_at_stop("abXYZ", ("Z", "XYZ")) == ("ab", True)
