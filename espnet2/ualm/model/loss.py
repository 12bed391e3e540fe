"""Multi-stream cross-entropy over one shared LM head, without full logits.

Stream 0 predicts over the whole vocabulary. Streams 1..K-1 (their hidden
state plus the stream's embedding) predict over audio ids only, restricted
by ``audio_softmax``:

- ``"codebook"`` (default): stream k over its own codebook's rows
  (``codebook_size`` codes + that codebook's pad: 1,025 for X-codec), the
  range inference masks stream k to (``UALMModel.stream_logits``,
  ``restrict="codebook"``). Training and sampling then use the same
  distribution, and the logits cost ``K - 1`` x 1,025 columns per audio
  frame instead of ``(K - 1)`` x 8,200.
- ``"audio"``: stream k over all ``K`` x 1,025 audio rows (the spec's
  "restricted to audio ids" read literally; also pushes down the other
  codebooks' ids, which inference never samples for stream k).

Logits are computed only at target positions, in chunks of at most
``chunk_size`` rows; with gradients and more rows than that, each chunk is
recomputed in the backward pass instead of kept (a 152k-row head times 16k
positions would not fit otherwise).

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

AUDIO_SOFTMAX = ("codebook", "audio")


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
    if hidden.shape[0] <= chunk_size:
        return _chunk_cross_entropy(hidden, weight, targets)
    nll, pred = [], []
    for i in range(0, hidden.shape[0], chunk_size):
        args = (hidden[i : i + chunk_size], weight, targets[i : i + chunk_size])
        if torch.is_grad_enabled():
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
    """Loss (already normalised), its normaliser and per-stream details;
    with ``per_target``, every target's weighted NLL and where it is."""

    loss: torch.Tensor
    n_stream0_targets: torch.Tensor
    stats: Dict[str, torch.Tensor]
    # [N] weighted NLL of each target (the loss is their sum / n_stream0_targets)
    target_nll: Optional[torch.Tensor] = None
    # [N] flat index b * (T - 1) + t of the position predicting each target
    target_position: Optional[torch.Tensor] = None


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
    audio_softmax: str = "codebook",
    per_target: bool = False,
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
        chunk_size: rows of logits computed at once (per call of
            ``linear_cross_entropy``: stream 0, then each audio stream).
        audio_size: audio rows of the head (default: all rows from
            ``audio_offset``); ``K`` codebooks of equal size, codebook ``k``
            (pad included) at ``audio_offset + k * audio_size // K``.
        audio_softmax: ``"codebook"`` (stream k over its own codebook's
            rows, as inference samples it) or ``"audio"`` (over all audio
            rows); see the module docstring. Targets outside the range raise.
        per_target: also return each target's weighted NLL and position
            (sequence log-probabilities for preference optimisation).
    """
    if audio_softmax not in AUDIO_SOFTMAX:
        raise ValueError(
            f"audio_softmax must be one of {AUDIO_SOFTMAX}, got {audio_softmax!r}"
        )
    n_streams = ids.shape[-1]
    audio_size = (
        head_weight.shape[0] - audio_offset if audio_size is None else audio_size
    )
    if audio_softmax == "codebook" and audio_size % n_streams:
        raise ValueError(
            f"{audio_size} audio rows do not split into {n_streams} codebooks"
        )
    codebook_rows = audio_size // n_streams
    targets, mask, h = ids[:, 1:], loss_mask[:, 1:].bool(), hidden[:, :-1]

    sel0 = mask[..., 0]
    t0 = targets[..., 0][sel0]
    nll0, pred0 = linear_cross_entropy(h[sel0], head_weight, t0, chunk_size)
    audio0 = t0 >= audio_offset
    w0 = torch.where(audio0, audio_weight, 1.0)

    # sliced once: each slice's backward writes a zero gradient of its base
    head_audio = head_weight[audio_offset : audio_offset + audio_size]
    hs, ts, streams = [], [], []
    for k in range(1, n_streams):
        sel = mask[..., k]
        hs.append(h[sel] + stream_embeddings[k - 1])
        ts.append(targets[..., k][sel] - audio_offset)
        streams.append(torch.full_like(ts[-1], k))
    if hs:
        ta, stream_of = torch.cat(ts), torch.cat(streams)
        if audio_softmax == "codebook":
            low = stream_of * codebook_rows
            outside = (ta < low) | (ta >= low + codebook_rows)
            what = "its own codebook's ids"
        else:
            outside = (ta < 0) | (ta >= audio_size)
            what = "an audio id"
        if ta.numel() and bool(outside.any()):
            raise ValueError(f"a target of streams 1..K-1 is not {what}")
        if audio_softmax == "codebook":
            nlls, preds = [], []
            for k, hk, tk in zip(range(1, n_streams), hs, ts):
                low = k * codebook_rows
                nll, pred = linear_cross_entropy(
                    hk, head_audio[low : low + codebook_rows], tk - low, chunk_size
                )
                nlls.append(nll)
                preds.append(pred + low)
            nlla, preda = torch.cat(nlls), torch.cat(preds)
        else:
            nlla, preda = linear_cross_entropy(
                torch.cat(hs), head_audio, ta, chunk_size
            )
    else:
        ta = nlla = preda = stream_of = t0.new_zeros(0)

    n0 = sel0.sum()
    total = (w0 * nll0).sum() + audio_weight * nlla.sum()
    loss = total / n0.clamp(min=1)
    target_nll = target_position = None
    if per_target:
        # boolean indexing is row-major, so these follow nll0 and nlla
        positions = [sel0.flatten().nonzero().squeeze(1)]
        positions += [
            mask[..., k].flatten().nonzero().squeeze(1) for k in range(1, n_streams)
        ]
        target_nll = torch.cat([w0 * nll0, audio_weight * nlla.float()])
        target_position = torch.cat(positions)

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
    return MultiStreamLoss(loss, n0, stats, target_nll, target_position)
