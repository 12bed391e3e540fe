"""Convolutional building blocks of the Enhancement VAE.

Snake activations and dilated residual units follow the DAC / BigVGAN
waveform models: the periodic activation suits tonal audio, and residual
units widen the receptive field cheaply at every rate.
"""

from typing import Sequence

import torch


class Snake(torch.nn.Module):
    """``x + sin(alpha x)^2 / alpha`` with a learned ``alpha`` per channel."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = torch.nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.abs() + 1e-4
        return x + torch.sin(alpha * x).pow(2) / alpha


class ResidualUnit(torch.nn.Module):
    """Snake, dilated conv (kernel 7), Snake, 1x1 conv, plus the input."""

    def __init__(self, channels: int, dilation: int, kernel_size: int = 7):
        super().__init__()
        self.block = torch.nn.Sequential(
            Snake(channels),
            torch.nn.Conv1d(
                channels,
                channels,
                kernel_size,
                dilation=dilation,
                padding=dilation * (kernel_size - 1) // 2,
            ),
            Snake(channels),
            torch.nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def residual_stack(channels: int, dilations: Sequence[int]) -> torch.nn.Sequential:
    return torch.nn.Sequential(*[ResidualUnit(channels, d) for d in dilations])


class Encoder(torch.nn.Module):
    """``[B, 1, N]`` waveform -> ``[B, out_channels, N / prod(strides)]``.

    Each stage downsamples with a strided conv (kernel ``2 * stride``) and then
    runs residual units at the new rate, so the costly full-rate part is a
    single conv. ``N`` must be a multiple of ``prod(strides)``.
    """

    def __init__(
        self,
        in_channels: int,
        channels: Sequence[int],
        strides: Sequence[int],
        dilations: Sequence[int],
        out_channels: int,
    ):
        super().__init__()
        if len(channels) != len(strides):
            raise ValueError(
                f"one channel count per stride: channels {list(channels)}, "
                f"strides {list(strides)}"
            )
        layers = [torch.nn.Conv1d(1, in_channels, 7, padding=3)]
        width = in_channels
        for stride, next_width in zip(strides, channels):
            layers += [
                Snake(width),
                torch.nn.Conv1d(
                    width,
                    next_width,
                    2 * stride,
                    stride=stride,
                    padding=(stride + 1) // 2,
                ),
                residual_stack(next_width, dilations),
            ]
            width = next_width
        layers += [Snake(width), torch.nn.Conv1d(width, out_channels, 3, padding=1)]
        self.layers = torch.nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class DecoderTrunk(torch.nn.Module):
    """``[B, latent_dim, T]`` -> ``[B, channels, T]`` at the latent frame rate."""

    def __init__(self, latent_dim: int, channels: int, dilations: Sequence[int]):
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Conv1d(latent_dim, channels, 7, padding=3),
            residual_stack(channels, dilations),
            Snake(channels),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.layers(z)
