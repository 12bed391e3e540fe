"""Rich captions: round trip, errors that name section/event/field, and
critiques of a plan against a result."""

import dataclasses

import pytest

from espnet2.ualm.text.critique import (
    Critique,
    CritiqueError,
    Mismatch,
    compare,
    critique_text,
    finds_no_mismatch,
    parse_critique,
    render_critique,
)
from espnet2.ualm.text.rich_caption import (
    RichCaption,
    RichCaptionError,
    RichEvent,
    parse,
    plural,
    render,
    validate,
)

MINI = (
    "Keywords: beep, noise burst. Layout: three beeps at 0.20-0.35 s, 0.55-0.70 s "
    "and 0.90-1.05 s, then one noise burst at 1.40-1.80 s, in a 2.10 s clip. "
    "Description: the beeps are high-pitched (about 2000 Hz), loud and on the "
    "right, each 0.15 s long; the noise burst is low-pitched (one octave around "
    "300 Hz), quiet and on the left, 0.40 s long."
)
SPARSE = (  # a real corpus: no timing, some attributes only
    "Keywords: dog bark, siren, glass. Layout: two dog barks, then one siren, "
    "then three glasses. Description: the dog barks are loud; the siren is "
    "high-pitched and on the right; the glasses are each 0.05 s long."
)


@pytest.mark.parametrize("text", [MINI, SPARSE])
def test_round_trip(text):
    caption = parse(text)
    assert render(caption) == text
    assert parse(render(caption)) == caption


def test_parse_reads_every_field():
    beeps, burst = parse(MINI).events
    assert (beeps.name, beeps.count, beeps.pitch, beeps.loudness) == (
        "beep",
        3,
        "high",
        "loud",
    )
    assert beeps.spans == ((0.2, 0.35), (0.55, 0.7), (0.9, 1.05))
    assert beeps.pitch_detail == "about 2000 Hz" and beeps.duration_s == 0.15
    assert (burst.position, burst.pitch_detail) == ("left", "one octave around 300 Hz")
    assert parse(MINI).clip_s == 2.1
    siren = parse(SPARSE).events[1]
    assert (siren.spans, siren.loudness, siren.position) == ((), None, "right")


def test_of_events_lists_keywords_in_order_of_first_appearance():
    events = [RichEvent("tone", 1, loudness="loud"), RichEvent("beep", 2, pitch="low")]
    events.append(RichEvent("tone", 2, position="left"))
    assert RichCaption.of_events(events).keywords == ("tone", "beep")


def test_plural():
    assert [plural(w) for w in ("beep", "glass", "body", "day", "noise burst")] == [
        "beeps",
        "glasses",
        "bodies",
        "days",
        "noise bursts",
    ]


@pytest.mark.parametrize(
    "text, where",
    [
        ("a dog barks", "expected 'Keywords: ... Layout: ... Description: ...'"),
        (MINI.replace("three beeps", "3 beeps"), "Layout, event 1"),
        (MINI.replace("three beeps", "three tones"), "'tones' is not a Keyword"),
        (MINI.replace("three beeps", "three beep "), "Layout, event 1"),
        (MINI.replace("0.55-0.70 s", "0.55-0.7 s"), "Layout, event 1, span 2"),
        (
            MINI.replace("; the noise burst", ", the noise burst"),
            "Description has 1 parts for the Layout's 2 events",
        ),
        (MINI.replace("loud and", "very loud and"), "Description, event 1 ('beep')"),
        (MINI.replace("the beeps are", "the beep is"), "expected it to start with"),
        (MINI.replace("each 0.15", "0.15"), "'each' is written for a count > 1"),
        (
            MINI.replace("loud and on the right", "on the right and loud"),
            "loudness out of order",
        ),
        (MINI.replace("loud and", "loud (very) and"), "follows the pitch only"),
        (
            MINI.replace("0.20-0.35 s, ", ""),
            "Layout, event 1 ('beep'): 2 spans for a count of 3",
        ),
        (MINI.replace("1.40-1.80 s", "1.00-1.80 s"), "starts before the previous"),
        (MINI.replace("2.10 s clip", "1.50 s clip"), "ends after the 1.5 s clip"),
        (MINI.replace("Keywords: beep,", "Keywords: beep, chirp,"), "'chirp' names no"),
    ],
)
def test_errors_name_section_event_and_field(text, where):
    with pytest.raises(RichCaptionError, match=None) as e:
        parse(text)
    assert where in str(e.value), str(e.value)


