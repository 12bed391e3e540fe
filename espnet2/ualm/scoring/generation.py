"""Metric math of text-to-audio evaluation, independent of the models.

The paper reports FD (OpenL3 embeddings), KL (PaSST posteriors), IS (PANNs
posteriors) and the CLAP score; each is a short formula over embeddings or
class posteriors, implemented once here and fed by whatever model
``espnet2.ualm.scoring.embeddings`` provides.
"""

import warnings
from typing import Dict, Tuple

import numpy as np
from scipy import linalg

_EPS = 1e-12


def embedding_statistics(emb: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` of ``[N, D]`` embeddings."""
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or len(emb) < 2:
        raise ValueError(f"need [N >= 2, D] embeddings, got shape {emb.shape}")
    return emb.mean(axis=0), np.cov(emb, rowvar=False)


def frechet_distance(
    mu1: np.ndarray,
    sigma1: np.ndarray,
    mu2: np.ndarray,
    sigma2: np.ndarray,
    eps: float = 1e-6,
) -> float:
    """Frechet distance between two Gaussians:
    ``|mu1 - mu2|^2 + tr(S1 + S2 - 2 (S1 S2)^(1/2))``.

    As in the reference FID/FAD code: when ``S1 S2`` is singular (fewer clips
    than dimensions) ``eps`` is added to both diagonals; a tiny imaginary part of
    the square root (numerical error) is dropped, a large one is an error.
    """
    mu1, mu2 = np.atleast_1d(mu1), np.atleast_1d(mu2)
    sigma1, sigma2 = np.atleast_2d(sigma1), np.atleast_2d(sigma2)
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError("the two sets of statistics have different dimensions")
    diff = mu1 - mu2
    with warnings.catch_warnings():  # ill-conditioned: checked just below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma1 @ sigma2)
        if not np.isfinite(covmean).all():
            offset = np.eye(len(sigma1)) * eps
            covmean = linalg.sqrtm((sigma1 + offset) @ (sigma2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(
                f"imaginary component {np.max(np.abs(covmean.imag)):.3g} in sqrtm"
            )
        covmean = covmean.real
    value = diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * np.trace(covmean)
    return float(max(value, 0.0))


def frechet_distance_from_embeddings(ref: np.ndarray, gen: np.ndarray) -> float:
    """FD between the Gaussians fitted to two ``[N, D]`` embedding sets."""
    return frechet_distance(*embedding_statistics(ref), *embedding_statistics(gen))


def kl_divergence(
    ref_probs: np.ndarray, gen_probs: np.ndarray, eps: float = 1e-6
) -> np.ndarray:
    """``KL(p_ref || p_gen)`` per paired clip, ``[N]``, in nats.

    Rows are class distributions (softmax posteriors; a multi-label tagger's
    sigmoid outputs are renormalised to sum to one first, as the AudioGen /
    AudioLDM evaluations do). The generated clip ``i`` is the answer to the
    prompt of reference clip ``i``.
    """
    p = _as_distribution(ref_probs)
    q = _as_distribution(gen_probs)
    if p.shape != q.shape:
        raise ValueError(f"shapes differ: {p.shape} vs {q.shape}")
    return np.sum(p * (np.log(p + eps) - np.log(q + eps)), axis=1)


def inception_score(
    probs: np.ndarray, splits: int = 10, eps: float = 1e-12
) -> Tuple[float, float]:
    """IS = ``exp(E_x KL(p(y|x) || p(y)))``, mean and std over ``splits`` chunks.

    Confident (peaked) and diverse (different classes) outputs score high; the
    upper bound is the number of classes. Chunks follow the FID/AudioLDM
    convention (10 equal chunks, fewer when there are fewer clips).
    """
    p = _as_distribution(probs)
    splits = max(1, min(splits, len(p)))
    scores = []
    for chunk in np.array_split(p, splits):
        marginal = chunk.mean(axis=0, keepdims=True)
        kl = np.sum(chunk * (np.log(chunk + eps) - np.log(marginal + eps)), axis=1)
        scores.append(float(np.exp(kl.mean())))
    return float(np.mean(scores)), float(np.std(scores))


def clap_score(text_emb: np.ndarray, audio_emb: np.ndarray) -> np.ndarray:
    """Cosine similarity of paired text and audio embeddings, ``[N]``."""
    t = np.asarray(text_emb, dtype=np.float64)
    a = np.asarray(audio_emb, dtype=np.float64)
    if t.shape != a.shape:
        raise ValueError(f"shapes differ: {t.shape} vs {a.shape}")
    t = t / np.maximum(np.linalg.norm(t, axis=1, keepdims=True), _EPS)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), _EPS)
    return np.sum(t * a, axis=1)


def _as_distribution(probs: np.ndarray) -> np.ndarray:
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise ValueError(f"need [N, classes] probabilities, got shape {p.shape}")
    if (p < 0).any():
        raise ValueError("probabilities must be non-negative (apply softmax first)")
    return p / np.maximum(p.sum(axis=1, keepdims=True), _EPS)


def summarize(values: np.ndarray) -> Dict[str, float]:
    """Mean and count of a per-clip metric (NaNs left out)."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    return {"mean": float(v.mean()) if len(v) else float("nan"), "n": float(len(v))}
