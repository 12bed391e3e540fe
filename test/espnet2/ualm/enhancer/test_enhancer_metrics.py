"""Evaluation measures: zero for a perfect estimate, each sensitive to its own
kind of error."""

import numpy as np
import pytest

from espnet2.ualm.enhancer.metrics import enhancement_metrics

RATE = 48000


def _tone(freq, seconds=0.5, amp=0.3):
    t = np.arange(int(seconds * RATE)) / RATE
    return amp * np.sin(2 * np.pi * freq * t)


def test_perfect_estimate_scores_zero():
    x = _tone(440) + 0.1 * _tone(12000)
    ref = np.stack([x * 0.4, x * 1.6])
    m = enhancement_metrics(ref, ref, RATE)
    assert m["lsd_db"] == pytest.approx(0.0, abs=1e-9)
    assert m["lsd_high_db"] == pytest.approx(0.0, abs=1e-9)
    assert m["mrstft"] == pytest.approx(0.0, abs=1e-9)
    assert m["ild_error_db"] == pytest.approx(0.0, abs=1e-9)


def test_missing_high_band_shows_in_the_high_band_distance():
    low = _tone(440)
    ref = np.stack([low + 0.1 * _tone(12000)] * 2)
    est = np.stack([low] * 2)
    m = enhancement_metrics(ref, est, RATE)
    assert m["lsd_high_db"] > 1.0
    assert m["lsd_db"] < m["lsd_high_db"] * 1.5
    assert m["ild_error_db"] == pytest.approx(0.0, abs=1e-6)


def test_ild_error_of_a_centred_copy_is_the_reference_level_difference():
    x = _tone(440)
    pan = 0.6
    ref = np.stack([x * (1 - pan), x * (1 + pan)])
    centred = np.stack([x, x])
    expected = abs(20 * np.log10((1 - pan) / (1 + pan)))
    m = enhancement_metrics(ref, centred, RATE)
    assert m["ild_error_db"] == pytest.approx(expected, rel=1e-3)


def test_accepts_samples_first_and_mono_estimates():
    x = _tone(440)
    ref = np.stack([x, x])
    a = enhancement_metrics(ref.T, x, RATE)
    b = enhancement_metrics(ref, ref, RATE)
    assert a["lsd_db"] == pytest.approx(b["lsd_db"], abs=1e-9)
