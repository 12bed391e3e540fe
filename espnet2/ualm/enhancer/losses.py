"""Reconstruction losses of the Enhancement VAE (the paper's generator loss
without its adversarial and feature-matching terms, which come from
``espnet2.gan_tts.hifigan.loss``).

* stereo multi-resolution STFT: spectral convergence + log-magnitude L1 at
  several FFT sizes, on the left and right channels and on mid and side;
* multi-scale log-mel L1 (ESPnet's HiFi-GAN ``MelSpectrogramLoss`` per scale);
* KL divergence of the latent posterior from N(0, I).

Waveforms are ``[B, C, N]``; channels are folded into the batch.
"""

from typing import Optional, Sequence, Tuple

import torch

from espnet2.gan_tts.hifigan.loss import MelSpectrogramLoss


def fold_channels(wav: torch.Tensor) -> torch.Tensor:
    """``[B, C, N]`` -> ``[B * C, N]``."""
    return wav.reshape(-1, wav.shape[-1])


class StereoSTFTLoss(torch.nn.Module):
    """Multi-resolution STFT loss on both channels and on mid/side.

    Left/right compares each channel with its reference; mid and side compare
    the down-mix and the difference signal, which carries the stereo image.
    Separate weights matter when the image cannot be inferred from a mono
    input (e.g. sources panned at random): then only the mid term is free
    of noise the model cannot explain. Each
    is the mean over resolutions of spectral convergence plus log-magnitude L1
    (or squared log difference, ``log_distance: l2``, which is what the
    log-spectral distance measures), on magnitudes scaled so that a full-scale
    sine peaks at 1 and floored at
    ``floor_db`` (silence is one value, not ``-inf``). The STFT is linear, so
    mid/side spectra are combined from the left/right ones.
    """

    def __init__(
        self,
        fft_sizes: Sequence[int] = (512, 1024, 2048),
        hop_sizes: Optional[Sequence[int]] = None,
        floor_db: float = -100.0,
        log_distance: str = "l1",
    ):
        super().__init__()
        if log_distance not in ("l1", "l2"):
            raise ValueError(f"log_distance must be 'l1' or 'l2', got {log_distance}")
        self.log_distance = log_distance
        self.fft_sizes = list(fft_sizes)
        self.hop_sizes = list(hop_sizes or [n // 4 for n in fft_sizes])
        if len(self.hop_sizes) != len(self.fft_sizes):
            raise ValueError("one hop size per FFT size")
        self.floor = 10.0 ** (floor_db / 20.0)
        for n_fft in self.fft_sizes:
            self.register_buffer(
                f"window_{n_fft}", torch.hann_window(n_fft), persistent=False
            )

    def _spectrum(self, wav: torch.Tensor, n_fft: int, hop: int) -> torch.Tensor:
        """``[B, C, N]`` -> ``[B, C, F, T]`` complex, a full-scale sine at 1."""
        window = getattr(self, f"window_{n_fft}")
        spec = torch.stft(
            fold_channels(wav),
            n_fft,
            hop,
            window=window,
            center=True,
            return_complex=True,
        )
        spec = spec * (2.0 / float(window.sum()))
        return spec.view(*wav.shape[:2], *spec.shape[1:])

    def _magnitude(self, spec: torch.Tensor) -> torch.Tensor:
        power = spec.real.pow(2) + spec.imag.pow(2)
        return power.clamp_min(self.floor**2).sqrt()

    def _distance(self, mag_hat: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
        """Spectral convergence + log-magnitude L1 (or L2) of ``[B, C, F, T]``."""
        sc = torch.linalg.vector_norm(mag - mag_hat, dim=(2, 3)) / (
            torch.linalg.vector_norm(mag, dim=(2, 3))
        )
        diff = mag.log() - mag_hat.log()
        log_term = diff.abs() if self.log_distance == "l1" else diff.pow(2)
        return sc.mean() + log_term.mean()

    def forward(
        self, y_hat: torch.Tensor, y: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``[B, 2, N]`` -> (left/right, mid, side) losses."""
        lr = mid = side = y_hat.new_zeros(())
        for n_fft, hop in zip(self.fft_sizes, self.hop_sizes):
            spec_hat = self._spectrum(y_hat, n_fft, hop)
            with torch.no_grad():
                spec = self._spectrum(y, n_fft, hop)
            lr = lr + self._distance(self._magnitude(spec_hat), self._magnitude(spec))
            ms_hat = self._magnitude(_mid_side_spectra(spec_hat))
            ms = self._magnitude(_mid_side_spectra(spec))
            mid = mid + self._distance(ms_hat[:, :1], ms[:, :1])
            side = side + self._distance(ms_hat[:, 1:], ms[:, 1:])
        n = len(self.fft_sizes)
        return lr / n, mid / n, side / n


def _mid_side_spectra(spec: torch.Tensor) -> torch.Tensor:
    """``[B, 2, F, T]`` left/right spectra -> mid/side spectra."""
    left, right = spec[:, 0], spec[:, 1]
    return torch.stack([(left + right) / 2, (left - right) / 2], dim=1)


class MultiScaleMelLoss(torch.nn.Module):
    """Mean over scales of log-mel L1 (ESPnet's ``MelSpectrogramLoss``)."""

    def __init__(
        self,
        sample_rate: int,
        fft_sizes: Sequence[int] = (512, 1024, 2048),
        n_mels: Sequence[int] = (40, 80, 128),
    ):
        super().__init__()
        if len(n_mels) != len(fft_sizes):
            raise ValueError("one n_mels per FFT size")
        self.losses = torch.nn.ModuleList(
            MelSpectrogramLoss(
                fs=sample_rate,
                n_fft=n_fft,
                hop_length=n_fft // 4,
                n_mels=mels,
                fmin=0,
                fmax=sample_rate // 2,
            )
            for n_fft, mels in zip(fft_sizes, n_mels)
        )

    def forward(self, y_hat: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``[B, C, N]`` estimate and reference -> scalar."""
        y_hat, y = fold_channels(y_hat)[:, None], fold_channels(y)[:, None]
        return sum(loss(y_hat, y) for loss in self.losses) / len(self.losses)


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)), averaged over every latent value."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
