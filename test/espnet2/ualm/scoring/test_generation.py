"""Metric math of FD, KL, IS and the CLAP score against closed forms."""

import numpy as np
import pytest

from espnet2.ualm.scoring.generation import (
    clap_score,
    embedding_statistics,
    frechet_distance,
    frechet_distance_from_embeddings,
    inception_score,
    kl_divergence,
)


def test_frechet_distance_closed_forms():
    mu, cov = np.array([1.0, -2.0]), np.array([[2.0, 0.3], [0.3, 1.0]])
    assert frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert frechet_distance(
        np.array([0.0]), np.array([[4.0]]), np.array([3.0]), np.array([[1.0]])
    ) == pytest.approx(9.0 + 1.0)
    # diagonal covariances: sum of (sqrt(a) - sqrt(b))^2
    a, b = np.array([1.0, 4.0, 9.0]), np.array([4.0, 4.0, 1.0])
    fd = frechet_distance(np.zeros(3), np.diag(a), np.ones(3), np.diag(b))
    assert fd == pytest.approx(3.0 + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2))


def test_frechet_distance_from_embeddings_is_symmetric_and_handles_few_clips():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 4))
    y = rng.standard_normal((500, 4)) * 2 + 1
    fd = frechet_distance_from_embeddings(x, y)
    mx, cx = embedding_statistics(x)
    my, cy = embedding_statistics(y)
    assert fd == pytest.approx(frechet_distance(my, cy, mx, cx), rel=1e-6)
    # true value of the two Gaussians: |1|^2 * 4 + 4 * (2 - 1)^2 = 8
    assert fd == pytest.approx(8.0, rel=0.15)
    # fewer clips than dimensions: singular covariances, still finite
    wide_x, wide_y = np.tile(x[:5], 8), np.tile(y[:5], 8)  # [5, 32]
    small = frechet_distance_from_embeddings(wide_x, wide_y)
    assert np.isfinite(small) and small >= 0
    with pytest.raises(ValueError):
        embedding_statistics(x[:1])


def test_kl_divergence():
    p = np.array([[0.5, 0.5], [0.9, 0.1]])
    q = np.array([[0.5, 0.5], [0.5, 0.5]])
    kl = kl_divergence(p, q, eps=0.0)
    assert kl[0] == pytest.approx(0.0)
    assert kl[1] == pytest.approx(0.9 * np.log(0.9 / 0.5) + 0.1 * np.log(0.1 / 0.5))
    # sigmoid outputs (rows not summing to one) are renormalised
    assert kl_divergence(p * 0.3, q * 2.0, eps=0.0) == pytest.approx(kl)
    with pytest.raises(ValueError):
        kl_divergence(p, q[:1])
    with pytest.raises(ValueError):
        kl_divergence(-p, q)


def test_inception_score_bounds():
    classes = 5
    confident_diverse = np.eye(classes).repeat(4, axis=0)  # 20 clips, all classes
    assert inception_score(confident_diverse, splits=1)[0] == pytest.approx(classes)
    same = np.tile(np.array([[0.7, 0.1, 0.1, 0.05, 0.05]]), (20, 1))
    assert inception_score(same)[0] == pytest.approx(1.0)
    mean, std = inception_score(np.random.default_rng(0).dirichlet(np.ones(5), 40))
    assert 1.0 <= mean <= classes and std >= 0


def test_clap_score_is_cosine():
    t = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    a = np.array([[3.0, 0.0], [1.0, 0.0], [-1.0, -1.0]])
    assert clap_score(t, a) == pytest.approx([1.0, 0.0, -1.0])
