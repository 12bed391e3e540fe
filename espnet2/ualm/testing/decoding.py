"""Test helpers of step-by-step decoding: a decoder of one backend, and the
reference it is compared with (one full forward, no cache)."""

from typing import List, Optional

import torch

from espnet2.ualm.inference.decoder import Decoder, PromptBatch
from espnet2.ualm.inference.fast import WeightCache
from espnet2.ualm.model.ualm_model import UALMModel


def make_decoder(
    model: UALMModel,
    backend: str = "fast",
    capacity: int = 1,
    weights: Optional[WeightCache] = None,
) -> Decoder:
    """A decoder of ``backend`` (``capacity`` 1 makes the cache grow)."""
    weights = weights or WeightCache(model, prepack=backend != "hf")
    return Decoder(model, backend, capacity, weights)


def full_forward_hidden(
    model: UALMModel, batch: PromptBatch, frames: List[torch.Tensor]
) -> torch.Tensor:
    """The reference of step-by-step decoding: one HF forward, no cache, over
    the prompt batch followed by ``frames`` (``[R, K]`` each), embedded by
    ``UALMModel.embed``. Returns the last prompt position's and every fed
    frame's hidden state, ``[1 + len(frames), R, D]``."""
    n_rows, length = batch.attention_mask.shape
    ids = torch.cat([batch.ids, torch.stack(frames, 1)], 1) if frames else batch.ids
    ones = batch.attention_mask.new_ones(n_rows, len(frames))
    mask = torch.cat([batch.attention_mask, ones], 1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        embeds = model.embed(
            ids,
            batch.audio_input,
            batch.audio_input_lengths,
            batch.audio_input_spans,
        )
        out = model.backbone.base_model(
            inputs_embeds=embeds,
            attention_mask=mask,
            position_ids=positions,
            use_cache=False,
        ).last_hidden_state
    return out[:, length - 1 :].transpose(0, 1)
