"""The codec interface every audio tokenizer of the project implements.

Codec geometry (sample rate, frame rate, number of codebooks, codebook size)
is read from the codec object; nothing else in the project hard-codes it.
"""

from abc import ABC, abstractmethod
from typing import Tuple

import torch


class AbsCodec(torch.nn.Module, ABC):
    """Waveforms <-> integer codes ``[B, T, n_codebooks]``.

    Length contract: a waveform of ``n`` samples gives
    ``ceil(n / hop_length)`` frames, and ``T`` frames decode to
    ``T * hop_length`` samples (``hop_length = sample_rate / frame_rate``).

    Batch contract: a row's codes (and decoded samples) do not depend on the
    other rows of the batch or on its padding, so codes dumped in batches equal
    codes computed one clip at a time.
    """

    @property
    @abstractmethod
    def sample_rate(self) -> int:
        """Sample rate (Hz) of the waveforms ``encode`` takes and ``decode`` returns."""

    @property
    @abstractmethod
    def frame_rate(self) -> float:
        """Code frames per second."""

    @property
    @abstractmethod
    def n_codebooks(self) -> int:
        """Residual codebooks per frame."""

    @property
    @abstractmethod
    def codebook_size(self) -> int:
        """Entries per codebook; codes lie in ``[0, codebook_size)``."""

    @property
    def hop_length(self) -> int:
        """Waveform samples per code frame."""
        return int(round(self.sample_rate / self.frame_rate))

    def num_frames(self, num_samples: int) -> int:
        """Frames that ``encode`` returns for ``num_samples`` samples."""
        return -(-int(num_samples) // self.hop_length)

    @abstractmethod
    def encode(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode a padded batch.

        Args:
            wav: ``[B, N]`` float waveforms at ``sample_rate``, zero-padded.
            wav_lengths: ``[B]`` valid samples per row.
        Returns:
            codes ``[B, T, n_codebooks]`` (long) and ``[B]`` valid frames per row;
            frames past a row's length are 0 and must be ignored.
        """

    @abstractmethod
    def decode(
        self, codes: torch.Tensor, code_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Decode a padded batch of codes ``[B, T, n_codebooks]``.

        Returns:
            waveforms ``[B, T * hop_length]`` and ``[B]`` valid samples per row.
        """
