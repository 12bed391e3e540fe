"""Rich captions (UALM-Reason): the sound events, their layout and attributes.

One line of three sections, each ending with a full stop::

    Keywords: beep, noise burst. Layout: three beeps at 0.20-0.35 s, 0.55-0.70 s
    and 0.90-1.05 s, then one noise burst at 1.40-1.80 s, in a 2.10 s clip.
    Description: the beeps are high-pitched (about 2000 Hz), loud and on the
    right, each 0.15 s long; the noise burst is low-pitched (one octave around
    300 Hz), quiet and on the left, 0.40 s long.

* ``Keywords``: the event names (singular, no ``,.;()``), ``, ``-separated.
* ``Layout``: one part per event group in time order, ``, then ``-separated:
  ``<count in words> <name, plural when count > 1>``, optionally ``at`` one
  ``<onset>-<offset> s`` span per event (two decimals, joined as "a, b and
  c"); optionally ``, in a <seconds> s clip`` at the end.
* ``Description``: one part per Layout group, in the same order,
  ``; ``-separated: ``the <name> is|are <attributes>[, [each ]<seconds> s
  long]``, the attributes being, in this order and each optional, a pitch
  (``PITCHES``, optionally followed by ``(<pitch detail>)``), a loudness
  (``LOUDNESS``) and a position (``POSITIONS``), joined as "a, b and c".

The vocabularies of pitch, loudness and position are closed so that a plan
and a result can be compared attribute by attribute (``critique.py``);
``render(parse(x)) == x`` for every well-formed caption. The mini corpus
writes its rich captions through ``render`` (doc/rich_captions.md).
"""

import dataclasses
import re
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from espnet2.ualm.scoring.text_norm import number_to_words

# attribute value -> the words a caption writes for it
PITCHES: Mapping[str, str] = {
    "low": "low-pitched",
    "mid": "medium-pitched",
    "high": "high-pitched",
}
LOUDNESS: Mapping[str, str] = {"quiet": "quiet", "moderate": "moderate", "loud": "loud"}
POSITIONS: Mapping[str, str] = {
    "left": "on the left",
    "center": "in the center",
    "right": "on the right",
}
ATTRIBUTES: Mapping[str, Mapping[str, str]] = {
    "pitch": PITCHES,
    "loudness": LOUDNESS,
    "position": POSITIONS,
}
MAX_COUNT = 99  # counts are written in words (number_to_words)
_COUNT_VALUES: Dict[str, int] = {number_to_words(n): n for n in range(1, MAX_COUNT + 1)}
_NAME_FORBIDDEN = re.compile(r"[,.;()]")
_SECTIONS = re.compile(r"^Keywords: (.*?)\. Layout: (.*?)\. Description: (.*)\.$", re.S)
_SPAN = re.compile(r"^(\d+\.\d\d)-(\d+\.\d\d) s$")
_CLIP = re.compile(r"^(.*), in a (\d+\.\d\d) s clip$", re.S)
_LENGTH = re.compile(r"^(?:(.*), )?(each )?(\d+\.\d\d) s long$", re.S)
_DETAIL = re.compile(r"^(.*?) \(([^()]+)\)$", re.S)


class RichCaptionError(ValueError):
    """A rich caption is malformed or inconsistent; the message says where
    (section, event, field) and what is wrong."""


def plural(name: str) -> str:
    """The plural an event name takes in a caption ("beep" -> "beeps",
    "siren" -> "sirens", "glass" -> "glasses", "body" -> "bodies")."""
    if re.search(r"(s|x|z|ch|sh)$", name):
        return name + "es"
    if re.search(r"[^aeiou]y$", name):
        return name[:-1] + "ies"
    return name + "s"


def noun(name: str, count: int) -> str:
    """The form of ``name`` for ``count`` events."""
    return name if count == 1 else plural(name)


