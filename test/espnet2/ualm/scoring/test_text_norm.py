import pytest

from espnet2.ualm.scoring.text_norm import (
    as_number,
    find_numbers,
    normalize_text,
    number_to_words,
    parse_number,
)


@pytest.mark.parametrize(
    "text, want",
    [
        ("Three.", "three"),
        ("There are 3 beeps!", "there are three beeps"),
        ("Rose has 9 desks.", "rose has nine desks"),
        ("A medium-pitched chord", "a medium pitched chord"),
        ("Don't  STOP, 1,000 times", "don't stop one thousand times"),
        ("It costs 3.5 units.", "it costs 3.5 units"),
        ("", ""),
    ],
)
def test_normalize_text(text, want):
    assert normalize_text(text) == want


def test_number_words_match_the_corpus():
    assert number_to_words(0) == "zero"
    assert number_to_words(21) == "twenty one"
    assert number_to_words(105) == "one hundred and five"
    assert number_to_words(2005) == "two thousand and five"


@pytest.mark.parametrize(
    "text, numbers",
    [
        ("one hundred and five apples, then 7", [105, 7]),
        ("twenty one", [21]),
        ("three four", [3, 4]),
        ("The answer is -4", [-4]),
        ("no numbers here", []),
        ("8 times 9 is seventy two", [8, 9, 72]),
    ],
)
def test_find_numbers(text, numbers):
    assert find_numbers(text) == numbers
    assert parse_number(text) == (numbers[-1] if numbers else None)


def test_as_number_only_for_a_lone_number():
    assert as_number("14") == 14
    assert as_number("Fourteen.") == 14
    assert as_number("two hundred thirty four") == 234
    assert as_number("elppa") is None
    assert as_number("3 apples") is None
    assert as_number("three four") is None
