"""Reconstruction quality of a codec: is the decoded audio the encoded audio?

Phase-free measures first, because a codec may re-estimate phase (Griffin-Lim)
and still sound right: log-spectral distance, the pitch of tonal frames, the
time of the first onset. The waveform SNR is reported too, but it is only
meaningful for codecs that keep the phase.
All functions take 1-D numpy arrays or torch tensors; ``est`` is cut to the
length of ``ref`` (or ``ref`` to ``est``) before comparing.
"""

from typing import Dict, Optional, Tuple, Union

import numpy as np
import torch

Array = Union[np.ndarray, torch.Tensor]


def _as_numpy(x: Array) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D waveform, got shape {x.shape}")
    return x


def _aligned(ref: Array, est: Array) -> Tuple[np.ndarray, np.ndarray]:
    ref, est = _as_numpy(ref), _as_numpy(est)
    n = min(len(ref), len(est))
    return ref[:n], est[:n]


def _power_spectrogram(
    x: np.ndarray, n_fft: int, hop_length: int, win_length: int
) -> np.ndarray:
    """``[frames, n_fft // 2 + 1]`` power, frames centred on ``t * hop_length``."""
    pad = win_length // 2
    x = np.pad(x, (pad, pad))
    n_frames = max(1, 1 + (len(x) - win_length) // hop_length)
    x = np.pad(x, (0, max(0, (n_frames - 1) * hop_length + win_length - len(x))))
    index = np.arange(win_length)[None, :] + hop_length * np.arange(n_frames)[:, None]
    frames = x[index] * np.hanning(win_length + 2)[1:-1]
    return np.abs(np.fft.rfft(frames, n=n_fft, axis=1)) ** 2


def log_spectral_distance(
    ref: Array,
    est: Array,
    n_fft: int = 1024,
    hop_length: int = 256,
    floor_db: float = -80.0,
) -> float:
    """Mean over frames of the RMS difference (dB) of the power spectra.

    Powers more than ``-floor_db`` dB below the reference's peak are raised to
    that floor, so that the noise floor of silent parts does not dominate.
    """
    ref, est = _aligned(ref, est)
    p_ref = _power_spectrogram(ref, n_fft, hop_length, n_fft)
    p_est = _power_spectrogram(est, n_fft, hop_length, n_fft)
    floor = max(p_ref.max(), 1e-20) * 10 ** (floor_db / 10)
    diff = 10 * np.log10(np.maximum(p_ref, floor)) - 10 * np.log10(
        np.maximum(p_est, floor)
    )
    return float(np.mean(np.sqrt(np.mean(diff**2, axis=1))))


def _pitch_spectrogram(
    x: np.ndarray,
    sample_rate: int,
    hop_length: Optional[int],
    win_length: Optional[int],
) -> Tuple[np.ndarray, int]:
    """Power for pitch tracking: 10 ms hop, ~64 ms window, zero-padded 4 times."""
    hop_length = hop_length or max(1, sample_rate // 100)
    win_length = win_length or 2 ** int(np.ceil(np.log2(0.064 * sample_rate)))
    n_fft = 4 * win_length
    return _power_spectrogram(x, n_fft, hop_length, win_length) + 1e-30, n_fft


def _peak_bins(log_power: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """Fractional bins of the peaks at integer ``bins`` (parabolic interpolation)."""
    left = log_power[..., np.maximum(bins - 1, 0)]
    right = log_power[..., np.minimum(bins + 1, log_power.shape[-1] - 1)]
    centre = log_power[..., bins]
    denom = left - 2 * centre + right
    ok = np.abs(denom) > 1e-12
    offset = np.where(ok, 0.5 * (left - right) / np.where(ok, denom, 1.0), 0.0)
    return bins + np.clip(offset, -0.5, 0.5)


def dominant_frequency(
    wav: Array,
    sample_rate: int,
    hop_length: Optional[int] = None,
    win_length: Optional[int] = None,
    tonal_db: float = 20.0,
    energy_db: float = -40.0,
    fmin: float = 50.0,
) -> Tuple[np.ndarray, np.ndarray]:
    """Per-frame frequency (Hz) of the strongest spectral peak, and a tonal mask.

    A frame is tonal when its peak stands ``tonal_db`` above the median power
    within 250 Hz of it (band-limited noise: about 10 dB, a tone: over 40 dB)
    and its energy is within ``-energy_db`` dB of the loudest frame.
    """
    x = _as_numpy(wav)
    power, n_fft = _pitch_spectrogram(x, sample_rate, hop_length, win_length)
    lo = int(np.ceil(fmin * n_fft / sample_rate))
    log_power = np.log(power)
    peak = lo + np.argmax(power[:, lo:], axis=1)
    rows = np.arange(len(peak))
    freq = np.array([_peak_bins(log_power[r], peak[r : r + 1])[0] for r in rows]) * (
        sample_rate / n_fft
    )
    half = max(2, int(250 * n_fft / sample_rate))
    local_median = np.array(
        [
            np.median(power[r, max(0, p - half) : p + half + 1])
            for r, p in enumerate(peak)
        ]
    )
    prominence_db = 10 * np.log10(power[rows, peak] / local_median)
    energy = power.sum(axis=1)
    loud = 10 * np.log10(energy / energy.max()) > energy_db
    return freq, loud & (prominence_db > tonal_db)


def strong_peaks(
    power: np.ndarray,
    sample_rate: int,
    n_fft: int,
    within_db: float = 6.0,
    fmin: float = 50.0,
) -> np.ndarray:
    """Frequencies (Hz) of the local maxima of one power spectrum that lie within
    ``within_db`` dB of its strongest peak (the notes of a chord, the loudest
    harmonics of a voice); at least the strongest bin above ``fmin``."""
    lo = max(1, int(np.ceil(fmin * n_fft / sample_rate)))
    inner = np.arange(lo, len(power) - 1)
    top = power[lo:].max()
    is_peak = (power[inner] > power[inner - 1]) & (power[inner] >= power[inner + 1])
    strong = power[inner] >= top * 10 ** (-within_db / 10)
    bins = inner[is_peak & strong]
    if len(bins) == 0:
        bins = np.array([lo + int(np.argmax(power[lo:]))])
    return _peak_bins(np.log(power), bins) * (sample_rate / n_fft)


def pitch_error(ref: Array, est: Array, sample_rate: int) -> Dict[str, float]:
    """Pitch kept? Cents between ``est``'s dominant frequency and ``ref``'s pitch.

    On each tonal frame of ``ref``, the error is the distance from ``est``'s
    strongest peak to the nearest of ``ref``'s strong peaks (within 6 dB of its
    strongest), so that a chord whose equally loud notes swap places is not an
    error, while a shifted note or a lost tone is. Returns ``pitch_cents``
    (median), ``pitch_gross`` (fraction of frames off by more than 50 cents, a
    quarter tone) and ``tonal_frames``; errors are NaN without tonal frames.
    """
    ref, est = _aligned(ref, est)
    _, tonal = dominant_frequency(ref, sample_rate)
    f_est, _ = dominant_frequency(est, sample_rate)
    n = int(tonal.sum())
    if n == 0:
        return dict(pitch_cents=float("nan"), pitch_gross=float("nan"), tonal_frames=0)
    power, n_fft = _pitch_spectrogram(ref, sample_rate, None, None)
    cents = np.array(
        [
            np.min(
                1200
                * np.abs(np.log2(f_est[t] / strong_peaks(power[t], sample_rate, n_fft)))
            )
            for t in np.flatnonzero(tonal)
        ]
    )
    return dict(
        pitch_cents=float(np.median(cents)),
        pitch_gross=float(np.mean(cents > 50)),
        tonal_frames=n,
    )


def onset_time(wav: Array, sample_rate: int, threshold_db: float = -30.0) -> float:
    """Time (s) at which the 5 ms RMS envelope first rises above ``threshold_db``
    relative to its peak (the end of that 5 ms window); NaN for silence."""
    x = _as_numpy(wav)
    win = max(1, int(0.005 * sample_rate))
    if len(x) < win:
        return float("nan")
    envelope = np.sqrt(np.convolve(x**2, np.ones(win) / win, mode="valid"))
    if envelope.max() <= 0:
        return float("nan")
    above = np.flatnonzero(envelope > envelope.max() * 10 ** (threshold_db / 20))
    return float((above[0] + win - 1) / sample_rate)


def onset_error_ms(ref: Array, est: Array, sample_rate: int) -> float:
    """Absolute difference (ms) between the first onsets of ``ref`` and ``est``."""
    ref, est = _aligned(ref, est)
    return 1000 * abs(onset_time(ref, sample_rate) - onset_time(est, sample_rate))


def snr_db(ref: Array, est: Array) -> float:
    """Waveform SNR (dB); near or below 0 for codecs that do not keep phase."""
    ref, est = _aligned(ref, est)
    noise = np.sum((ref - est) ** 2)
    return float(10 * np.log10(max(np.sum(ref**2), 1e-20) / max(noise, 1e-20)))


def reconstruction_metrics(
    ref: Array, est: Array, sample_rate: int
) -> Dict[str, float]:
    """All of the above for one clip, as a flat dict of floats."""
    out = dict(
        lsd_db=log_spectral_distance(ref, est),
        onset_error_ms=onset_error_ms(ref, est, sample_rate),
        snr_db=snr_db(ref, est),
    )
    out.update(pitch_error(ref, est, sample_rate))
    return out
