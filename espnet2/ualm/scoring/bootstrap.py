"""Confidence intervals over the test items: a seeded percentile bootstrap.

Each key metric gets a 95 % interval from ``RESAMPLES`` resamples of the test
items with replacement, the metric recomputed on each: the mean of per-item
scores for item-averaged metrics (accuracy, judge scores, MCD), the corpus
formula for corpus-level ones (WER: errors summed over reference words;
BLEU/CIDEr-D: recomputed on the resampled clips). The interval says how much
the figure would move on another test split of the same size, which a change
of a few hundredths must exceed before it means anything.
"""

from typing import Callable, Optional, Sequence, Tuple

import numpy as np

RESAMPLES = 1000
CONFIDENCE = 0.95
BOOTSTRAP_SEED = 0

Interval = Tuple[float, float]


def resample_indices(
    n_items: int, resamples: int = RESAMPLES, seed: int = BOOTSTRAP_SEED
) -> np.ndarray:
    """``[resamples, n_items]`` item indices drawn with replacement (seeded)."""
    rng = np.random.default_rng(seed)
    return rng.integers(n_items, size=(resamples, n_items))


def percentile_interval(
    values: Sequence[float], confidence: float = CONFIDENCE
) -> Optional[Interval]:
    """The central ``confidence`` range of ``values`` (NaNs dropped); None when
    nothing is finite."""
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[np.isfinite(arr)]
    if arr.size == 0:
        return None
    tail = 100 * (1 - confidence) / 2
    lo, hi = np.percentile(arr, [tail, 100 - tail])
    return float(lo), float(hi)


def bootstrap_interval(
    score: Callable[[np.ndarray], float],
    n_items: int,
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> Optional[Interval]:
    """Percentile interval of ``score(indices)`` over seeded resamples of the
    ``n_items`` items; None with fewer than two items."""
    if n_items < 2:
        return None
    draws = [score(idx) for idx in resample_indices(n_items, resamples, seed)]
    return percentile_interval(draws, confidence)


def mean_interval(
    per_item: Sequence[float],
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> Optional[Interval]:
    """Interval of the mean of per-item scores (NaN items ignored, as the
    metric's own ``nanmean`` does)."""
    values = np.asarray(per_item, dtype=np.float64)
    if values.size < 2:
        return None
    idx = resample_indices(values.size, resamples, seed)
    with np.errstate(invalid="ignore"):
        sample = values[idx]
        finite = np.isfinite(sample)
        counts = finite.sum(axis=1)
        sums = np.where(finite, sample, 0.0).sum(axis=1)
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return percentile_interval(means, confidence)


def ratio_interval(
    numerators: Sequence[float],
    denominators: Sequence[float],
    resamples: int = RESAMPLES,
    seed: int = BOOTSTRAP_SEED,
    confidence: float = CONFIDENCE,
) -> Optional[Interval]:
    """Interval of ``sum(num) / sum(den)`` over resampled items (a corpus WER:
    errors over reference words)."""
    num = np.asarray(numerators, dtype=np.float64)
    den = np.asarray(denominators, dtype=np.float64)
    if num.size < 2 or num.size != den.size:
        return None
    idx = resample_indices(num.size, resamples, seed)
    total = den[idx].sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = np.where(total > 0, num[idx].sum(axis=1) / total, np.nan)
    return percentile_interval(ratios, confidence)
