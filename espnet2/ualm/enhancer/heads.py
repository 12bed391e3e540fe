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

# Initial level of predicted bins (dB re a full-scale sine in its bin): an
# untrained head adds nothing audible to the skip path, yet sits above the
# STFT losses' magnitude floor (-90 dB in the mini config), where they have a
# gradient: far below it, only the mel loss could raise the band above the
# input's Nyquist frequency.
_INIT_LEVEL_DB = -85.0
# Skip gains are exp(logit): from silence up to +12 dB. Bounded, like the
# predicted magnitudes (at most a full-scale sine per bin), so that an input
# louder than anything seen in training cannot make the output explode.
_GAIN_LOGIT_RANGE = (-12.0, math.log(4.0))
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


class EnvelopeFeatures(torch.nn.Module):
    """Per-frame spectral envelope of the input, as features for the decoder.

    The skip path's magnitudes below the input's Nyquist frequency are pooled
    into ``bands`` log-spaced bands; the features are the frame's log level and
    each band's log level relative to it. What a codec output lacks (the band
    above its Nyquist frequency, the stereo image) follows the envelope of
    what it has (classic bandwidth extension extrapolates exactly this), and a
    level is hard for a convolutional encoder to regress over a 60 dB range,
    but is one subtraction here. A small MLP of these features (its last layer
    starts at zero) is added to the decoder features of the frame.
    """

    def __init__(
        self,
        n_bins: int,
        bin_hz: float,
        bands: int,
        out_channels: int,
        channels: int = 64,
    ):
        super().__init__()
        self.n_bins = n_bins
        lo = max(bin_hz, 50.0)
        edges = torch.logspace(
            math.log10(lo), math.log10(n_bins * bin_hz), bands + 1
        ).tolist()
        pool = torch.zeros(bands, n_bins)
        freqs = torch.arange(n_bins) * bin_hz
        for k in range(bands):
            inside = (freqs >= edges[k]) & (freqs < edges[k + 1])
            if k == 0:
                inside |= freqs < edges[0]
            if not inside.any():  # a band narrower than a bin: the nearest bin
                inside[int(torch.argmin((freqs - edges[k]).abs()))] = True
            pool[k, inside] = 1.0 / float(inside.sum())
        self.register_buffer("pool", pool, persistent=False)
        self.size = bands + 1
        self.mlp = torch.nn.Sequential(
            torch.nn.Conv1d(self.size, channels, 3, padding=1),
            torch.nn.LeakyReLU(0.1),
            torch.nn.Conv1d(channels, channels, 3, padding=1),
            torch.nn.LeakyReLU(0.1),
            torch.nn.Conv1d(channels, out_channels, 1),
        )
        with torch.no_grad():
            self.mlp[-1].weight.zero_()
            self.mlp[-1].bias.zero_()

    def features(self, magnitude: torch.Tensor) -> torch.Tensor:
        """``[B, F, T]`` skip magnitudes (a full-scale sine at 1) -> ``[B, size,
        T]``: log level (about 0 for a full-scale sine, -5 at -100 dB) and the
        bands' levels relative to it (natural-log power / 10)."""
        power = magnitude[:, : self.n_bins].pow(2)
        bands = torch.einsum("kf,bft->bkt", self.pool, power)
        floor = _REFINER_FLOOR**2
        total = power.mean(dim=1, keepdim=True).clamp_min(floor).log()
        rel = bands.clamp_min(floor).log() - total
        return torch.cat([total, rel], dim=1) / 5.0

    def forward(self, magnitude: torch.Tensor) -> tuple:
        """-> (features ``[B, size, T]``, decoder offsets ``[B, out_channels, T]``)."""
        feats = self.features(magnitude)
        return feats, self.mlp(feats)