def test_validator_lists_every_problem():
    event = RichEvent("beep", 2, spans=((0.5, 0.4),), pitch="shrill")
    problems = validate(RichCaption(("beep", "beep"), (event,), clip_s=1.0))
    text = "\n".join(problems)
    assert "Keywords: 'beep' is listed twice" in text
    assert "Layout, event 1 ('beep'): 1 spans for a count of 2" in text
    assert "span 1: onset 0.5 and offset 0.4" in text
    assert "Description, event 1 ('beep'): pitch 'shrill' is not one of" in text
    nothing = RichCaption(("tone",), (RichEvent("tone", 1),))
    assert validate(nothing) == ["Description, event 1 ('tone'): describes nothing"]
    with pytest.raises(RichCaptionError, match="describes nothing"):
        render(nothing)


# ----- critiques --------------------------------------------------------------


def test_the_same_caption_has_no_mismatch():
    critique = compare(parse(MINI), parse(MINI))
    assert critique.ok
    assert render_critique(critique) == "Critique: no mismatch."
    assert finds_no_mismatch(critique_text(parse(MINI), parse(MINI)))


def _with(caption, i, **changes):
    events = list(caption.events)
    events[i] = dataclasses.replace(events[i], **changes)
    return dataclasses.replace(caption, events=tuple(events))


def test_each_kind_of_mismatch_is_named():
    plan = parse(MINI)
    heard = _with(plan, 0, count=2, spans=(), pitch="low")
    heard = _with(heard, 1, loudness="loud", position="center")
    got = compare(plan, heard)
    assert [str(m) for m in got.mismatches] == [
        "count (beep): planned three, heard two",
        "pitch (beep): planned high-pitched, heard low-pitched",
        "loudness (noise burst): planned quiet, heard loud",
        "position (noise burst): planned on the left, heard in the center",
    ]
    swapped = dataclasses.replace(plan, events=plan.events[::-1])
    (order,) = compare(plan, swapped).mismatches
    assert (
        str(order)
        == "order: planned beep then noise burst, heard noise burst then beep"
    )
    missing = dataclasses.replace(plan, keywords=("beep",), events=plan.events[:1])
    assert [str(m) for m in compare(plan, missing).mismatches] == [
        "count (noise burst): planned one, heard none"
    ]
    assert [str(m) for m in compare(missing, plan).mismatches] == [
        "count (noise burst): planned none, heard one"
    ]


def test_an_attribute_only_one_side_gives_is_not_compared():
    plan = parse(MINI)
    assert compare(plan, _with(plan, 0, pitch=None, pitch_detail=None)).ok


def test_critique_round_trip_and_errors():
    plan = parse(MINI)
    heard = _with(dataclasses.replace(plan, events=plan.events[::-1]), 0, count=2)
    critique = compare(plan, heard)
    assert len(critique.mismatches) == 2 and not critique.ok
    text = render_critique(critique)
    assert parse_critique(text) == critique
    assert parse_critique("Critique: no mismatch.") == Critique()
    for bad, where in [
        ("no mismatch", "expected 'Critique: ... .'"),
        ("Critique: volume (beep): planned loud, heard quiet.", "item 1"),
        ("Critique: order (beep): planned a then b, heard b then a.", "takes no event"),
        (
            "Critique: pitch: planned low-pitched, heard high-pitched.",
            "names its event",
        ),
        ("Critique: count (beep): planned two, heard two.", "both 'two'"),
    ]:
        with pytest.raises(CritiqueError, match=None) as e:
            parse_critique(bad)
        assert where in str(e.value)
        assert not finds_no_mismatch(bad)
    assert (
        Mismatch("count", "beep", "two", "one")
        in parse_critique("Critique: count (beep): planned two, heard one.").mismatches
    )
