"""Output heads of the Enhancement VAE decoder: latent frames -> stereo waveform.

Two ways to upsample from the latent frame rate to the output rate:

* ``ISTFTHead`` predicts each channel's STFT at the output rate (log-magnitude
  and phase per bin, Vocos-style) and inverts it. No layer runs at 48 kHz, so
  it trains in minutes on a CPU, and a bin can be made as quiet as needed.
* ``WaveHead`` upsamples with transposed convolutions and residual units to the
  waveform (HiFi-GAN / BigVGAN-style), the usual choice with a GPU budget.

With ``skip`` the head also receives the input resampled to the output rate
(``skip_wav``): the ISTFT head then adds a learned per-bin, per-channel gain
times the input's STFT to what it predicts, the wave head adds the input to
each channel. The model starts from plain resampling and learns corrections
(codec artifacts, the band above the input's Nyquist frequency, stereo).
"""

import math
from typing import Optional, Sequence

import torch

from espnet2.ualm.enhancer.layers import Snake, residual_stack

# Initial log-magnitude of predicted bins: about -115 dB below a full-scale
# sine, so an untrained head adds nothing audible to the skip path.
_INIT_LOG_MAGNITUDE = -10.0
_MAX_LOG_MAGNITUDE = math.log(1e3)
# Skip gains are exp(logit): from silence up to +26 dB.
_GAIN_LOGIT_RANGE = (-12.0, 3.0)
# Log-magnitude floor (re a full-scale sine) of the refiner's input: -100 dB.
_REFINER_FLOOR = 1e-5


