import math

import pytest

from espnet2.ualm.scoring.captioning import (
    bleu,
    caption_metrics,
    cider_d,
    meteor_lite,
    rouge_l,
)

REFS = {
    "a": ["We hear two medium-pitched chords.", "Two mid-range chords."],
    "b": ["A recording of a low tone."],
}


def test_perfect_captions():
    hyps = {"a": "we hear two medium pitched chords", "b": "A recording of a low tone."}
    m = caption_metrics(hyps, REFS)
    for k in ("bleu_1", "bleu_2", "bleu_3", "bleu_4", "rouge_l"):
        assert m[k] == pytest.approx(1.0, abs=1e-6)
    # one reference per clip, matched exactly: every n-gram similarity is 1 -> 10
    one_ref = {"a": [REFS["a"][0]], "b": REFS["b"]}
    assert cider_d(hyps, one_ref) == pytest.approx(10.0)
    # idf comes from the scored set: a lone clip has no informative n-gram
    assert cider_d({"b": hyps["b"]}, REFS) == 0.0
    assert m["meteor_lite"] == pytest.approx(
        1 - 0.5 * ((1 / 6) ** 3 + (1 / 6) ** 3) / 2
    )
    assert m["captions"] == 2


def test_unrelated_captions_score_zero():
    m = caption_metrics({"a": "dog barks", "b": "music plays"}, REFS)
    for k in ("bleu_1", "bleu_4", "rouge_l", "cider_d", "meteor_lite"):
        assert m[k] == pytest.approx(0.0, abs=1e-9)


def test_bleu_by_hand():
    # hyp "a low tone" vs ref "a recording of a low tone": p1 = 3/3, p2 = 2/2,
    # closest ref length 6 > 3: brevity penalty exp(1 - 6/3)
    b = bleu({"b": "a low tone"}, REFS)
    assert b["bleu_1"] == pytest.approx(math.exp(-1.0))
    assert b["bleu_2"] == pytest.approx(math.exp(-1.0))


def test_rouge_l_by_hand():
    # LCS("a tone", "a recording of a low tone") = 2: P = 1, R = 2/6
    p, r, beta = 1.0, 2 / 6, 1.2
    want = (1 + beta**2) * p * r / (r + beta**2 * p)
    assert rouge_l({"b": "a tone"}, REFS) == pytest.approx(want)


def test_meteor_lite_penalises_fragmentation():
    in_order = meteor_lite({"b": "a recording of a low tone"}, REFS)
    shuffled = meteor_lite({"b": "tone low a of recording a"}, REFS)
    assert in_order > shuffled > 0


def test_missing_reference_is_an_error():
    with pytest.raises(KeyError):
        bleu({"zzz": "a tone"}, REFS)
