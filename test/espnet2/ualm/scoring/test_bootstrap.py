"""Bootstrap intervals over the test items: seeded, around the figure, exact
recomputation of corpus-level metrics on resamples."""

import numpy as np
import pytest

from espnet2.ualm.scoring import asr, bootstrap, captioning


def test_mean_interval_is_seeded_and_holds_the_mean():
    rng = np.random.default_rng(0)
    values = rng.random(200)
    lo, hi = bootstrap.mean_interval(values)
    assert lo < values.mean() < hi
    assert (lo, hi) == bootstrap.mean_interval(values)  # deterministic
    assert bootstrap.mean_interval(values, seed=1) != (lo, hi)
    # about 1.96 standard errors either side
    se = values.std() / np.sqrt(len(values))
    assert hi - lo == pytest.approx(2 * 1.96 * se, rel=0.15)
    # four times the items: about half as wide
    lo4, hi4 = bootstrap.mean_interval(np.tile(values, 4))
    assert (hi4 - lo4) == pytest.approx((hi - lo) / 2, rel=0.2)


def test_constant_scores_and_too_few_items():
    assert bootstrap.mean_interval([1.0] * 10) == (1.0, 1.0)
    assert bootstrap.mean_interval([0.5]) is None
    assert bootstrap.mean_interval([np.nan, 1.0, 0.0]) is not None  # NaN ignored
    assert bootstrap.percentile_interval([np.nan]) is None


def test_ratio_interval_is_a_corpus_wer():
    errors, words = [0.0, 2.0, 1.0, 3.0], [4.0, 4.0, 2.0, 6.0]
    lo, hi = bootstrap.ratio_interval(errors, words)
    assert lo <= sum(errors) / sum(words) <= hi
    assert 0.0 <= lo < hi <= 1.0
    assert bootstrap.ratio_interval([1.0], [2.0]) is None


def test_utterance_errors_sum_to_the_corpus_wer():
    refs = ["rose has nine desks", "a b c d", "the red cloud", "one two"]
    hyps = ["Rose has 9 desks.", "a b x", "the cloud red cloud", ""]
    errors, words = asr.utterance_errors(refs, hyps)
    assert sum(errors) / sum(words) == pytest.approx(asr.error_rates(refs, hyps)["wer"])
    assert errors == [0.0, 2.0, 1.0, 2.0]


def test_bootstrap_interval_of_cider_recomputes_on_tokens():
    hyps = {f"c{i}": f"a dog barks {'twice' if i % 2 else 'once'}" for i in range(12)}
    refs = {k: [f"a dog barks {'twice' if i % 3 else 'once'}"] for i, k in
            enumerate(sorted(hyps))}  # fmt: skip
    data = captioning.prepare(hyps, refs)
    assert captioning.cider_d_tokens(data) == pytest.approx(
        captioning.cider_d(hyps, refs)
    )
    assert captioning.bleu_tokens(data) == pytest.approx(captioning.bleu(hyps, refs))
    value = captioning.cider_d(hyps, refs)
    lo, hi = bootstrap.bootstrap_interval(
        lambda idx: captioning.cider_d_tokens([data[i] for i in idx]),
        len(data),
        resamples=200,
    )
    assert lo < value < hi


def test_resampled_scores_equal_recomputing_each_resample():
    """The vectorised BLEU-4 / CIDEr-D of resamples equal the plain formulas
    on the resampled pairs (repeats count again, in the idf too)."""
    rng = np.random.default_rng(3)
    words = ["a", "dog", "barks", "bell", "rings", "twice", "then", "loud", "cat"]
    hyps = {
        f"c{i:02d}": " ".join(rng.choice(words, size=int(rng.integers(0, 7))))
        for i in range(15)
    }
    refs = {
        k: [
            " ".join(rng.choice(words, size=int(rng.integers(2, 8))))
            for _ in range(int(rng.integers(1, 4)))
        ]
        for k in hyps
    }
    data = captioning.prepare(hyps, refs)
    indices = bootstrap.resample_indices(len(data), resamples=25, seed=4)
    fast = captioning.resampled_scores(data, indices)
    for row, idx in enumerate(indices):
        sample = [data[i] for i in idx]
        assert fast["cider_d"][row] == pytest.approx(captioning.cider_d_tokens(sample))
        assert fast["bleu_4"][row] == pytest.approx(
            captioning.bleu_tokens(sample)["bleu_4"]
        )
    same = captioning.resampled_scores(data, [list(range(len(data)))])
    assert same["cider_d"][0] == pytest.approx(captioning.cider_d(hyps, refs))
