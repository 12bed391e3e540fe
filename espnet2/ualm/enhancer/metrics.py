"""Measures of an enhanced clip against its 48 kHz stereo reference.

All are computed per channel on STFT magnitudes (the codec does not keep the
phase, so waveform distances say nothing), with magnitudes scaled so that a
full-scale sine peaks at 0 dB and floored at ``floor_db`` (default -80 dB,
below the quietest content of the mini corpus, about -65 dB).

* ``lsd_db``: log-spectral distance, full band; ``lsd_high_db``: the same on
  the bins above ``high_hz`` (8 kHz, the Nyquist frequency of the codec);
* ``mrstft``: multi-resolution STFT distance (spectral convergence plus mean
  absolute natural-log magnitude difference, averaged over 3 FFT sizes);
* ``ild_error_db``: mean absolute error of the inter-channel level
  difference ``10 log10(E_left / E_right)`` over the reference's active frames.
"""

from typing import Dict, Sequence

import numpy as np
import torch

MRSTFT_FFT_SIZES = (512, 1024, 2048)


def _as_channels(wav: np.ndarray) -> torch.Tensor:
    """``[C, N]`` or ``[N, C]`` (C <= 2) or ``[N]`` -> float64 ``[C, N]``."""
    x = torch.as_tensor(np.asarray(wav), dtype=torch.float64)
    if x.dim() == 1:
        x = x[None]
    if x.shape[0] > x.shape[1]:
        x = x.T
    return x


def power_spectrogram(
    wav: torch.Tensor, n_fft: int = 2048, hop_length: int = 512
) -> torch.Tensor:
    """``[C, N]`` -> ``[C, F, T]`` power, a full-scale sine peaking at 1."""
    window = torch.hann_window(n_fft, dtype=wav.dtype)
    spec = torch.stft(
        wav,
        n_fft,
        hop_length,
        window=window,
        center=True,
        return_complex=True,
    )
    return spec.abs().pow(2) * (2.0 / float(window.sum())) ** 2


def _match(ref: torch.Tensor, est: torch.Tensor) -> tuple:
    """Cut both to the shorter length; a mono estimate is compared with every
    reference channel."""
    n = min(ref.shape[-1], est.shape[-1])
    ref, est = ref[..., :n], est[..., :n]
    if est.shape[0] != ref.shape[0]:
        est = est.expand(ref.shape[0], -1)
    return ref, est


def log_spectral_distance(
    ref: torch.Tensor,
    est: torch.Tensor,
    sample_rate: int,
    min_hz: float = 0.0,
    floor_db: float = -80.0,
    n_fft: int = 2048,
) -> float:
    """``mean_(channel, frame) sqrt(mean_bin (dB_ref - dB_est)^2)`` over the
    bins at or above ``min_hz``."""
    floor = 10.0 ** (floor_db / 10.0)
    p_ref = power_spectrogram(ref, n_fft, n_fft // 4).clamp_min(floor)
    p_est = power_spectrogram(est, n_fft, n_fft // 4).clamp_min(floor)
    freqs = torch.arange(p_ref.shape[1]) * sample_rate / n_fft
    keep = freqs >= min_hz
    diff = 10.0 * (p_ref[:, keep].log10() - p_est[:, keep].log10())
    return float(diff.pow(2).mean(dim=1).sqrt().mean())


def mrstft_distance(
    ref: torch.Tensor,
    est: torch.Tensor,
    fft_sizes: Sequence[int] = MRSTFT_FFT_SIZES,
    floor_db: float = -80.0,
) -> float:
    """Mean over FFT sizes of spectral convergence + mean |ln|X| - ln|Y||."""
    floor = 10.0 ** (floor_db / 20.0)
    total = 0.0
    for n_fft in fft_sizes:
        m_ref = power_spectrogram(ref, n_fft, n_fft // 4).sqrt().clamp_min(floor)
        m_est = power_spectrogram(est, n_fft, n_fft // 4).sqrt().clamp_min(floor)
        sc = torch.linalg.vector_norm(m_ref - m_est, dim=(1, 2)) / (
            torch.linalg.vector_norm(m_ref, dim=(1, 2))
        )
        log_l1 = (m_ref.log() - m_est.log()).abs().mean(dim=(1, 2))
        total += float((sc + log_l1).mean())
    return total / len(fft_sizes)


def ild_error(
    ref: torch.Tensor,
    est: torch.Tensor,
    floor_db: float = -80.0,
    active_db: float = -40.0,
    n_fft: int = 2048,
) -> float:
    """Mean ``|ILD_est - ILD_ref|`` (dB) over frames whose reference level is
    within ``active_db`` of the clip's loudest frame. NaN for mono references."""
    if ref.shape[0] != 2:
        return float("nan")
    floor = 10.0 ** (floor_db / 10.0)
    e_ref = power_spectrogram(ref, n_fft, n_fft // 4).sum(dim=1) + floor
    e_est = power_spectrogram(est, n_fft, n_fft // 4).sum(dim=1) + floor
    level = e_ref.sum(dim=0)
    active = level >= level.max() * 10.0 ** (active_db / 10.0)
    ild_ref = 10.0 * (e_ref[0] / e_ref[1]).log10()
    ild_est = 10.0 * (e_est[0] / e_est[1]).log10()
    return float((ild_ref - ild_est).abs()[active].mean())


def enhancement_metrics(
    ref: np.ndarray,
    est: np.ndarray,
    sample_rate: int,
    high_hz: float = 8000.0,
    floor_db: float = -80.0,
) -> Dict[str, float]:
    """Every measure of one clip: ``ref`` and ``est`` are ``[C, N]`` or ``[N, C]``
    at ``sample_rate``."""
    ref_t, est_t = _match(_as_channels(ref), _as_channels(est))
    return dict(
        lsd_db=log_spectral_distance(ref_t, est_t, sample_rate, 0.0, floor_db),
        lsd_high_db=log_spectral_distance(ref_t, est_t, sample_rate, high_hz, floor_db),
        mrstft=mrstft_distance(ref_t, est_t, floor_db=floor_db),
        ild_error_db=ild_error(ref_t, est_t, floor_db),
    )