class ISTFTHead(torch.nn.Module):
    """``[B, in_channels, T + 1]`` -> ``[B, out_channels, T * hop_length]``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        hop_length: int,
        n_fft: int,
        skip: bool,
        sample_rate: int,
        refiner_bins: int = 0,
        refiner_channels: int = 16,
        refiner_layers: int = 3,
        envelope_bands: int = 0,
        envelope_channels: int = 64,
        noise_phase: bool = False,
    ):
        """``sample_rate``: the output rate (Hz; the envelope bands' edges).
        ``refiner_bins > 0`` (with ``skip``): a :class:`SpectralRefiner` adds
        per-bin gain logits to the lowest ``refiner_bins`` bins.
        ``envelope_bands > 0`` (with ``skip`` and ``refiner_bins``): the
        decoder also sees :class:`EnvelopeFeatures` of those bins, and the
        projection to the spectrum sees the features themselves.
        ``noise_phase`` (with ``refiner_bins``): the bins above those take the
        phase of a white noise's STFT instead of a predicted one (see
        ``forward``)."""
        super().__init__()
        self.out_channels = out_channels
        self.hop_length = hop_length
        self.n_fft = n_fft
        self.skip = skip
        self.n_bins = n_fft // 2 + 1
        # A full-scale sine peaks at sum(hann) / 2 = n_fft / 4 in its bin.
        self.max_log_magnitude = math.log(n_fft / 4)
        # Per channel and bin: log-magnitude, phase (and the skip gain's logit).
        self.parts = 3 if skip else 2
        self.envelope = None
        extra = 0
        if skip and refiner_bins > 0 and envelope_bands > 0:
            self.envelope = EnvelopeFeatures(
                min(refiner_bins, self.n_bins),
                sample_rate / n_fft,
                envelope_bands,
                in_channels,
                envelope_channels,
            )
            extra = self.envelope.size
        self.proj = torch.nn.Conv1d(
            in_channels + extra, out_channels * self.parts * self.n_bins, 1
        )
        with torch.no_grad():
            self.proj.weight.mul_(0.1)
            self.proj.weight[:, in_channels:] = 0.0
            bias = self.proj.bias.view(out_channels, self.parts, self.n_bins)
            bias.zero_()
            bias[:, 0] = self.max_log_magnitude + _INIT_LEVEL_DB / 20 * math.log(10)
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        self.noise_from = min(refiner_bins, self.n_bins) if noise_phase else None
        if noise_phase and refiner_bins <= 0:
            raise ValueError("noise_phase needs refiner_bins (the input's band)")
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

    def _noise_phase(self, like: torch.Tensor) -> torch.Tensor:
        """Phases ``[B, C, n_bins - noise_from, T + 1]`` of a white noise's STFT
        (frames consistent with each other, unlike free per-frame phases, which
        cancel in the overlap-add): the excitation of the band above the
        input's, shaped by the predicted magnitudes. Seeded in eval mode, so
        enhancing is deterministic."""
        batch, channels, _, frames = like.shape
        generator = None
        if not self.training:
            generator = torch.Generator(device=like.device).manual_seed(0)
        noise = torch.randn(
            batch * channels,
            (frames - 1) * self.hop_length,
            generator=generator,
            device=like.device,
        )
        spec = self.stft(noise)[:, self.noise_from :]
        return spec.angle().view(batch, channels, -1, frames)

    def forward(
        self, h: torch.Tensor, skip_wav: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        batch, _, frames = h.shape
        skip_spec = skip_magnitude = None
        if self.skip:
            if skip_wav is None:
                raise ValueError("this head was built with skip=True: pass skip_wav")
            skip_spec = self.stft(skip_wav)
            skip_magnitude = skip_spec.abs() * (2.0 / float(self.window.sum()))
        if self.envelope is not None:
            feats, offsets = self.envelope(skip_magnitude)
            h = torch.cat([h + offsets, feats], dim=1)
        x = self.proj(h).view(batch, self.out_channels, self.parts, self.n_bins, -1)
        if self.envelope is not None:
            h = h[:, : -self.envelope.size]
        magnitude = x[:, :, 0].clamp(max=self.max_log_magnitude).exp()
        phase = x[:, :, 1]
        if self.noise_from is not None:
            phase = torch.cat(
                [phase[:, :, : self.noise_from], self._noise_phase(phase)], dim=2
            )
        spec = torch.polar(magnitude, phase)
        if self.skip:
            logit = x[:, :, 2]
            if self.refiner is not None:
                refined = self.refiner(h, skip_magnitude)
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
