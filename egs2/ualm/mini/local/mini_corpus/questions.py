"""Question/answer pairs about a clip, answered from its generation parameters.

Answers are short and drawn from fixed vocabularies (``ANSWER_WORDS``) so that an
evaluation can parse them exactly ("Three.", "The chirp.", "High.", "Left.").
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .captions import noun
from .lexicon import number_to_words
from .sound_events import EVENT_TYPES, ClipSpec, EventGroup

QUESTION_KINDS: tuple[str, ...] = (
    "count",
    "order",
    "first",
    "pitch",
    "position",
    "loudness",
    "exists",
    "total",
)

ANSWER_WORDS: dict[str, list[str]] = {
    "count": ["Zero.", "One.", "Two.", "Three.", "Four."],
    "total": [f"{number_to_words(n).capitalize()}." for n in range(1, 9)],
    "pitch": ["Low.", "Medium.", "High."],
    "position": ["Left.", "Center.", "Right."],
    "loudness": ["Quiet.", "Moderate.", "Loud."],
    "exists": ["Yes.", "No."],
    "order": [f"The {EVENT_TYPES[t]['noun']}." for t in EVENT_TYPES],
    "first": [f"A {EVENT_TYPES[t]['noun']}." for t in EVENT_TYPES],
}

_PITCH_ANSWER = {"low": "Low.", "mid": "Medium.", "high": "High."}


def _cap_number(n: int) -> str:
    return number_to_words(n).capitalize() + "."


def _subject(g: EventGroup) -> tuple[str, str]:
    """("is", "the chirp") or ("are", "the beeps")."""
    return ("is" if g.count == 1 else "are"), f"the {noun(g.type, g.count)}"


def _ask(kind: str, spec: ClipSpec, rng: np.random.Generator) -> tuple[str, str]:
    groups = spec.groups
    present = [g.type for g in groups]
    if kind == "count":
        if rng.random() < 0.75:
            g = groups[int(rng.integers(len(groups)))]
            etype, n = g.type, g.count
        else:
            absent = [t for t in EVENT_TYPES if t not in present]
            etype, n = absent[int(rng.integers(len(absent)))], 0
        return f"How many {noun(etype, 2)} are there?", _cap_number(n)
    if kind == "total":
        return "How many sound events are there in total?", _cap_number(
            len(spec.events)
        )
    if kind == "order":
        a, b = noun(groups[0].type), noun(groups[1].type)
        x, y = (a, b) if rng.random() < 0.5 else (b, a)
        return f"Which comes first, the {x} or the {y}?", f"The {a}."
    if kind == "first":
        return "What kind of sound comes first?", f"A {noun(groups[0].type)}."
    if kind == "exists":
        if rng.random() < 0.5:
            etype = present[int(rng.integers(len(present)))]
            answer = "Yes."
        else:
            absent = [t for t in EVENT_TYPES if t not in present]
            etype, answer = absent[int(rng.integers(len(absent)))], "No."
        return f"Is there a {noun(etype)} in the clip?", answer
    g = groups[int(rng.integers(len(groups)))]
    verb, subj = _subject(g)
    if kind == "pitch":
        answer = _PITCH_ANSWER[g.pitch_band]
        if g.pitch_band != "mid" and rng.random() < 0.5:
            pair = "high or low" if rng.random() < 0.5 else "low or high"
            return f"{verb.capitalize()} {subj} {pair} pitched?", answer
        return f"{verb.capitalize()} {subj} low, medium or high pitched?", answer
    if kind == "position":
        answer = g.position.capitalize() + "."
        if g.position != "center" and rng.random() < 0.5:
            return f"Where {verb} {subj}, left or right?", answer
        return f"Where {verb} {subj}: left, center or right?", answer
    if kind == "loudness":
        answer = g.loudness.capitalize() + "."
        if g.loudness != "moderate" and rng.random() < 0.5:
            return f"{verb.capitalize()} {subj} loud or quiet?", answer
        return f"How loud {verb} {subj}: quiet, moderate or loud?", answer
    raise ValueError(f"unknown question kind {kind!r}")


def make_questions(
    spec: ClipSpec, rng: np.random.Generator, num: int
) -> list[dict[str, Any]]:
    """``num`` questions of distinct kinds (order only for two-group clips)."""
    kinds = [k for k in QUESTION_KINDS if k != "order" or len(spec.groups) == 2]
    chosen = rng.choice(len(kinds), size=min(num, len(kinds)), replace=False)
    out = []
    for i in chosen:
        question, answer = _ask(kinds[int(i)], spec, rng)
        out.append({"kind": kinds[int(i)], "question": question, "answer": answer})
    return out
