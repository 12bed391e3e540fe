"""Log-magnitude STFT frames at the codec frame rate, and Griffin-Lim back.

Frame ``t`` is centred on sample ``t * hop`` with zero padding around the
signal (not reflection), so a row's frames do not depend on what follows its
last valid sample: a zero-padded batch gives the same frames as one row alone.
A linear frequency axis (not mel) keeps the resolution that the pitch of tones
and harmonics needs (``n_fft = 1024`` at 16 kHz: 15.6 Hz bins).
"""

import math
from typing import Optional

import torch


def log_magnitude(
    wav: torch.Tensor,
    n_fft: int,
    win_length: int,
    hop_length: int,
    n_frames: int,
    log_floor: float,
) -> torch.Tensor:
    """``[N]`` waveform -> ``[n_frames, n_fft // 2 + 1]`` log magnitudes.

    The waveform is cut or zero-padded to ``n_frames * hop_length`` samples;
    magnitudes below ``log_floor`` are raised to it so silence is one point.
    """
    n = n_frames * hop_length
    x = wav[:n].float()
    x = torch.nn.functional.pad(x, (0, n - x.shape[0]))
    spec = torch.stft(
        x,
        n_fft=n_fft,
        hop_length=hop_length,
        win_length=win_length,
        window=torch.hann_window(win_length, device=x.device),
        center=True,
        pad_mode="constant",
        return_complex=True,
    )  # [F, n_frames + 1]
    return spec.abs().clamp_min(log_floor).log().T[:n_frames]


def griffin_lim(
    magnitude: torch.Tensor,
    n_fft: int,
    win_length: int,
    hop_length: int,
    n_iter: int = 64,
    momentum: float = 0.99,
    generator: Optional[torch.Generator] = None,
) -> torch.Tensor:
    """``[T, F]`` magnitudes -> ``[T * hop_length]`` waveform (fast Griffin-Lim).

    Own loop rather than ``torchaudio.functional.griffinlim`` because the
    random initial phase comes from ``generator``: decoding is deterministic
    and does not depend on the global random state or on the batch.
    """
    n_frames = magnitude.shape[0]
    length = n_frames * hop_length
    if n_frames == 0:
        return magnitude.new_zeros(0)
    window = torch.hann_window(win_length, device=magnitude.device)
    # One more (silent) frame, centred on sample T * hop, as log_magnitude drops.
    mag = torch.cat([magnitude, magnitude.new_zeros(1, magnitude.shape[1])]).T
    phase = torch.rand(mag.shape, generator=generator) * (2 * math.pi)
    angles = torch.polar(torch.ones_like(mag), phase.to(mag.device))

    def istft(a: torch.Tensor) -> torch.Tensor:
        return torch.istft(
            mag * a,
            n_fft,
            hop_length,
            win_length,
            window=window,
            center=True,
            length=length,
        )

    def stft(y: torch.Tensor) -> torch.Tensor:
        return torch.stft(
            y,
            n_fft,
            hop_length,
            win_length,
            window=window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )

    previous = torch.zeros_like(angles)
    for _ in range(n_iter):
        rebuilt = stft(istft(angles))
        angles = rebuilt - previous * (momentum / (1 + momentum))
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return istft(angles)