def join_words(items: Sequence[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + " and " + items[-1]


@dataclasses.dataclass(frozen=True)
class RichEvent:
    """One group of ``count`` identical events (a Layout part and its
    Description part). ``spans``: ``(onset, offset)`` seconds of each event,
    or empty when the timing is unknown; the attributes are keys of
    ``PITCHES`` / ``LOUDNESS`` / ``POSITIONS`` or ``None`` (not described);
    ``duration_s``: the length of each event."""

    name: str
    count: int
    spans: Tuple[Tuple[float, float], ...] = ()
    pitch: Optional[str] = None
    pitch_detail: Optional[str] = None
    loudness: Optional[str] = None
    position: Optional[str] = None
    duration_s: Optional[float] = None

    def __post_init__(self) -> None:
        spans = tuple((float(a), float(b)) for a, b in self.spans)
        object.__setattr__(self, "spans", spans)

    @property
    def noun(self) -> str:
        return noun(self.name, self.count)


@dataclasses.dataclass(frozen=True)
class RichCaption:
    """A parsed rich caption: ``keywords``, the event groups in time order
    and the clip's length (``None`` when not given)."""

    keywords: Tuple[str, ...]
    events: Tuple[RichEvent, ...]
    clip_s: Optional[float] = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "keywords", tuple(self.keywords))
        object.__setattr__(self, "events", tuple(self.events))

    @classmethod
    def of_events(
        cls, events: Sequence[RichEvent], clip_s: Optional[float] = None
    ) -> "RichCaption":
        """The caption of ``events`` with its keywords: their names in order
        of first appearance."""
        keywords: List[str] = []
        for e in events:
            if e.name not in keywords:
                keywords.append(e.name)
        return cls(tuple(keywords), tuple(events), clip_s)


# ----- rendering -------------------------------------------------------------


def _seconds(x: float) -> str:
    return f"{x:.2f}"


def _layout_part(e: RichEvent) -> str:
    part = f"{number_to_words(e.count)} {e.noun}"
    if e.spans:
        spans = [f"{_seconds(a)}-{_seconds(b)} s" for a, b in e.spans]
        part += " at " + join_words(spans)
    return part


def _description_part(e: RichEvent) -> str:
    attrs = []
    if e.pitch is not None:
        pitch = PITCHES[e.pitch]
        attrs.append(f"{pitch} ({e.pitch_detail})" if e.pitch_detail else pitch)
    if e.loudness is not None:
        attrs.append(LOUDNESS[e.loudness])
    if e.position is not None:
        attrs.append(POSITIONS[e.position])
    body = join_words(attrs)
    if e.duration_s is not None:
        length = f"{'each ' if e.count > 1 else ''}{_seconds(e.duration_s)} s long"
        body = f"{body}, {length}" if body else length
    verb = "is" if e.count == 1 else "are"
    return f"the {e.noun} {verb} {body}"


def render(caption: RichCaption) -> str:
    """The one-line text of ``caption`` (validated first: ``validate``)."""
    check(caption)
    layout = ", then ".join(_layout_part(e) for e in caption.events)
    if caption.clip_s is not None:
        layout += f", in a {_seconds(caption.clip_s)} s clip"
    description = "; ".join(_description_part(e) for e in caption.events)
    return (
        f"Keywords: {', '.join(caption.keywords)}. Layout: {layout}. "
        f"Description: {description}."
    )


# ----- validation ------------------------------------------------------------


def _event_where(i: int, e: RichEvent) -> str:
    return f"event {i + 1} ({e.name!r})"


def validate(caption: RichCaption) -> List[str]:
    """Every problem of ``caption``, each naming its section, event and
    field; empty when it is well-formed."""
    problems: List[str] = []
    if not caption.events:
        problems.append("Layout: no events")
    seen = set()
    for k in caption.keywords:
        if not isinstance(k, str) or not k.strip() or k != " ".join(k.split()):
            problems.append(f"Keywords: {k!r} is not a name (empty or odd spaces)")
        elif _NAME_FORBIDDEN.search(k):
            problems.append(f"Keywords: {k!r} holds one of , . ; ( )")
        if k in seen:
            problems.append(f"Keywords: {k!r} is listed twice")
        seen.add(k)
    names = {e.name for e in caption.events}
    for k in caption.keywords:
        if k not in names:
            problems.append(f"Keywords: {k!r} names no event of the Layout")
    if caption.clip_s is not None and not caption.clip_s > 0:
        problems.append(f"Layout: clip length {caption.clip_s} is not positive")
    previous_end = 0.0
    for i, e in enumerate(caption.events):
        where = _event_where(i, e)
        if e.name not in caption.keywords:
            problems.append(f"Layout, {where}: name is not one of the Keywords")
        if not isinstance(e.count, int) or not 1 <= e.count <= MAX_COUNT:
            problems.append(f"Layout, {where}: count {e.count!r} not in 1..{MAX_COUNT}")
        if e.spans and len(e.spans) != e.count:
            problems.append(
                f"Layout, {where}: {len(e.spans)} spans for a count of {e.count}"
            )
        for j, (a, b) in enumerate(e.spans):
            at = f"Layout, {where}, span {j + 1}"
            if not 0 <= a < b:
                problems.append(f"{at}: onset {a} and offset {b} (need 0 <= on < off)")
            if a < previous_end - 1e-9:
                problems.append(f"{at}: starts before the previous event ends")
            if caption.clip_s is not None and b > caption.clip_s + 1e-9:
                problems.append(f"{at}: ends after the {caption.clip_s} s clip")
            previous_end = max(previous_end, b)
        for field, values in ATTRIBUTES.items():
            value = getattr(e, field)
            if value is not None and value not in values:
                problems.append(
                    f"Description, {where}: {field} {value!r} is not one of "
                    f"{sorted(values)}"
                )
        if e.pitch_detail is not None:
            if e.pitch is None:
                problems.append(f"Description, {where}: pitch detail without a pitch")
            elif not e.pitch_detail.strip() or re.search(r"[();]", e.pitch_detail):
                problems.append(
                    f"Description, {where}: pitch detail {e.pitch_detail!r} is "
                    "empty or holds ( ) ;"
                )
        if e.duration_s is not None and not e.duration_s > 0:
            problems.append(f"Description, {where}: length {e.duration_s} <= 0")
        described = (e.pitch, e.loudness, e.position, e.duration_s)
        if all(v is None for v in described):
            problems.append(f"Description, {where}: describes nothing")
    return problems


def check(caption: RichCaption) -> RichCaption:
    """``caption``, or ``RichCaptionError`` listing what ``validate`` finds."""
    problems = validate(caption)
    if problems:
        raise RichCaptionError("rich caption: " + "; ".join(problems))
    return caption


# ----- parsing ---------------------------------------------------------------


def _split_join(text: str) -> List[str]:
    """Inverse of ``join_words``; separators inside parentheses (a pitch
    detail) do not split."""
    depth, commas, ands = 0, [], []  # top-level separator positions
    for i, ch in enumerate(text):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if depth == 0 and text.startswith(", ", i):
            commas.append((i, i + 2))
        elif depth == 0 and text.startswith(" and ", i):
            ands.append((i, i + 5))
    cuts = commas
    if ands:
        cuts = [c for c in commas if c[0] < ands[-1][0]] + [ands[-1]]
    items, start = [], 0
    for a, b in cuts:
        items.append(text[start:a])
        start = b
    return items + [text[start:]]


def _count_and_name(
    part: str, keywords: Sequence[str], where: str
) -> Tuple[int, str, str]:
    """``(count, name, rest)`` of a Layout part's head "<count> <noun>..."."""
    for words in sorted(_COUNT_VALUES, key=len, reverse=True):
        if part.startswith(words + " "):
            count, rest = _COUNT_VALUES[words], part[len(words) + 1 :]
            break
    else:
        raise RichCaptionError(
            f"rich caption: {where}: {part!r} does not start with a count in words "
            "(one, two, ...)"
        )
    for name in sorted(keywords, key=len, reverse=True):
        form = noun(name, count)
        if rest == form or rest.startswith(form + " at "):
            return count, name, rest[len(form) :]
    raise RichCaptionError(
        f"rich caption: {where}: {rest.split(' at ')[0]!r} is not a Keyword in "
        f"the form for a count of {count} (Keywords: {list(keywords)})"
    )


def _parse_layout_part(
    part: str, keywords: Sequence[str], where: str
) -> Tuple[str, int, Tuple[Tuple[float, float], ...]]:
    count, name, rest = _count_and_name(part, keywords, where)
    spans = []
    if rest:
        for j, text in enumerate(_split_join(rest[len(" at ") :])):
            m = _SPAN.match(text)
            if m is None:
                raise RichCaptionError(
                    f"rich caption: {where}, span {j + 1}: {text!r} is not "
                    "'<onset>-<offset> s' with two decimals"
                )
            spans.append((float(m.group(1)), float(m.group(2))))
    return name, count, tuple(spans)


def _attribute(text: str, where: str) -> Tuple[str, str]:
    for field, values in ATTRIBUTES.items():
        for value, words in values.items():
            if text == words:
                return field, value
    known = [w for values in ATTRIBUTES.values() for w in values.values()]
    raise RichCaptionError(
        f"rich caption: {where}: {text!r} is not a pitch, loudness or position "
        f"({known})"
    )


def _parse_description_part(
    part: str, name: str, count: int, where: str
) -> Dict[str, object]:
    verb = "is" if count == 1 else "are"
    head = f"the {noun(name, count)} {verb} "
    if not part.startswith(head):
        raise RichCaptionError(
            f"rich caption: {where}: expected it to start with {head.strip()!r} "
            f"(the Layout's event), got {part[: len(head) + 10]!r}"
        )
    body = part[len(head) :]
    out: Dict[str, object] = {}
    m = _LENGTH.match(body)
    if m is not None:
        if bool(m.group(2)) != (count > 1):
            raise RichCaptionError(
                f"rich caption: {where}: length: 'each' is written for a count > 1 only"
            )
        out["duration_s"] = float(m.group(3))
        body = m.group(1) or ""
    if not body:
        return out
    items = _split_join(body)
    order = list(ATTRIBUTES)
    last = -1
    for item in items:
        detail = None
        d = _DETAIL.match(item)
        if d is not None:
            item, detail = d.group(1), d.group(2)
        field, value = _attribute(item, where)
        if detail is not None and field != "pitch":
            raise RichCaptionError(
                f"rich caption: {where}: a detail in parentheses follows the pitch "
                f"only, not the {field}"
            )
        if order.index(field) <= last:
            raise RichCaptionError(
                f"rich caption: {where}: {field} out of order (pitch, loudness, "
                "position; each once)"
            )
        last = order.index(field)
        out[field] = value
        if detail is not None:
            out["pitch_detail"] = detail
    return out


def parse(text: str) -> RichCaption:
    """The ``RichCaption`` of ``text``; ``RichCaptionError`` naming the
    section, event and field at fault when it is malformed or inconsistent."""
    if not isinstance(text, str):
        raise RichCaptionError(f"rich caption: not a string: {type(text).__name__}")
    m = _SECTIONS.match(text.strip())
    if m is None:
        raise RichCaptionError(
            "rich caption: expected 'Keywords: ... Layout: ... Description: ...' "
            f"(each section ending with '.'), got {text[:60]!r}"
        )
    keywords_text, layout_text, description_text = m.groups()
    keywords = tuple(keywords_text.split(", ")) if keywords_text else ()
    clip_s = None
    c = _CLIP.match(layout_text)
    if c is not None:
        layout_text, clip_s = c.group(1), float(c.group(2))
    layout = layout_text.split(", then ") if layout_text else []
    description = description_text.split("; ") if description_text else []
    if len(description) != len(layout):
        raise RichCaptionError(
            f"rich caption: Description has {len(description)} parts for the "
            f"Layout's {len(layout)} events (one '; '-separated part each)"
        )
    events = []
    for i, (lpart, dpart) in enumerate(zip(layout, description)):
        where = f"Layout, event {i + 1}"
        name, count, spans = _parse_layout_part(lpart, keywords, where)
        where = f"Description, event {i + 1} ({name!r})"
        attrs = _parse_description_part(dpart, name, count, where)
        events.append(RichEvent(name, count, spans, **attrs))
    return check(RichCaption(keywords, tuple(events), clip_s))


def is_rich_caption(text: str) -> bool:
    """Does ``text`` look like a rich caption (its first section)?"""
    return isinstance(text, str) and text.lstrip().startswith("Keywords:")
