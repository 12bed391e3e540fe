"""X-codec, the codec of UALM, through transformers' ``XcodecModel``.

The model is loaded from a local directory in the library's own format
(``XcodecModel.save_pretrained``): nothing is downloaded. Its geometry (sample
rate, hop length, codebook size, codebooks used at the chosen bandwidth) is
read from the loaded config, so a re-configured or tiny test model works the
same way as the released 16 kHz / 50 Hz / 8 x 1024 one.
"""

import logging
from typing import Optional, Tuple

import torch

from espnet2.ualm.codec.abs_codec import AbsCodec
from espnet2.ualm.codec.batching import group_by_length
from espnet2.ualm.data.safe_io import local_dir


class XcodecCodec(AbsCodec):
    """Frozen X-codec (always in eval mode, no gradients).

    Batching: X-codec's semantic encoder (HuBERT) attends over the whole input
    and normalises over time, so zero-padding a row to the batch length changes
    its codes. ``encode`` and ``decode`` therefore run each group of rows of
    equal frame count as one batch, each row cut (and zero-padded) to exactly
    ``frames * hop_length`` samples: batched results equal one-by-one results.
    """

    def __init__(self, model_dir: Optional[str] = None, bandwidth: float = 4.0):
        """Loads ``model_dir``; ``bandwidth`` (kbps) picks the codebooks used.

        At the released geometry (50 Hz, 1024 entries = 10 bits), 4 kbps uses
        8 codebooks, 2 kbps 4, 1 kbps 2.
        """
        super().__init__()
        if model_dir is None:
            raise ValueError(
                "xcodec needs model_dir (--codec_conf model_dir=<dir>): a directory "
                "written by transformers' XcodecModel.save_pretrained"
            )
        from transformers import XcodecModel  # heavy import, only when used

        local_dir(model_dir, "X-codec model")
        model = XcodecModel.from_pretrained(model_dir, local_files_only=True)
        config = model.config
        if float(bandwidth) not in [float(b) for b in config.target_bandwidths]:
            raise ValueError(
                f"{model_dir}: bandwidth {bandwidth} kbps is not one of the model's "
                f"target_bandwidths {list(config.target_bandwidths)}"
            )
        self.model = model.eval().requires_grad_(False)
        self.bandwidth = float(bandwidth)
        self._sample_rate = int(config.sample_rate)
        self._hop_length = int(config.hop_length)
        self._codebook_size = int(config.codebook_size)
        self._n_codebooks = int(
            model.quantizer.get_num_quantizers_for_bandwidth(self.bandwidth)
        )
        logging.info(
            f"X-codec from {model_dir}: {self._sample_rate} Hz, hop "
            f"{self._hop_length}, {self._n_codebooks} x {self._codebook_size} codes "
            f"at {self.bandwidth} kbps"
        )

    @property
    def sample_rate(self) -> int:
        return self._sample_rate

    @property
    def frame_rate(self) -> float:
        return self._sample_rate / self._hop_length

    @property
    def n_codebooks(self) -> int:
        return self._n_codebooks

    @property
    def codebook_size(self) -> int:
        return self._codebook_size

    @property
    def hop_length(self) -> int:
        return self._hop_length

    def train(self, mode: bool = True) -> "XcodecCodec":
        """Stays in eval mode: the codec is frozen, whatever its parent does."""
        return super().train(False)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    @torch.no_grad()
    def encode(
        self, wav: torch.Tensor, wav_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        if wav.dim() != 2:
            raise ValueError(f"wav must be [B, N], got shape {tuple(wav.shape)}")
        lengths = [int(n) for n in wav_lengths]
        frames = [self.num_frames(n) for n in lengths]
        device = self._device()
        codes = torch.zeros(
            len(lengths), max(frames, default=0), self.n_codebooks, dtype=torch.long
        )
        for n_frames, rows in group_by_length(frames).items():
            x = torch.zeros(len(rows), 1, n_frames * self.hop_length)
            for i, row in enumerate(rows):
                x[i, 0, : lengths[row]] = wav[row, : lengths[row]].float().cpu()
            out = self.model.encode(
                x.to(device), bandwidth=self.bandwidth, return_dict=False
            )
            if out.shape[-1] != n_frames:
                raise RuntimeError(
                    f"X-codec returned {out.shape[-1]} frames for "
                    f"{n_frames * self.hop_length} samples, expected {n_frames}: "
                    "the model's hop length does not match its encoder strides"
                )
            codes[rows, :n_frames] = out.transpose(1, 2).cpu()
        return codes.to(wav.device), torch.tensor(frames, device=wav.device)

    @torch.no_grad()
    def decode(
        self, codes: torch.Tensor, code_lengths: torch.Tensor
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        if codes.dim() != 3 or codes.shape[-1] != self.n_codebooks:
            raise ValueError(
                f"codes must be [B, T, {self.n_codebooks}], got {tuple(codes.shape)}"
            )
        frames = [int(t) for t in code_lengths]
        device = self._device()
        hop = self.hop_length
        wav = torch.zeros(len(frames), codes.shape[1] * hop)
        for n_frames, rows in group_by_length(frames).items():
            c = codes[rows, :n_frames].long()
            if c.min() < 0 or c.max() >= self.codebook_size:
                raise ValueError(
                    f"codes must lie in [0, {self.codebook_size}), got "
                    f"[{int(c.min())}, {int(c.max())}]"
                )
            y = self.model.decode(c.transpose(1, 2).to(device), return_dict=False)
            y = y[:, 0, : n_frames * hop].float().cpu()
            wav[rows, : y.shape[-1]] = y
        lengths = torch.tensor(frames, device=codes.device) * hop
        return wav.to(codes.device), lengths
