"""Adapter from encoder frames to the LLM's embedding space.

``mlp``: Linear-GELU-Linear (Audio Flamingo 3); ``linear``: one Linear
(Qwen2-Audio). Trained from scratch, first alone in the modality-alignment
stage.
"""

from typing import Optional

import torch
from torch import nn

ADAPTER_TYPES = ("mlp", "linear")


class AudioAdapter(nn.Module):
    def __init__(
        self,
        input_size: int,
        output_size: int,
        type: str = "mlp",
        hidden_size: Optional[int] = None,
    ):
        super().__init__()
        if type == "mlp":
            hidden_size = hidden_size or output_size
            self.net = nn.Sequential(
                nn.Linear(input_size, hidden_size),
                nn.GELU(),
                nn.Linear(hidden_size, output_size),
            )
        elif type == "linear":
            if hidden_size is not None:
                raise ValueError("a linear adapter takes no hidden_size")
            self.net = nn.Linear(input_size, output_size)
        else:
            raise ValueError(
                f"adapter type must be one of {ADAPTER_TYPES}, got {type!r}"
            )
        self.input_size, self.output_size = input_size, output_size

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        """``[..., input_size]`` -> ``[..., output_size]``."""
        return self.net(frames)
