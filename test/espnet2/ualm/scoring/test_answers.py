import pytest

from espnet2.ualm.scoring.answers import (
    answer_key,
    lettered_options,
    parse_choice,
    question_choices,
    score_qa,
    score_text_answers,
    text_answer_correct,
)

# The mini corpus's vocabulary (mini_corpus.questions.ANSWER_WORDS), abridged.
VOCAB = {
    "count": ["Zero.", "One.", "Two.", "Three.", "Four."],
    "pitch": ["Low.", "Medium.", "High."],
    "position": ["Left.", "Center.", "Right."],
    "exists": ["Yes.", "No."],
    "order": ["The tone.", "The chord.", "The beep.", "The noise burst."],
    "first": ["A tone.", "A chord.", "A beep.", "A noise burst."],
}


def test_answer_key():
    assert answer_key("The chirp.") == "chirp"
    assert answer_key("3") == answer_key("Three.") == "three"
    assert answer_key("A noise burst.") == "noise burst"


@pytest.mark.parametrize(
    "reply, choices, want",
    [
        ("There are 3 beeps.", VOCAB["count"], "Three."),
        ("There are no beeps.", VOCAB["count"], "Zero."),
        ("No, there is not.", VOCAB["exists"], "No."),
        ("It is mid-range.", VOCAB["pitch"], "Medium."),
        ("The beep comes first, then the tone.", VOCAB["order"], "The beep."),
        ("a noise burst", VOCAB["first"], "A noise burst."),
        ("I have no idea", VOCAB["pitch"], None),
    ],
)
def test_parse_choice(reply, choices, want):
    assert parse_choice(reply, choices) == want


def test_lettered_options():
    q = "Which animal is heard? (A) a dog (B) a cat (C) a cow"
    opts = lettered_options(q)
    assert opts == {"a": "a dog", "b": "a cat", "c": "a cow"}
    assert parse_choice("B", ["a dog", "a cat", "a cow"], opts) == "a cat"
    assert parse_choice("(c) a cow", ["a dog", "a cat", "a cow"], opts) == "a cow"


def test_multiple_choice_detection():
    assert question_choices(
        "Which comes first, the tone or the beep?", VOCAB["order"]
    ) == [
        "The tone.",
        "The beep.",
    ]
    assert question_choices("How many beeps are there?", VOCAB["count"]) == []


def test_score_qa():
    items = [
        ("count", "How many beeps are there?", "Three.", "three"),
        ("count", "How many beeps are there?", "Two.", "There are 3."),
        ("order", "Which comes first, the tone or the beep?", "The beep.", "the beep"),
        # a choice the question did not offer is not accepted
        ("order", "Which comes first, the tone or the beep?", "The beep.", "the chord"),
        ("position", "Where is the beep: left, center or right?", "Left.", "Left!"),
    ]
    recs = [
        dict(id=str(i), kind=k, question=q, reference=r, hypothesis=h)
        for i, (k, q, r, h) in enumerate(items)
    ]
    summary, records = score_qa(recs, VOCAB)
    assert [r["correct"] for r in records] == [True, False, True, False, True]
    assert records[3]["parsed"] is None
    assert summary["accuracy"] == pytest.approx(3 / 5)
    assert summary["multiple_choice_accuracy"] == pytest.approx(2 / 3)
    assert summary["short_answer_accuracy"] == pytest.approx(1 / 2)
    assert summary["accuracy_count"] == pytest.approx(1 / 2)
    assert summary["unparsed"] == 1


@pytest.mark.parametrize(
    "hyp, ref, ok",
    [
        ("The answer is 14.", "14", True),
        ("fourteen", "14", True),
        ("8 times 9 is 72", "72", True),
        ("13", "14", False),
        ("Elppa", "elppa", True),
        ("The answer is elppa.", "elppa", True),
        ("apple", "elppa", False),
    ],
)
def test_text_answers(hyp, ref, ok):
    assert text_answer_correct(hyp, ref) is ok


def test_score_text_answers_splits_numeric():
    items = [
        dict(id="a", reference="14", hypothesis="14"),
        dict(id="b", reference="elppa", hypothesis="apple"),
    ]
    summary, _ = score_text_answers(items)
    assert summary["accuracy"] == 0.5
    assert summary["accuracy_numeric"] == 1.0 and summary["accuracy_exact"] == 0.0
