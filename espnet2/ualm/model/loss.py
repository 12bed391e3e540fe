"""Multi-stream cross-entropy over one shared LM head, without full logits.

Stream 0 predicts over the whole vocabulary; streams 1..K-1 only over the
audio rows of the head (their hidden state plus the stream's embedding).
Logits are computed only at target positions, in chunks; with gradients,
each chunk is recomputed in the backward pass instead of kept (a 152k-row
head times 16k positions would not fit otherwise).

Weights: each audio target weighs ``audio_weight`` (1/K: one frame of K
codes weighs as much as one text token), every other target 1; the sum is
divided by the number of stream-0 targets.
"""

import dataclasses
import math
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


def _chunk_cross_entropy(
    hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor
) -> Tuple[torch.Tensor, torch.Tensor]:
    logits = torch.matmul(hidden, weight.T).float()
    return F.cross_entropy(logits, targets, reduction="none"), logits.argmax(-1)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    chunk_size: int = 4096,
) -> Tuple[torch.Tensor, torch.Tensor]:
    """Per-row ``CE(hidden @ weight.T, targets)`` (float32) and argmax.

    ``hidden`` ``[N, D]``, ``weight`` ``[V, D]``, ``targets`` ``[N]`` in
    ``[0, V)``. At most ``chunk_size`` rows of logits exist at a time.
    """
    if hidden.shape[0] == 0:
        empty = hidden.new_zeros(0, dtype=torch.float32)
        return empty + 0 * hidden.sum() + 0 * weight.sum(), targets.new_zeros(0)
    nll, pred = [], []
    for i in range(0, hidden.shape[0], chunk_size):
        args = (hidden[i : i + chunk_size], weight, targets[i : i + chunk_size])
        if torch.is_grad_enabled() and hidden.shape[0] > chunk_size:
            out = checkpoint(_chunk_cross_entropy, *args, use_reentrant=False)
        else:
            out = _chunk_cross_entropy(*args)
        nll.append(out[0])
        pred.append(out[1])
    return torch.cat(nll), torch.cat(pred)


def target_weights(
    ids: torch.Tensor, loss_mask: torch.Tensor, audio_offset: int, audio_weight: float
) -> torch.Tensor:
    """Loss weight of every entry of ``ids`` (0 where it is no target)."""
    weights = torch.where(ids >= audio_offset, audio_weight, 1.0)
    return weights * loss_mask.to(weights.dtype)


@dataclasses.dataclass
class MultiStreamLoss:
    """Loss (already normalised), its normaliser and per-stream details."""

    loss: torch.Tensor
    n_stream0_targets: torch.Tensor
    stats: Dict[str, torch.Tensor]


def _mean_or_nan(values: torch.Tensor) -> torch.Tensor:
    # NaN, not a missing key: every worker must report the same keys
    if values.numel() == 0:
        return torch.tensor(math.nan, device=values.device)
    return values.float().mean().detach()


def multistream_loss(
    hidden: torch.Tensor,
    ids: torch.Tensor,
    loss_mask: torch.Tensor,
    head_weight: torch.Tensor,
    stream_embeddings: torch.Tensor,
    audio_offset: int,
    audio_weight: float,
    chunk_size: int = 4096,
    audio_size: Optional[int] = None,
) -> MultiStreamLoss:
    """Next-token loss of a multi-stream batch.

    Args:
        hidden: ``[B, T, D]`` final hidden states.
        ids: ``[B, T, K]`` input ids; ``ids[:, t]`` is the target of position
            ``t - 1``.
        loss_mask: ``[B, T, K]`` bool, True where ``ids`` is a target.
        head_weight: ``[V, D]`` shared LM head.
        stream_embeddings: ``[K - 1, D]`` added to ``hidden`` for streams 1..K-1.
        audio_offset: first audio id; ids ``>= audio_offset`` are audio.
        audio_weight: weight of each audio target (1/K).
    """
    n_streams = ids.shape[-1]
    audio_size = (
        head_weight.shape[0] - audio_offset if audio_size is None else audio_size
    )
    targets, mask, h = ids[:, 1:], loss_mask[:, 1:].bool(), hidden[:, :-1]

    sel0 = mask[..., 0]
    t0 = targets[..., 0][sel0]
    nll0, pred0 = linear_cross_entropy(h[sel0], head_weight, t0, chunk_size)
    audio0 = t0 >= audio_offset
    w0 = torch.where(audio0, audio_weight, 1.0)

    hs, ts, streams = [], [], []
    for k in range(1, n_streams):
        sel = mask[..., k]
        hs.append(h[sel] + stream_embeddings[k - 1])
        ts.append(targets[..., k][sel] - audio_offset)
        streams.append(torch.full_like(ts[-1], k))
    if hs:
        ta = torch.cat(ts)
        if ta.numel() and (ta.min() < 0 or ta.max() >= audio_size):
            raise ValueError("a target of streams 1..K-1 is not an audio id")
        head_audio = head_weight[audio_offset : audio_offset + audio_size]
        nlla, preda = linear_cross_entropy(torch.cat(hs), head_audio, ta, chunk_size)
        stream_of = torch.cat(streams)
    else:
        ta = nlla = preda = stream_of = t0.new_zeros(0)

    n0 = sel0.sum()
    total = (w0 * nll0).sum() + audio_weight * nlla.sum()
    loss = total / n0.clamp(min=1)

    with torch.no_grad():
        correct0 = pred0 == t0
        correcta = preda == ta
        stats = {
            "loss_text": _mean_or_nan(nll0[~audio0]),
            "loss_audio": _mean_or_nan(torch.cat([nll0[audio0], nlla.float()])),
            "acc_text": _mean_or_nan(correct0[~audio0]),
            "acc_stream0": _mean_or_nan(correct0),
        }
        for k in range(1, n_streams):
            stats[f"acc_stream{k}"] = _mean_or_nan(correcta[stream_of == k])
    return MultiStreamLoss(loss, n0, stats)
