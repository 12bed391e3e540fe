"""Critiques (UALM-Reason self-reflection): a plan against what was made.

The plan and the result are rich captions (``rich_caption.py``); the
critique names each mismatch, one ``; ``-separated item each::

    Critique: count (beep): planned three, heard two; pitch (noise burst):
    planned high-pitched, heard low-pitched; order: planned beep then noise
    burst, heard noise burst then beep.

or says there is none: ``Critique: no mismatch.``. An item is ``<kind>[
(<event name>)]: planned <value>, heard <value>`` with ``<kind>`` one of
``KINDS``: ``count`` (an event group the plan asks for and the result lacks
is planned ``<n>`` and heard ``none``; one the plan does not ask for is
planned ``none``), ``order`` (the sequence of event names), ``pitch``,
``loudness`` and ``position`` (the caption's words for them). An attribute
is compared only where both captions give it. ``parse_critique`` reads the
text back, so inference can stop when a critique finds no mismatch.
"""

import dataclasses
import re
from typing import List, Optional, Sequence, Tuple

from espnet2.ualm.scoring.text_norm import number_to_words
from espnet2.ualm.text.rich_caption import ATTRIBUTES, RichCaption, RichEvent

KINDS: Tuple[str, ...] = ("count", "order", "pitch", "loudness", "position")
PREFIX = "Critique: "
NO_MISMATCH = "no mismatch"
NONE = "none"  # the count of an event group one side lacks
_ITEM = re.compile(
    rf"^({'|'.join(KINDS)})(?: \(([^()]+)\))?: planned (.+?), heard (.+)$", re.S
)


class CritiqueError(ValueError):
    """A critique text is malformed; the message says which item and why."""


@dataclasses.dataclass(frozen=True)
class Mismatch:
    """One difference between plan and result: its ``kind`` (``KINDS``),
    the event name it concerns (``None`` for ``order``) and both values as
    the captions write them."""

    kind: str
    event: Optional[str]
    planned: str
    heard: str

    def __str__(self) -> str:
        event = f" ({self.event})" if self.event is not None else ""
        return f"{self.kind}{event}: planned {self.planned}, heard {self.heard}"


@dataclasses.dataclass(frozen=True)
class Critique:
    """The mismatches a critique names (empty: the result matches the plan)."""

    mismatches: Tuple[Mismatch, ...] = ()

    @property
    def ok(self) -> bool:
        """True when the critique finds no mismatch."""
        return not self.mismatches


def _count(n: int) -> str:
    return number_to_words(n) if n else NONE


def _align(
    plan: Sequence[RichEvent], heard: Sequence[RichEvent]
) -> Tuple[List[Tuple[int, int]], List[int], List[int]]:
    """Pairs ``(plan index, heard index)`` of the same name, each plan event
    taking the first free heard one; the unpaired indices of both sides."""
    free = list(range(len(heard)))
    pairs = []
    for i, e in enumerate(plan):
        j = next((j for j in free if heard[j].name == e.name), None)
        if j is not None:
            free.remove(j)
            pairs.append((i, j))
    paired = {i for i, _ in pairs}
    return pairs, [i for i in range(len(plan)) if i not in paired], free


def compare(plan: RichCaption, heard: RichCaption) -> Critique:
    """The mismatches between a plan and a caption of what was made."""
    out: List[Mismatch] = []
    pairs, missing, extra = _align(plan.events, heard.events)
    for i, j in pairs:
        p, h = plan.events[i], heard.events[j]
        if p.count != h.count:
            out.append(Mismatch("count", p.name, _count(p.count), _count(h.count)))
    for i in missing:
        p = plan.events[i]
        out.append(Mismatch("count", p.name, _count(p.count), NONE))
    for j in extra:
        h = heard.events[j]
        out.append(Mismatch("count", h.name, NONE, _count(h.count)))
    if [j for _, j in pairs] != sorted(j for _, j in pairs):
        by_heard = sorted(pairs, key=lambda ij: ij[1])
        out.append(
            Mismatch(
                "order",
                None,
                " then ".join(plan.events[i].name for i, _ in pairs),
                " then ".join(plan.events[i].name for i, _ in by_heard),
            )
        )
    for i, j in pairs:
        p, h = plan.events[i], heard.events[j]
        for field, words in ATTRIBUTES.items():
            a, b = getattr(p, field), getattr(h, field)
            if a is not None and b is not None and a != b:
                out.append(Mismatch(field, p.name, words[a], words[b]))
    return Critique(tuple(out))


def render_critique(critique: Critique) -> str:
    """The critique's text (module docstring)."""
    body = "; ".join(str(m) for m in critique.mismatches) or NO_MISMATCH
    return f"{PREFIX}{body}."


def critique_text(plan: RichCaption, heard: RichCaption) -> str:
    """``render_critique(compare(plan, heard))``: what self-reflection data
    holds after the caption of the first attempt."""
    return render_critique(compare(plan, heard))


def parse_critique(text: str) -> Critique:
    """The ``Critique`` of ``text``; ``CritiqueError`` naming the item at
    fault when it is malformed."""
    if not isinstance(text, str):
        raise CritiqueError(f"critique: not a string: {type(text).__name__}")
    text = text.strip()
    if not (text.startswith(PREFIX) and text.endswith(".")):
        raise CritiqueError(f"critique: expected '{PREFIX}... .', got {text[:60]!r}")
    body = text[len(PREFIX) : -1]
    if body == NO_MISMATCH:
        return Critique()
    out = []
    for k, item in enumerate(body.split("; ")):
        m = _ITEM.match(item)
        if m is None:
            raise CritiqueError(
                f"critique: item {k + 1} {item!r} is not '<kind> (<event>): planned "
                f"<value>, heard <value>' with kind one of {KINDS}"
            )
        kind, event, planned, heard = m.groups()
        if (kind == "order") != (event is None):
            raise CritiqueError(
                f"critique: item {k + 1}: {kind} "
                + ("takes no event" if kind == "order" else "names its event")
            )
        if planned == heard:
            raise CritiqueError(
                f"critique: item {k + 1}: planned and heard are both {planned!r}"
            )
        out.append(Mismatch(kind, event, planned, heard))
    return Critique(tuple(out))


def finds_no_mismatch(text: Optional[str]) -> bool:
    """Does ``text`` parse as a critique without mismatches? (A malformed
    critique does not: reflection goes on, within its bound of rounds.)"""
    if text is None:
        return False
    try:
        return parse_critique(text).ok
    except CritiqueError:
        return False
