"""Plain captions (several phrasings) and rich captions derived from a ClipSpec.

Plain captions name count, pitch band and type of every group in time order.
Rich captions follow UALM-Reason: ``Keywords`` (the sound events), ``Layout``
(their order and timing) and ``Description`` (attributes of each event).
Templates in ``HELD_OUT_TEMPLATES`` are only used for the test split.
"""

from __future__ import annotations

import re

from espnet2.ualm.text.rich_caption import RichCaption, RichEvent, render

from .lexicon import number_to_words
from .sound_events import EVENT_TYPES, ClipSpec, EventGroup

# id -> (one-group form, two-group form, phrase style). Every form has fixed words
# of its own so that a caption's template can be recognised from its text.
CAPTION_TEMPLATES: dict[str, tuple[str, str, str]] = {
    "t0": ("The sound of {a}.", "The sound of {a}, then {b}.", "pitched"),
    "t1": ("A recording of {a}.", "A recording of {a} followed by {b}.", "short"),
    "t2": ("{a} can be heard.", "{a} can be heard, and after that {b}.", "post"),
    "t3": ("In this clip: {a}.", "In this clip: {a}, then {b}.", "short"),
    "t4": ("Only {a}.", "First {a}, then {b}.", "pitched"),
    # held out for test
    "h0": ("We hear {a}.", "We hear {a} before {b}.", "pitched"),
    "h1": ("Nothing but {a}.", "{a} first, and {b} after that.", "short"),
}
HELD_OUT_TEMPLATES: tuple[str, ...] = ("h0", "h1")
TRAIN_TEMPLATES: tuple[str, ...] = tuple(
    t for t in CAPTION_TEMPLATES if t not in HELD_OUT_TEMPLATES
)

# Pitch band words per phrase style.
PITCH_WORDS: dict[str, dict[str, str]] = {
    "low": {"short": "low", "pitched": "low-pitched", "post": "at a low pitch"},
    "mid": {
        "short": "mid-range",
        "pitched": "medium-pitched",
        "post": "at a medium pitch",
    },
    "high": {"short": "high", "pitched": "high-pitched", "post": "at a high pitch"},
}


def noun(etype: str, count: int = 1) -> str:
    """Singular or plural noun of an event type ("noise burst", "clicks")."""
    return EVENT_TYPES[etype]["noun" if count == 1 else "plural"]


def count_word(count: int) -> str:
    return "a" if count == 1 else number_to_words(count)


def group_phrase(g: EventGroup, style: str) -> str:
    """E.g. "three high beeps", "a low-pitched tone", "two chirps at a high pitch"."""
    pitch = PITCH_WORDS[g.pitch_band][style]
    n = noun(g.type, g.count)
    if style == "post":
        return f"{count_word(g.count)} {n} {pitch}"
    return f"{count_word(g.count)} {pitch} {n}"


def _capitalise(s: str) -> str:
    return s[:1].upper() + s[1:]


def plain_caption(spec: ClipSpec, template: str) -> str:
    """The clip's caption in the given template's phrasing."""
    one, two, style = CAPTION_TEMPLATES[template]
    phrases = [group_phrase(g, style) for g in spec.groups]
    if len(phrases) == 1:
        return _capitalise(one.format(a=phrases[0]))
    return _capitalise(two.format(a=phrases[0], b=phrases[1]))


def template_regex(template: str) -> list[re.Pattern[str]]:
    """Regexes matching any caption written with ``template`` (for checks)."""
    pats = []
    for form in CAPTION_TEMPLATES[template][:2]:
        parts = re.split(r"\{[ab]\}", form)
        body = "(.+)".join(re.escape(p) for p in parts)
        pats.append(re.compile("^" + body + "$", re.IGNORECASE))
    return pats


def _freq_note(g: EventGroup) -> str:
    """Parenthesised frequency detail of a group."""
    if g.type == "chord":
        q = g.extra["chord_quality"]
        return f"a {q} triad on about {g.freq_hz:.0f} Hz"
    if g.type == "chirp":
        d, a, b = g.extra["direction"], g.extra["start_hz"], g.extra["end_hz"]
        return f"{d} from {a:.0f} to {b:.0f} Hz"
    if g.type == "noise_burst":
        return f"one octave around {g.freq_hz:.0f} Hz"
    if g.type == "click":
        return f"resonating at about {g.freq_hz:.0f} Hz"
    return f"about {g.freq_hz:.0f} Hz"


def rich_event(spec: ClipSpec, gi: int) -> RichEvent:
    """Group ``gi`` of the clip as a rich-caption event (its spans, pitch
    band with the frequency detail, loudness, position and event length)."""
    g = spec.groups[gi]
    return RichEvent(
        noun(g.type),
        g.count,
        tuple((e.onset_s, e.offset_s) for e in spec.events if e.group == gi),
        pitch=g.pitch_band,
        pitch_detail=_freq_note(g),
        loudness=g.loudness,
        position=g.position,
        duration_s=g.duration_s,
    )


def rich_caption(spec: ClipSpec) -> str:
    """One-line "Keywords: ... Layout: ... Description: ..." caption, in the
    library's format (``espnet2.ualm.text.rich_caption``)."""
    events = [rich_event(spec, gi) for gi in range(len(spec.groups))]
    return render(RichCaption.of_events(events, spec.duration_s))
