"""The Enhancement VAE of UALM: codec output (16 kHz mono) -> 48 kHz stereo.

A convolutional encoder turns the waveform into a latent sequence (mean and
log-variance per frame); the decoder upsamples a latent sample to the output
rate with two output channels. Trained as a GAN generator
(``espnet2.ualm.enhancer.espnet_model``) it learns blind restoration of codec
artifacts, super-resolution and spatialisation at once.
"""

import math
from typing import Optional, Sequence

import torch

from espnet2.ualm.enhancer.abs_enhancer import (
    DEFAULT_INPUT_SAMPLE_RATE,
    DEFAULT_OUTPUT_SAMPLE_RATE,
    AbsEnhancer,
    EnhancerOutput,
)
from espnet2.ualm.enhancer.heads import ISTFTHead, WaveHead
from espnet2.ualm.enhancer.layers import DecoderTrunk, Encoder
from espnet2.ualm.enhancer.resample import upsample

_LOGVAR_RANGE = (-30.0, 20.0)


class EnhancementVAE(AbsEnhancer):
    """Encoder -> latent ``z ~ N(mean, exp(logvar))`` -> decoder trunk -> head.

    Frames: the encoder downsamples by ``hop = prod(encoder_strides)`` input
    samples; latent frame ``t`` and output STFT frame ``t`` (hop
    ``hop * upsample_factor`` output samples) are centred on the same instant.
    In training ``z`` is sampled, in eval mode it is the mean (deterministic).
    """

    def __init__(
        self,
        input_sample_rate: int = DEFAULT_INPUT_SAMPLE_RATE,
        output_sample_rate: int = DEFAULT_OUTPUT_SAMPLE_RATE,
        output_channels: int = 2,
        encoder_in_channels: int = 16,
        encoder_channels: Sequence[int] = (32, 64, 128),
        encoder_strides: Sequence[int] = (4, 4, 5),
        encoder_dilations: Sequence[int] = (1, 3),
        latent_dim: int = 32,
        decoder_channels: int = 192,
        decoder_dilations: Sequence[int] = (1, 3, 9, 1),
        head: str = "istft",
        istft_n_fft: Optional[int] = None,
        refiner_channels: int = 0,
        refiner_layers: int = 3,
        envelope_bands: int = 0,
        envelope_channels: int = 64,
        noise_phase: bool = False,
        wave_upsample_rates: Sequence[int] = (5, 4, 4, 3),
        wave_channels: Sequence[int] = (128, 64, 32, 16),
        wave_dilations: Sequence[int] = (1, 3),
        input_skip: bool = True,
    ):
        """Arguments:

        input_sample_rate, output_sample_rate: rates (Hz); the output rate must
            be a multiple of the input rate (default 16 kHz -> 48 kHz).
        output_channels: 2 for stereo.
        encoder_in_channels: channels of the first (full-rate) conv.
        encoder_channels, encoder_strides: channels and downsampling factor of
            each encoder stage; ``prod(strides)`` input samples make a frame.
        encoder_dilations: dilations of the residual units of each stage.
        latent_dim: channels of the latent sequence (mean and log-variance each).
        decoder_channels, decoder_dilations: width and residual units of the
            decoder trunk (at the latent frame rate).
        head: ``istft`` (predict each channel's STFT; fast on CPU) or ``wave``
            (transposed-conv upsampling to the waveform).
        istft_n_fft: FFT size of the ``istft`` head (default 4 x its hop).
        refiner_channels, refiner_layers: with ``head: istft`` and
            ``input_skip``, a 2-D conv refiner of that width and depth computes
            per-bin skip gains below the input's Nyquist frequency from the
            input's log-spectrogram (0: no refiner).
        envelope_bands, envelope_channels: with a refiner, the decoder also
            sees the input's per-frame level and its spectral envelope in that
            many log-spaced bands below the input's Nyquist frequency, through
            an MLP of that width (0: no envelope features; see
            ``heads.EnvelopeFeatures``).
        noise_phase: with a refiner, the bins above the input's Nyquist
            frequency take the phase of a white noise's STFT (the predicted
            magnitudes shape it) instead of predicted phases.
        wave_upsample_rates, wave_channels, wave_dilations: the ``wave`` head's
            stages; ``prod(rates)`` must equal ``prod(encoder_strides) *
            output_sample_rate / input_sample_rate``.
        input_skip: feed the input resampled to the output rate to the head, which
            learns corrections to it instead of the whole signal.
        """
        super().__init__()
        if output_sample_rate % input_sample_rate != 0:
            raise ValueError(
                f"output_sample_rate {output_sample_rate} must be a multiple of "
                f"input_sample_rate {input_sample_rate}"
            )
        self._input_sample_rate = int(input_sample_rate)
        self._output_sample_rate = int(output_sample_rate)
        self._output_channels = int(output_channels)
        self.input_hop = math.prod(encoder_strides)
        self.output_hop = self.input_hop * self.upsample_factor
        self.latent_dim = int(latent_dim)
        self.input_skip = bool(input_skip)
        self.encoder = Encoder(
            encoder_in_channels,
            encoder_channels,
            encoder_strides,
            encoder_dilations,
            2 * latent_dim,
        )
        self.trunk = DecoderTrunk(latent_dim, decoder_channels, decoder_dilations)
        if head == "istft":
            n_fft = istft_n_fft or 4 * self.output_hop
            self.head = ISTFTHead(
                decoder_channels,
                output_channels,
                self.output_hop,
                n_fft,
                input_skip,
                output_sample_rate,
                refiner_bins=n_fft // (2 * self.upsample_factor) + 1
                if refiner_channels > 0
                else 0,
                refiner_channels=refiner_channels,
                refiner_layers=refiner_layers,
                envelope_bands=envelope_bands,
                envelope_channels=envelope_channels,
                noise_phase=noise_phase,
            )
        elif head == "wave":
            if math.prod(wave_upsample_rates) != self.output_hop:
                raise ValueError(
                    f"prod(wave_upsample_rates) = {math.prod(wave_upsample_rates)} "
                    f"must equal the output hop {self.output_hop} (encoder hop "
                    f"{self.input_hop} x {self.upsample_factor})"
                )
            self.head = WaveHead(
                decoder_channels,
                output_channels,
                wave_upsample_rates,
                wave_channels,
                wave_dilations,
                input_skip,
            )
        else:
            raise ValueError(f"head must be 'istft' or 'wave', got {head!r}")

    @property
    def input_sample_rate(self) -> int:
        return self._input_sample_rate

    @property
    def output_sample_rate(self) -> int:
        return self._output_sample_rate

    @property
    def output_channels(self) -> int:
        return self._output_channels

    def encode(self, wav: torch.Tensor) -> tuple:
        """``[B, N]`` (``N`` a multiple of the hop) -> mean, logvar
        ``[B, latent_dim, N / hop]``."""
        stats = self.encoder(wav[:, None])
        mean, logvar = stats.chunk(2, dim=1)
        return mean, logvar.clamp(*_LOGVAR_RANGE)

    def decode(self, z: torch.Tensor, wav: torch.Tensor) -> torch.Tensor:
        """``T + 1`` latent frames and the input (``T * hop`` samples) ->
        ``[B, channels, T * output_hop]``."""
        skip = None
        if self.input_skip:
            skip = upsample(wav, self.input_sample_rate, self.output_sample_rate)
        return self.head(self.trunk(z), skip)

    def forward(self, wav: torch.Tensor, wav_lengths: torch.Tensor) -> EnhancerOutput:
        if wav.dim() != 2:
            raise ValueError(f"wav must be [B, N], got shape {tuple(wav.shape)}")
        n = wav.shape[1]
        frames = -(-n // self.input_hop)
        wav = torch.nn.functional.pad(wav, (0, frames * self.input_hop - n))
        # One frame more than the hops cover: the head's STFT frames are centred.
        mean, logvar = self.encode(torch.nn.functional.pad(wav, (0, self.input_hop)))
        z = mean
        if self.training:
            z = mean + torch.randn_like(mean) * torch.exp(0.5 * logvar)
        out = self.decode(z, wav)[..., : n * self.upsample_factor]
        return EnhancerOutput(out, wav_lengths * self.upsample_factor, mean, logvar)
