"""The enhancer interface: codec output (mono, codec rate) -> 48 kHz stereo.

Every generated clip leaves the codec as 16 kHz mono; an enhancer turns it
into the delivery format. Inference and packing only see this interface, so a
trained Enhancement VAE and plain resampling are interchangeable by name.
"""

from abc import ABC, abstractmethod
from typing import NamedTuple, Optional, Union

import numpy as np
import torch

# The enhancer configs' default rates: the codec output it takes (X-codec,
# 16 kHz) and UALM's delivery rate. Everything else asks an enhancer for its
# ``input_sample_rate`` / ``output_sample_rate``.
DEFAULT_INPUT_SAMPLE_RATE = 16000
DEFAULT_OUTPUT_SAMPLE_RATE = 48000


class EnhancerOutput(NamedTuple):
    """What ``forward`` returns.

    wav: ``[B, output_channels, N * upsample_factor]`` waveforms.
    wav_lengths: ``[B]`` valid output samples per row.
    mean, logvar: ``[B, latent_dim, T]`` posterior of a VAE (``None`` otherwise).
    """

    wav: torch.Tensor
    wav_lengths: torch.Tensor
    mean: Optional[torch.Tensor] = None
    logvar: Optional[torch.Tensor] = None


class AbsEnhancer(torch.nn.Module, ABC):
    """Mono waveforms at ``input_sample_rate`` -> ``output_channels`` at
    ``output_sample_rate``; the output rate is an integer multiple of the input
    rate, so ``N`` input samples give exactly ``N * upsample_factor`` samples."""

    @property
    @abstractmethod
    def input_sample_rate(self) -> int:
        """Rate (Hz) of the mono input: the codec's sample rate."""

    @property
    @abstractmethod
    def output_sample_rate(self) -> int:
        """Rate (Hz) of the output."""

    @property
    def output_channels(self) -> int:
        return 2

    @property
    def upsample_factor(self) -> int:
        return self.output_sample_rate // self.input_sample_rate

    @abstractmethod
    def forward(self, wav: torch.Tensor, wav_lengths: torch.Tensor) -> EnhancerOutput:
        """Enhances a zero-padded batch ``[B, N]`` with ``[B]`` valid lengths."""

    @torch.no_grad()
    def enhance(
        self, wav_16k_mono: Union[np.ndarray, torch.Tensor]
    ) -> Union[np.ndarray, torch.Tensor]:
        """One clip ``[N]`` (or a batch ``[B, N]`` of equal-length clips) ->
        ``[2, N * factor]`` (or ``[B, 2, N * factor]``), same array type.

        Runs in eval mode (a VAE decodes its posterior mean: deterministic) and
        restores the previous mode afterwards.
        """
        is_numpy = isinstance(wav_16k_mono, np.ndarray)
        wav = torch.as_tensor(wav_16k_mono, dtype=torch.float32)
        single = wav.dim() == 1
        if single:
            wav = wav[None]
        if wav.dim() != 2:
            raise ValueError(f"expected [N] or [B, N] audio, got {tuple(wav.shape)}")
        param = next(iter(self.parameters()), None)
        device = param.device if param is not None else torch.device("cpu")
        was_training = self.training
        self.eval()
        try:
            lengths = torch.full((wav.shape[0],), wav.shape[1], dtype=torch.long)
            out = self(wav.to(device), lengths.to(device)).wav.float().cpu()
        finally:
            self.train(was_training)
        out = out[0] if single else out
        return out.numpy() if is_numpy else out