class SpectralRefiner(torch.nn.Module):
    """Per-bin skip gains from the input's own log-spectrogram.

    A small 2-D convolution over (frequency, time) sees each bin of the
    resampled input with its neighbours (is it a partial or the codec's
    low-level fog? an onset or a smeared tail?) together with the decoder
    features of its frame; weights shared across frequency make this learnable
    from minutes of audio, which a bottleneck of a few latent channels is not.
    Only the bins below the input's Nyquist frequency are refined.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        n_bins: int,
        channels: int,
        layers: int,
        cond_channels: int = 4,
    ):
        super().__init__()
        self.n_bins = n_bins
        self.cond = torch.nn.Conv1d(in_channels, cond_channels, 1)
        convs = []
        width = cond_channels + 2  # + log-magnitude + frequency position
        for i in range(layers):
            convs += [
                torch.nn.Conv2d(
                    width, channels, 3, padding=(1, 2**i), dilation=(1, 2**i)
                ),
                torch.nn.LeakyReLU(0.1),
            ]
            width = channels
        convs.append(torch.nn.Conv2d(width, out_channels, 1))
        self.convs = torch.nn.Sequential(*convs)
        with torch.no_grad():
            self.convs[-1].weight.zero_()
            self.convs[-1].bias.zero_()
        self.register_buffer(
            "position", torch.linspace(-1.0, 1.0, n_bins)[:, None], persistent=False
        )

    def forward(self, h: torch.Tensor, magnitude: torch.Tensor) -> torch.Tensor:
        """``[B, in_channels, T]`` features and ``[B, F, T]`` skip magnitudes
        (a full-scale sine at 1) -> ``[B, out_channels, n_bins, T]`` logits."""
        batch, _, frames = h.shape
        log_mag = magnitude[:, : self.n_bins].clamp_min(_REFINER_FLOOR).log()
        cond = self.cond(h)[:, :, None].expand(-1, -1, self.n_bins, -1)
        position = self.position.expand(batch, 1, self.n_bins, frames)
        x = torch.cat([cond, (log_mag[:, None] + 6.0) / 3.0, position], dim=1)
        return self.convs(x)


class ISTFTHead(torch.nn.Module):
    """``[B, in_channels, T + 1]`` -> ``[B, out_channels, T * hop_length]``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hop_length: int,
        n_fft: int,
        skip: bool,
        refiner_bins: int = 0,
        refiner_channels: int = 16,
        refiner_layers: int = 3,
    ):
        """``refiner_bins > 0`` (with ``skip``): a :class:`SpectralRefiner` adds
        per-bin gain logits to the lowest ``refiner_bins`` bins."""
        super().__init__()
        self.out_channels = out_channels
        self.hop_length = hop_length
        self.n_fft = n_fft
        self.skip = skip
        self.n_bins = n_fft // 2 + 1
        # Per channel and bin: log-magnitude, phase (and the skip gain's logit).
        self.parts = 3 if skip else 2
        self.proj = torch.nn.Conv1d(
            in_channels, out_channels * self.parts * self.n_bins, 1
        )
        with torch.no_grad():
            self.proj.weight.mul_(0.1)
            bias = self.proj.bias.view(out_channels, self.parts, self.n_bins)
            bias.zero_()
            bias[:, 0] = _INIT_LOG_MAGNITUDE
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.refiner = None
        if skip and refiner_bins > 0:
            self.refiner = SpectralRefiner(
                in_channels,
                out_channels,
                min(refiner_bins, self.n_bins),
                refiner_channels,
                refiner_layers,
            )

    def stft(self, wav: torch.Tensor) -> torch.Tensor:
        """``[B, N]`` -> ``[B, n_bins, N / hop + 1]`` complex (centred frames)."""
        return torch.stft(
            wav,
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )

    def forward(
        self, h: torch.Tensor, skip_wav: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        batch, _, frames = h.shape
        x = self.proj(h).view(batch, self.out_channels, self.parts, self.n_bins, -1)
        magnitude = x[:, :, 0].clamp(max=_MAX_LOG_MAGNITUDE).exp()
        spec = torch.polar(magnitude, x[:, :, 1])
        if self.skip:
            if skip_wav is None:
                raise ValueError("this head was built with skip=True: pass skip_wav")
            skip_spec = self.stft(skip_wav)
            logit = x[:, :, 2]
            if self.refiner is not None:
                scale = 2.0 / float(self.window.sum())
                refined = self.refiner(h, skip_spec.abs() * scale)
                logit = torch.cat(
                    [
                        logit[:, :, : self.refiner.n_bins] + refined,
                        logit[:, :, self.refiner.n_bins :],
                    ],
                    dim=2,
                )
            gain = logit.clamp(*_GAIN_LOGIT_RANGE).exp()
            spec = spec + gain * skip_spec[:, None]
        length = (frames - 1) * self.hop_length
        wav = torch.istft(
            spec.reshape(batch * self.out_channels, self.n_bins, frames),
            self.n_fft,
            self.hop_length,
            window=self.window,
            center=True,
            length=length,
        )
        return wav.view(batch, self.out_channels, length)


class WaveHead(torch.nn.Module):
    """``[B, in_channels, T + 1]`` -> ``[B, out_channels, T * prod(rates)]``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        upsample_rates: Sequence[int],
        channels: Sequence[int],
        dilations: Sequence[int],
        skip: bool,
    ):
        super().__init__()
        if len(channels) != len(upsample_rates):
            raise ValueError(
                f"one channel count per upsampling rate: channels {list(channels)}, "
                f"rates {list(upsample_rates)}"
            )
        self.hop_length = math.prod(upsample_rates)
        self.skip = skip
        layers = []
        width = in_channels
        for rate, next_width in zip(upsample_rates, channels):
            layers += [
                Snake(width),
                torch.nn.ConvTranspose1d(
                    width,
                    next_width,
                    2 * rate,
                    stride=rate,
                    padding=rate // 2 + rate % 2,
                    output_padding=rate % 2,
                ),
                residual_stack(next_width, dilations),
            ]
            width = next_width
        layers += [Snake(width), torch.nn.Conv1d(width, out_channels, 7, padding=3)]
        self.layers = torch.nn.Sequential(*layers)
        if skip:
            # Start as plain resampling: the residual branch begins silent.
            with torch.no_grad():
                self.layers[-1].weight.mul_(0.01)
                self.layers[-1].bias.zero_()

    def forward(
        self, h: torch.Tensor, skip_wav: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        frames = h.shape[-1]
        wav = self.layers(h)[..., : (frames - 1) * self.hop_length]
        if self.skip:
            if skip_wav is None:
                raise ValueError("this head was built with skip=True: pass skip_wav")
            wav = wav + skip_wav[:, None, : wav.shape[-1]]
        return wav
