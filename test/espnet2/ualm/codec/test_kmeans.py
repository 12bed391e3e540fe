"""Residual k-means: finds clusters, shrinks the residual, repeats given a seed."""

import pytest
import torch

from espnet2.ualm.codec.kmeans import kmeans, nearest, residual_kmeans


def _blobs(seed=0):
    g = torch.Generator().manual_seed(seed)
    centres = torch.randn(8, 5, generator=g) * 10
    x = centres.repeat_interleave(50, 0) + 0.1 * torch.randn(400, 5, generator=g)
    return x, centres


def test_kmeans_finds_separated_clusters():
    x, centres = _blobs()
    found, labels = kmeans(x, 8, 20, torch.Generator().manual_seed(0))
    index, dist = nearest(centres, found)
    assert len(set(index.tolist())) == 8  # every true centre has its own centroid
    assert float(dist.max()) < 0.1
    assert torch.equal(labels, nearest(x, found)[0])


def test_residual_stages_shrink_the_error_and_are_deterministic():
    x = torch.randn(2000, 16, generator=torch.Generator().manual_seed(1))
    mse = []
    books = residual_kmeans(x, 3, 32, 5, seed=7, progress=lambda s, m: mse.append(m))
    assert books.shape == (3, 32, 16)
    assert mse[0] < float(x.pow(2).mean()) and mse[0] > mse[1] > mse[2]
    assert torch.equal(books, residual_kmeans(x, 3, 32, 5, seed=7))
    assert not torch.equal(books, residual_kmeans(x, 3, 32, 5, seed=8))


def test_too_few_vectors():
    with pytest.raises(ValueError, match="at least k=16"):
        kmeans(torch.randn(10, 3), 16, 3, torch.Generator())
