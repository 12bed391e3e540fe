"""Residual k-means (the codebooks of a residual vector quantiser) in torch.

Why not scikit-learn: its k-means++ initialisation tries ``2 + ln(k)`` candidates
per centre over all points, which at ``k = 1024`` costs about as much as eight
Lloyd passes per stage, and its run time and results depend on its own thread
pool. Here k-means++ seeds from a random pool of ``2k`` points (half a second per
stage at ``k = 1024``), then a full-batch Lloyd loop of float32 matrix products
runs a fixed number of iterations, so the fit time is predictable and the
result deterministic given a seed.
"""

import logging
from typing import Callable, Optional, Tuple

import torch

_CHUNK = 8192  # rows per distance block: 8192 x 1024 floats = 32 MiB


def nearest(
    x: torch.Tensor, centroids: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Index of the nearest centroid of each row of ``x`` and its squared distance."""
    c_norm = centroids.pow(2).sum(1)
    index = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    dist = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for start in range(0, x.shape[0], _CHUNK):
        block = x[start : start + _CHUNK]
        d = c_norm - 2.0 * block @ centroids.T  # + |x|^2, constant per row
        best, idx = d.min(dim=1)
        index[start : start + _CHUNK] = idx
        dist[start : start + _CHUNK] = (best + block.pow(2).sum(1)).clamp_min(0.0)
    return index, dist


def kmeans_plus_plus(
    x: torch.Tensor, k: int, generator: torch.Generator, min_pool: int = 1024
) -> torch.Tensor:
    """``k`` distinct seed rows by k-means++ (D^2 sampling) on a random pool.

    The pool (``max(2k, min_pool)`` rows) keeps the ``k`` sequential steps cheap
    while still spreading the seeds over all clusters, which random seeding
    does not: two seeds in one cluster and none in another stay that way.
    """
    n = x.shape[0]
    pool = x[torch.randperm(n, generator=generator)[: max(2 * k, min_pool)]]
    chosen = [int(torch.randint(pool.shape[0], (1,), generator=generator))]
    d2 = (pool - pool[chosen[0]]).pow(2).sum(1)
    for _ in range(1, k):
        if float(d2.sum()) <= 0:  # fewer distinct rows than k: take any others
            rest = torch.ones(pool.shape[0], dtype=torch.bool)
            rest[chosen] = False
            d2 = rest.to(pool.dtype)
        j = int(torch.multinomial(d2, 1, generator=generator))
        chosen.append(j)
        d2 = torch.minimum(d2, (pool - pool[j]).pow(2).sum(1))
    return pool[chosen].clone()


def kmeans(
    x: torch.Tensor, k: int, n_iter: int, generator: torch.Generator
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's k-means on the rows of ``x`` ``[N, D]``; returns centroids and labels.

    Centroids start from k-means++ seeds. A centroid left without rows is moved
    to the row that is currently worst represented, so that no entry of the
    codebook is wasted.
    """
    n = x.shape[0]
    if n < k:
        raise ValueError(f"k-means needs at least k={k} vectors, got {n}")
    centroids = kmeans_plus_plus(x, k, generator)
    labels, dist = nearest(x, centroids)
    for _ in range(n_iter):
        sums = torch.zeros_like(centroids).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        filled = counts > 0
        centroids[filled] = sums[filled] / counts[filled, None]
        empty = (~filled).nonzero().flatten()
        if len(empty) > 0:
            worst = torch.topk(dist, len(empty)).indices
            centroids[empty] = x[worst]
        new_labels, dist = nearest(x, centroids)
        changed = int((new_labels != labels).sum())
        labels = new_labels
        if changed == 0 and len(empty) == 0:
            break
    return centroids, labels


def residual_kmeans(
    x: torch.Tensor,
    n_stages: int,
    k: int,
    n_iter: int,
    seed: int = 0,
    progress: Optional[Callable[[int, float], None]] = None,
) -> torch.Tensor:
    """Codebooks ``[n_stages, k, D]``: stage s clusters what stages < s left over.

    ``progress(stage, mse)`` is called after each stage with the mean squared
    residual left, which shrinks stage by stage.
    """
    generator = torch.Generator().manual_seed(int(seed))
    residual = x.float().clone()
    codebooks = torch.empty(n_stages, k, x.shape[1], dtype=torch.float32)
    for stage in range(n_stages):
        centroids, labels = kmeans(residual, k, n_iter, generator)
        codebooks[stage] = centroids
        residual -= centroids[labels]
        mse = float(residual.pow(2).mean())
        logging.debug(f"residual k-means stage {stage}: residual mse {mse:.4f}")
        if progress is not None:
            progress(stage, mse)
    return codebooks
