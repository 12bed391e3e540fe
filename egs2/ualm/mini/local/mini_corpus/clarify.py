"""Vague prompts and clarifying questions of a clip, from its parameters.

A vague prompt names the clip's event types only ("Some beeps.", "A clip
with chirps and tones."): count, pitch, loudness, position and order are
dropped. The clarifying questions ask for what was dropped, one attribute
of one group each, and the clip's parameters answer them in the QA answer
vocabulary (``questions.ANSWER_WORDS``: "Three.", "High.", "Left.", "The
beep."). ``espnet2.ualm.text.clarify`` lays them out as a dialogue and
answers them as the simulated user.
"""

from __future__ import annotations

import numpy as np

from espnet2.ualm.text.clarify import Clarification, ClipClarifications

from .captions import noun
from .questions import _PITCH_ANSWER, _cap_number
from .sound_events import ClipSpec, EventGroup

# id -> (one-group form, two-group form); {a}, {b}: plural event names
VAGUE_TEMPLATES: dict[str, tuple[str, str]] = {
    "v0": ("Some {a}.", "Some {a} and {b}."),
    "v1": ("A clip with {a}.", "A clip with {a} and {b}."),
    "v2": ("I want {a}.", "I want {a} and {b}."),
    # held out for test
    "vh0": ("Just {a}.", "Just {a} plus {b}."),
}
VAGUE_HELD_OUT: tuple[str, ...] = ("vh0",)
VAGUE_TRAIN: tuple[str, ...] = tuple(
    t for t in VAGUE_TEMPLATES if t not in VAGUE_HELD_OUT
)
# Most questions a training dialogue asks (at least one).
MAX_ASKED = 3


def vague_prompt(spec: ClipSpec, rng: np.random.Generator, held_out: bool) -> str:
    """The clip's event types in a vague template, in a random order."""
    templates = VAGUE_HELD_OUT if held_out else VAGUE_TRAIN
    one, two = VAGUE_TEMPLATES[templates[int(rng.integers(len(templates)))]]
    names = [noun(g.type, 2) for g in spec.groups]
    if len(names) == 1:
        return one.format(a=names[0])
    if rng.random() < 0.5:
        names.reverse()
    return two.format(a=names[0], b=names[1])


def _group_questions(g: EventGroup) -> list[Clarification]:
    name = noun(g.type, 2)
    return [
        Clarification("count", f"How many {name} do you want?", _cap_number(g.count)),
        Clarification(
            "pitch",
            f"Should the {name} be low, medium or high pitched?",
            _PITCH_ANSWER[g.pitch_band],
        ),
        Clarification(
            "loudness",
            f"Should the {name} be quiet, moderate or loud?",
            g.loudness.capitalize() + ".",
        ),
        Clarification(
            "position",
            f"Where should the {name} be: left, center or right?",
            g.position.capitalize() + ".",
        ),
    ]


def clarifications(
    uid: str, spec: ClipSpec, rng: np.random.Generator, held_out: bool
) -> ClipClarifications:
    """The vague prompt, every question the parameters answer (in the order
    a dialogue asks them: random) and how many the training dialogue asks."""
    prompt = vague_prompt(spec, rng, held_out)
    questions = [q for g in spec.groups for q in _group_questions(g)]
    if len(spec.groups) == 2:
        a, b = (noun(g.type) for g in spec.groups)
        x, y = (a, b) if rng.random() < 0.5 else (b, a)
        questions.append(
            Clarification("order", f"Which should come first, the {x} or the {y}?",
                          f"The {a}.")
        )  # fmt: skip
    order = rng.permutation(len(questions))
    asked = 1 + int(rng.integers(min(MAX_ASKED, len(questions))))
    return ClipClarifications(
        uid, prompt, tuple(questions[int(i)] for i in order), asked
    )
