"""The no-model enhancer: resample and duplicate the mono channel.

For users who do not want the Enhancement VAE, and the baseline the VAE is
measured against: it neither restores codec artifacts nor adds anything above
the input's Nyquist frequency nor spreads the sound between the channels.
"""

import torch
import torchaudio

from espnet2.ualm.enhancer.abs_enhancer import (
    DEFAULT_INPUT_SAMPLE_RATE,
    DEFAULT_OUTPUT_SAMPLE_RATE,
    AbsEnhancer,
    EnhancerOutput,
)


class ResampleEnhancer(AbsEnhancer):
    """Band-limited (sinc) resampling to ``output_sample_rate``, mono copied to
    every output channel."""

    def __init__(
        self,
        input_sample_rate: int = DEFAULT_INPUT_SAMPLE_RATE,
        output_sample_rate: int = DEFAULT_OUTPUT_SAMPLE_RATE,
        output_channels: int = 2,
    ):
        super().__init__()
        if output_sample_rate % input_sample_rate != 0:
            raise ValueError(
                f"output_sample_rate {output_sample_rate} must be a multiple of "
                f"input_sample_rate {input_sample_rate}"
            )
        self._input_sample_rate = int(input_sample_rate)
        self._output_sample_rate = int(output_sample_rate)
        self._output_channels = int(output_channels)

    @property
    def input_sample_rate(self) -> int:
        return self._input_sample_rate

    @property
    def output_sample_rate(self) -> int:
        return self._output_sample_rate

    @property
    def output_channels(self) -> int:
        return self._output_channels

    def forward(self, wav: torch.Tensor, wav_lengths: torch.Tensor) -> EnhancerOutput:
        out = upsample(wav, self.input_sample_rate, self.output_sample_rate)
        out = out[:, None].expand(-1, self.output_channels, -1).contiguous()
        return EnhancerOutput(out, wav_lengths * self.upsample_factor)


def upsample(wav: torch.Tensor, input_rate: int, output_rate: int) -> torch.Tensor:
    """``[..., N]`` -> ``[..., N * output_rate / input_rate]`` (sinc interpolation,
    zero phase: output sample ``k * factor`` sits at input sample ``k``)."""
    if input_rate == output_rate:
        return wav
    return torchaudio.functional.resample(wav, input_rate, output_rate)
