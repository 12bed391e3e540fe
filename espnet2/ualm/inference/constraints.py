"""What a reply may contain at each step: the id masks generation and beam
search share.

Stream 0 carries the modality markers, text tokens and closing tokens; an
audio segment's streams are masked to their own codebooks by the fused
audio heads (``fast.AudioHeads``). A segment may close with ``<eos>`` (the
reply ends) or ``<eot>`` (another segment follows); which of the two is
allowed depends on how many segments the reply has and its plan.
"""

from typing import Dict, Tuple

import torch

from espnet2.ualm.inference.settings import GENERATED_MODALITIES, Plan
from espnet2.ualm.tokens.vocabulary import UALMVocabulary


class ReplyConstraints:
    """Id masks of one vocabulary on one device, and the rules built on them.

    ``text``: the text ids; ``markers``: the generated modalities' markers;
    ``eos`` / ``eot``: one-hot masks of the closing tokens.
    """

    def __init__(self, vocab: UALMVocabulary, device: torch.device):
        self.vocab = vocab
        self.device = device
        self.eos_id, self.eot_id = vocab.eos_id, vocab.eot_id
        self.assistant_id = vocab.role_id("assistant")
        self.marker_ids: Dict[str, int] = {
            m: vocab.modality_id(m) for m in GENERATED_MODALITIES
        }
        self.text = self._mask((vocab.text_offset, vocab.audio_offset))
        self.markers = self._mask(*[(i, i + 1) for i in self.marker_ids.values()])
        self.eos = self._mask((self.eos_id, self.eos_id + 1))
        self.eot = self._mask((self.eot_id, self.eot_id + 1))

    def _mask(self, *ranges: Tuple[int, int]) -> torch.Tensor:
        out = torch.zeros(self.vocab.size, dtype=torch.bool, device=self.device)
        for start, stop in ranges:
            out[start:stop] = True
        return out

    def close_ok(
        self, n_segments: torch.Tensor, plan: Plan, max_segments: int
    ) -> torch.Tensor:
        """``[R, 2]`` bool: may the current segment close with ``<eos>``,
        ``<eot>``, given the segments the reply has so far (``[R]``)?

        With a plan the reply has exactly its segments; without one, the
        last segment the settings allow must end the reply.
        """
        last = len(plan) if plan is not None else max_segments
        is_last = n_segments >= last - 1
        return torch.stack([is_last | (plan is None), ~is_last], dim=-1)

    def closes(self, close_ok: torch.Tensor) -> torch.Tensor:
        """``[R, V]`` mask of the closing tokens ``close_ok`` (``[R, 2]``) allows."""
        return (close_ok[:, :1] & self.eos) | (close_ok[:, 1:] & self.eot)

    def text_allowed(
        self,
        step: torch.Tensor,
        closes: torch.Tensor,
        min_tokens: int,
        max_tokens: int,
    ) -> torch.Tensor:
        """``[R, V]`` ids a text segment may take at content ``step`` (``[R]``):
        text ids until ``max_tokens``, closing tokens from ``min_tokens``."""
        text_ok = (step < max_tokens)[:, None] & self.text
        close = (step >= min_tokens)[:, None] & closes
        return text_ok | close
