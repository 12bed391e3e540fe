"""What a prompt asked for: the expected event groups, in time order.

Three sources, best first: the test item's metadata (``meta.jsonl``: every
attribute), its rich caption (type, count, pitch band, loudness, position) and
its plain caption (type, count, pitch band). Captions are parsed with the
corpus's own word lists, so every caption template, held-out ones included,
is understood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mini_corpus.captions import PITCH_WORDS
from mini_corpus.lexicon import number_to_words
from mini_corpus.sound_events import EVENT_TYPES, LOUDNESS_LEVELS


@dataclass(frozen=True)
class ExpectedGroup:
    """One group the prompt asked for; ``None`` where the prompt is silent."""

    type: str
    count: int
    pitch_band: str
    loudness: str | None = None
    position: str | None = None


def from_meta(meta: dict[str, Any]) -> list[ExpectedGroup]:
    """Every attribute of the groups of a ``meta.jsonl`` record."""
    return [
        ExpectedGroup(
            g["type"], int(g["count"]), g["pitch_band"], g["loudness"], g["position"]
        )
        for g in meta["groups"]
    ]


# Word lists, longest phrases first so that "noise bursts" wins over "bursts".
_NOUNS: dict[str, str] = {}
for _t, _v in EVENT_TYPES.items():
    _NOUNS[_v["noun"]] = _t
    _NOUNS[_v["plural"]] = _t
_COUNTS = {"a": 1, "an": 1, **{number_to_words(n): n for n in range(1, 10)}}
_PITCH: dict[str, str] = {
    word: band for band, styles in PITCH_WORDS.items() for word in styles.values()
}
_POSITION_WORDS = {"on the left": "left", "in the center": "center"}
_POSITION_WORDS["on the right"] = "right"


def _alternation(words: list[str]) -> str:
    return "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True))


_GROUP_RE = re.compile(
    rf"\b(?P<count>{_alternation(list(_COUNTS))})\s+"
    rf"(?:(?P<pre>{_alternation(list(_PITCH))})\s+)?"
    rf"(?P<noun>{_alternation(list(_NOUNS))})\b"
    rf"(?:\s+(?P<post>{_alternation(list(_PITCH))}))?",
    re.IGNORECASE,
)


def from_caption(text: str) -> list[ExpectedGroup]:
    """Groups of a plain caption ("We hear two medium-pitched chords before a
    high-pitched beep."): count, pitch band and type of each, in order."""
    groups = []
    for m in _GROUP_RE.finditer(text):
        pitch = (m.group("pre") or m.group("post") or "").lower()
        if not pitch:
            continue  # not a group phrase (e.g. "a" in other words)
        groups.append(
            ExpectedGroup(
                _NOUNS[m.group("noun").lower()],
                _COUNTS[m.group("count").lower()],
                _PITCH[pitch],
            )
        )
    return groups


_LAYOUT_RE = re.compile(
    rf"\b(?P<count>{_alternation(list(_COUNTS))})\s+"
    rf"(?P<noun>{_alternation(list(_NOUNS))})\s+at\b",
    re.IGNORECASE,
)


def from_rich_caption(text: str) -> list[ExpectedGroup]:
    """Groups of a rich caption: types and counts from ``Layout``, pitch,
    loudness and position from ``Description`` (one ``;``-separated part each)."""
    layout = re.search(r"Layout:(.*?)Description:", text, re.S)
    desc = re.search(r"Description:(.*)$", text, re.S)
    if layout is None or desc is None:
        return from_caption(text)
    heads = [
        (_NOUNS[m.group("noun").lower()], _COUNTS[m.group("count").lower()])
        for m in _LAYOUT_RE.finditer(layout.group(1))
    ]
    parts = [p.strip() for p in desc.group(1).split(";")]
    groups = []
    for (etype, count), part in zip(heads, parts, strict=False):
        part_l = part.lower()
        band = next(
            (b for w, b in _PITCH.items() if w.endswith("-pitched") and w in part_l),
            "",
        )
        # Loudness words sit right after the closing parenthesis of the pitch.
        tail = part_l.split(")", 1)[-1]
        loud = next((w for w in LOUDNESS_LEVELS if re.search(rf"\b{w}\b", tail)), None)
        pos = next((p for w, p in _POSITION_WORDS.items() if w in part_l), None)
        groups.append(ExpectedGroup(etype, count, band, loud, pos))
    return groups


def from_text(text: str) -> list[ExpectedGroup]:
    """A rich caption if it looks like one, else a plain caption."""
    if text.lstrip().startswith("Keywords:"):
        return from_rich_caption(text)
    return from_caption(text)
