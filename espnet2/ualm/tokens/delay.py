"""Delay patterns: codebook k is shifted right by ``delays[k]`` frames.

MusicGen's pattern (the default, ``delays = (0, 1, ..., K - 1)``): one
autoregressive step emits one code of every codebook, and the code of
codebook k at frame t is predicted after codebooks 0..k-1 of frame t are
known. All-zero delays lay the codebooks out in parallel. ``T`` frames take
``T + max(delays)`` steps; the holes are filled with each codebook's own pad
value. The pattern of a model is its vocabulary's ``audio_delays``
(``AudioLayout``).
"""

from typing import Optional, Sequence, Tuple, Union

import torch

PadValues = Union[int, float, bool, Sequence[int], torch.Tensor]
Delays = Optional[Sequence[int]]


def _fill_values(pad: PadValues, n_codebooks: int, like: torch.Tensor) -> torch.Tensor:
    values = torch.as_tensor(pad, dtype=like.dtype, device=like.device)
    if values.dim() == 0:
        values = values.expand(n_codebooks)
    if values.shape != (n_codebooks,):
        raise ValueError(f"need one pad value per codebook ({n_codebooks}), got {pad}")
    return values


def resolve_delays(delays: Delays, n_codebooks: int) -> Tuple[int, ...]:
    """``delays`` as a tuple (``None``: MusicGen's ``0..K-1``), checked."""
    if delays is None:
        return tuple(range(n_codebooks))
    delays = tuple(int(d) for d in delays)
    if len(delays) != n_codebooks or min(delays) < 0:
        raise ValueError(f"need one delay >= 0 per codebook ({n_codebooks}): {delays}")
    return delays


def delay_interleave(
    frames: torch.Tensor, pad: PadValues, delays: Delays = None
) -> torch.Tensor:
    """``[..., T, K]`` frames -> ``[..., T + max(delays), K]`` delayed steps.

    ``out[..., t + delays[k], k] = frames[..., t, k]``; every other entry of
    column ``k`` is ``pad[k]`` (``pad`` may be one value for all codebooks).
    Works for ids and for boolean masks alike.
    """
    if frames.dim() < 2:
        raise ValueError(f"frames must be [..., T, K], got shape {tuple(frames.shape)}")
    n_frames, n_codebooks = frames.shape[-2], frames.shape[-1]
    delays = resolve_delays(delays, n_codebooks)
    fill = _fill_values(pad, n_codebooks, frames)
    shape = (*frames.shape[:-2], n_frames + max(delays), n_codebooks)
    out = fill.expand(shape).clone()
    for k, d in enumerate(delays):
        out[..., d : d + n_frames, k] = frames[..., k]
    return out


def delay_deinterleave(
    steps: torch.Tensor, n_codebooks: Optional[int] = None, delays: Delays = None
) -> torch.Tensor:
    """Inverse of ``delay_interleave``: ``[..., S, K]`` steps ->
    ``[..., S - max(delays), K]`` frames."""
    n_codebooks = steps.shape[-1] if n_codebooks is None else n_codebooks
    if steps.shape[-1] != n_codebooks:
        raise ValueError(f"steps have {steps.shape[-1]} streams, not {n_codebooks}")
    delays = resolve_delays(delays, n_codebooks)
    n_frames = steps.shape[-2] - max(delays)
    if n_frames < 0:
        raise ValueError(
            f"{steps.shape[-2]} steps are fewer than the {max(delays)} delay steps"
        )
    return torch.stack(
        [steps[..., d : d + n_frames, k] for k, d in enumerate(delays)], dim=-1
    )


def delay_holes(
    step: torch.Tensor,
    n_frames: torch.Tensor,
    n_codebooks: int,
    delays: Union[Delays, torch.Tensor] = None,
) -> torch.Tensor:
    """Which codebooks hold a pad at delayed ``step`` (``[...]`` each) of a
    segment of ``n_frames`` frames: ``[..., K]`` bool.

    Column ``k`` at step ``s`` carries frame ``s - delays[k]``
    (``delay_interleave``), a hole before frame 0 and from ``n_frames`` on.
    ``delays`` may be a ``[K]`` tensor on ``step``'s device (a decode loop's,
    made once).
    """
    if isinstance(delays, torch.Tensor):
        shift = delays
    else:
        shift = torch.tensor(resolve_delays(delays, n_codebooks), device=step.device)
    frame = step[..., None] - shift
    return (frame < 0) | (frame >= n_frames[..., None])


def delay_length(n_frames: int, n_codebooks: int, delays: Delays = None) -> int:
    """Steps that ``n_frames`` frames of ``n_codebooks`` take once delayed."""
    return n_frames + max(resolve_delays(delays, n_codebooks))
