"""Small shared word lists: number words, nouns, adjectives.

Kept in one place so that speech transcripts, text tasks and QA answers spell
numbers the same way (lower case words, no digits).
"""

from __future__ import annotations

# The corpus spells numbers exactly as the scoring normaliser reads them.
from espnet2.ualm.scoring.text_norm import number_to_words  # noqa: E402,F401

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty"]
_TENS += ["ninety"]

DIGIT_WORDS: tuple[str, ...] = tuple(_ONES[:10])

# Short concrete words that eSpeak pronounces unambiguously.
NOUNS: tuple[str, ...] = (
    "apple", "bird", "boat", "book", "bottle", "box", "bridge", "car", "cat",
    "chair", "cloud", "coat", "cup", "desk", "dog", "door", "drum", "fish",
    "flower", "garden", "glass", "hat", "horse", "house", "key", "lamp", "letter",
    "map", "moon", "mountain", "orange", "paper", "pencil", "piano", "plate",
    "river", "road", "rock", "shoe", "star", "stone", "table", "teacher", "tree",
    "train", "window", "wolf", "yard",
)  # fmt: skip
ADJECTIVES: tuple[str, ...] = (
    "big", "small", "red", "blue", "green", "old", "new", "quiet", "happy",
    "bright", "dark", "warm", "cold", "heavy", "light", "round", "tall", "short",
    "yellow", "soft",
)  # fmt: skip
VERBS_PAST: tuple[str, ...] = (
    "found", "moved", "painted", "opened", "carried", "washed", "watched",
    "dropped", "cleaned", "followed", "pushed", "lifted", "counted", "liked",
)  # fmt: skip
PLACES: tuple[str, ...] = (
    "near the river", "in the garden", "on the table", "by the door",
    "under the tree", "in the morning", "after dinner", "at the station",
    "on the hill", "in the kitchen",
)  # fmt: skip
NAMES: tuple[str, ...] = (
    "anna", "ben", "clara", "david", "emma", "frank", "grace", "henry", "lucy",
    "mark", "nina", "oscar", "paul", "rose", "sam", "tom",
)  # fmt: skip
