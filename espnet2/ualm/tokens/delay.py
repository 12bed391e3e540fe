"""MusicGen delay pattern: codebook k is shifted right by k frames.

With the shift, one autoregressive step emits one code of every codebook,
and the code of codebook k at frame t is predicted after codebooks 0..k-1 of
frame t are known. ``T`` frames of ``K`` codebooks take ``T + K - 1`` steps;
the holes are filled with each codebook's own pad value.
"""

from typing import Optional, Sequence, Union

import torch

PadValues = Union[int, float, bool, Sequence[int], torch.Tensor]


def _fill_values(pad: PadValues, n_codebooks: int, like: torch.Tensor) -> torch.Tensor:
    values = torch.as_tensor(pad, dtype=like.dtype, device=like.device)
    if values.dim() == 0:
        values = values.expand(n_codebooks)
    if values.shape != (n_codebooks,):
        raise ValueError(f"need one pad value per codebook ({n_codebooks}), got {pad}")
    return values


def delay_interleave(frames: torch.Tensor, pad: PadValues) -> torch.Tensor:
    """``[..., T, K]`` frames -> ``[..., T + K - 1, K]`` delayed steps.

    ``out[..., t + k, k] = frames[..., t, k]``; every other entry of column
    ``k`` is ``pad[k]`` (``pad`` may be one value for all codebooks). Works
    for ids and for boolean masks alike.
    """
    if frames.dim() < 2:
        raise ValueError(f"frames must be [..., T, K], got shape {tuple(frames.shape)}")
    n_frames, n_codebooks = frames.shape[-2], frames.shape[-1]
    fill = _fill_values(pad, n_codebooks, frames)
    shape = (*frames.shape[:-2], n_frames + n_codebooks - 1, n_codebooks)
    out = fill.expand(shape).clone()
    for k in range(n_codebooks):
        out[..., k : k + n_frames, k] = frames[..., k]
    return out


def delay_deinterleave(
    steps: torch.Tensor, n_codebooks: Optional[int] = None
) -> torch.Tensor:
    """Inverse of ``delay_interleave``: ``[..., S, K]`` -> ``[..., S - K + 1, K]``."""
    n_codebooks = steps.shape[-1] if n_codebooks is None else n_codebooks
    if steps.shape[-1] != n_codebooks:
        raise ValueError(f"steps have {steps.shape[-1]} streams, not {n_codebooks}")
    n_frames = steps.shape[-2] - n_codebooks + 1
    if n_frames < 0:
        raise ValueError(
            f"{steps.shape[-2]} steps are fewer than the {n_codebooks - 1} delay steps"
        )
    return torch.stack(
        [steps[..., k : k + n_frames, k] for k in range(n_codebooks)], dim=-1
    )


def delay_holes(
    step: torch.Tensor, n_frames: torch.Tensor, n_codebooks: int
) -> torch.Tensor:
    """Which codebooks hold a pad at delayed ``step`` (``[...]`` each) of a
    segment of ``n_frames`` frames: ``[..., K]`` bool.

    Column ``k`` at step ``s`` carries frame ``s - k`` (``delay_interleave``),
    a hole before frame 0 and from frame ``n_frames`` on.
    """
    frame = step[..., None] - torch.arange(n_codebooks, device=step.device)
    return (frame < 0) | (frame >= n_frames[..., None])


def delay_length(n_frames: int, n_codebooks: int) -> int:
    """Steps that ``n_frames`` frames of ``n_codebooks`` take once delayed."""
    return n_frames + n_codebooks - 1
