"""Speech-synthesis measures: mel-cepstral distortion after DTW (MCD).

MCD compares the spectral envelope of generated speech with a reference
rendering of the same text and voice, frame by frame after dynamic time
warping, so that it measures *what* is said and *how it sounds* without
asking the two to have the same timing:

    MCD = (10 / ln 10) * sqrt(2 * sum_{d=1..D} (c_d - c'_d) ** 2)   [dB]

averaged over the frame pairs of the DTW path (Kubichek 1993; c0, the
level, is left out). The mel-cepstrum ``c`` is the cepstrum of the natural
log mel-filterbank amplitude (a DCT-II of the log mel spectrum, scaled so
that ``ln A(w) = c0 + 2 sum c_d cos(d w)``), the convention of SPTK's mel
cepstra, so values are in the usual dB range (lower is better).

It is implemented here rather than taken from a package: ``pymcd`` needs
``pysptk`` (a compiled SPTK build that the pinned venv does not have), and
``mel-cepstral-distance`` aligns with ``fastdtw``, whose pure-Python fallback
is far too slow for the all-pairs distances that the permutation test and
the chance level reuse; librosa (installed) gives the mel filterbank and a
numba DTW.
"""

import math
from typing import Optional, Sequence, Tuple

import numpy as np

from espnet2.ualm.scoring.embeddings import resample

MCD_SAMPLE_RATE = 16000
N_FFT = 512  # 32 ms windows
HOP = 80  # 5 ms frames (as ESPnet's evaluate_mcd)
N_MELS = 80
ORDER = 24  # c1..c24, the usual mel-cepstrum order of MCD
FLOOR_DB = 80.0  # log-mel floor below each clip's peak: gain-invariant silence
_MCD_SCALE = 10.0 / math.log(10.0) * math.sqrt(2.0)


def _mel_basis() -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=MCD_SAMPLE_RATE, n_fft=N_FFT, n_mels=N_MELS)


_BASIS: Optional[np.ndarray] = None


def mel_cepstrum(wav: np.ndarray, rate: int, order: int = ORDER) -> np.ndarray:
    """``[frames, order]`` mel-cepstra c1..c_order of a mono waveform (resampled
    to 16 kHz; peak-normalised, log floor ``FLOOR_DB`` below the clip's peak,
    so a louder or quieter copy gives the same cepstra)."""
    global _BASIS
    if _BASIS is None:
        _BASIS = _mel_basis()
    x = resample(np.asarray(wav, dtype=np.float64), int(rate), MCD_SAMPLE_RATE)
    peak = float(np.max(np.abs(x))) if x.size else 0.0
    if peak > 0:
        x = x / peak
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    n = 1 + (len(x) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None] + HOP * np.arange(n)[:, None]
    power = np.abs(np.fft.rfft(x[idx] * np.hanning(N_FFT), axis=1)) ** 2
    mel = power @ _BASIS.T
    log_power = np.log(np.maximum(mel, 1e-30))
    log_power = np.maximum(log_power, log_power.max() - FLOOR_DB * math.log(10) / 10)
    log_amp = 0.5 * log_power  # [frames, N_MELS]
    m = np.arange(N_MELS)
    d = np.arange(1, order + 1)
    basis = np.cos(np.pi * d[:, None] * (m[None, :] + 0.5) / N_MELS) / N_MELS
    return log_amp @ basis.T


def mcd_from_cepstra(a: np.ndarray, b: np.ndarray) -> float:
    """MCD (dB) of two ``[frames, order]`` mel-cepstrum sequences after DTW
    (euclidean frame cost): the mean distortion over the path's frame pairs."""
    import librosa

    if len(a) == 0 or len(b) == 0:
        return float("nan")
    _, path = librosa.sequence.dtw(X=a.T, Y=b.T, metric="euclidean")
    diff = a[path[:, 0]] - b[path[:, 1]]
    return float(_MCD_SCALE * np.mean(np.sqrt(np.sum(diff**2, axis=1))))


def mel_cepstral_distortion(
    gen: Tuple[np.ndarray, int], ref: Tuple[np.ndarray, int]
) -> float:
    """MCD (dB) after DTW between a generated ``(wav, rate)`` and a reference."""
    return mcd_from_cepstra(mel_cepstrum(*gen), mel_cepstrum(*ref))


class PairwiseMCD:
    """MCD of generated item i against reference j, computed once per pair.

    The score itself, its chance level (another item's reference against this
    reference) and the permutation test (another item's generated speech
    against this reference) all reuse the same pairs.
    """

    def __init__(
        self,
        gen: Sequence[Tuple[np.ndarray, int]],
        ref: Sequence[Tuple[np.ndarray, int]],
    ) -> None:
        self.gen = [mel_cepstrum(*g) for g in gen]
        self.ref = [mel_cepstrum(*r) for r in ref]
        self._cache: dict = {}

    def __call__(self, i: int, j: int, gen_side: bool = True) -> float:
        """MCD of (generated i if ``gen_side`` else reference i) vs reference j."""
        key = (gen_side, i, j)
        if key not in self._cache:
            src = self.gen[i] if gen_side else self.ref[i]
            self._cache[key] = mcd_from_cepstra(src, self.ref[j])
        return self._cache[key]

    def per_item(self, partner: Optional[Sequence[int]] = None) -> np.ndarray:
        """MCD of every reference j against generated ``partner[j]`` (default:
        its own generated speech)."""
        n = len(self.ref)
        src = range(n) if partner is None else partner
        return np.array([self(int(i), j) for j, i in zip(range(n), src)])
