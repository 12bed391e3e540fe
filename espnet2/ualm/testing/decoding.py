"""Test helpers of step-by-step decoding: a decoder of one backend, and the
reference it is compared with (one full forward, no cache)."""

import dataclasses
from typing import List, Optional, Tuple

import torch

from espnet2.ualm.inference.decoder import Decoder, PromptBatch
from espnet2.ualm.inference.fast import WeightCache
from espnet2.ualm.inference.sampling import GREEDY
from espnet2.ualm.inference.settings import DecodeSettings
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


@dataclasses.dataclass
class CacheLog:
    """What ``record_cache`` saw: each prefill's prompt width, each
    ``extend``'s (positions the cache grew by, width of the input) and the
    hidden states it returned."""

    prefills: List[int] = dataclasses.field(default_factory=list)
    extends: List[Tuple[int, int]] = dataclasses.field(default_factory=list)
    extended: List[torch.Tensor] = dataclasses.field(default_factory=list)


def record_cache(monkeypatch) -> CacheLog:
    """Patches ``Decoder.prefill`` / ``extend`` (pytest's ``monkeypatch``)
    to log every call: the test that a conversation continues its KV cache
    (one prefill; each appended turn grows it by exactly its positions)."""
    log = CacheLog()
    prefill, extend = Decoder.prefill, Decoder.extend

    def count_prefill(self, batch):
        log.prefills.append(batch.ids.shape[1])
        return prefill(self, batch)

    def measure_extend(self, batch):
        before = self.length
        hidden = extend(self, batch)
        log.extends.append((self.length - before, batch.ids.shape[1]))
        log.extended.append(hidden)
        return hidden

    monkeypatch.setattr(Decoder, "prefill", count_prefill)
    monkeypatch.setattr(Decoder, "extend", measure_extend)
    return log


def greedy_short(cfg_scale: Optional[float]) -> DecodeSettings:
    """Greedy decoding of short replies (6 text tokens, 0.08-0.2 s of audio),
    for the conversation tests on the tiny random model."""
    return DecodeSettings(
        cfg_scale=cfg_scale,
        max_text_tokens=6,
        min_audio_seconds=0.08,
        max_audio_seconds=0.2,
        text_sampling=GREEDY,
        audio_sampling=GREEDY,
    )
