import pytest

from espnet2.ualm.scoring.asr import error_rates


def test_error_rates_after_normalisation():
    refs = ["rose has nine desks", "anna watched the red cloud"]
    hyps = ["Rose has 9 desks.", "anna watch the cloud"]
    m = error_rates(refs, hyps)
    assert m["substitutions"] == 1 and m["deletions"] == 1 and m["insertions"] == 0
    assert m["wer"] == pytest.approx(2 / 9)
    assert m["sentence_error_rate"] == pytest.approx(0.5)
    assert error_rates(refs, refs)["wer"] == 0.0
    raw = error_rates(refs, hyps, normalize=False)
    assert raw["wer"] > m["wer"]


def test_empty_hypotheses_and_references():
    m = error_rates(["", "a b"], ["x", ""])
    assert m["empty_refs"] == 1 and m["utterances"] == 1
    assert m["wer"] == 1.0 and m["deletions"] == 2
    with pytest.raises(ValueError):
        error_rates(["a"], [])
