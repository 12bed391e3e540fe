"""Beam search over one text segment (understanding and text-only tasks).

Each prompt keeps ``beam_size`` hypotheses: rows of one batch whose KV cache
is reordered after every step. A hypothesis ends with ``<eos>``; a prompt is
done once it has ``beam_size`` ended hypotheses (HF's ``early_stopping=True``),
so one beam is exactly greedy decoding. The best ended hypothesis by
``score / length ** length_penalty`` is returned.
"""

import math
from typing import List, Optional, Protocol, Sequence, Tuple

import torch

from espnet2.ualm.inference.decoder import (
    Decoder,
    Prompt,
    Waveforms,
    batch_prompts,
    check_prompt,
)
from espnet2.ualm.inference.fast import WeightCache
from espnet2.ualm.inference.results import GeneratedSegment
from espnet2.ualm.inference.sampling import mask_logits
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.text.tokenizer import TextTokenizer
from espnet2.ualm.tokens.vocabulary import UALMVocabulary


class BeamSearchHost(Protocol):
    """What beam search uses of its caller (``UALMGenerator`` is one): named
    here so that this module does not import ``generate.py``, which imports it."""

    model: UALMModel
    vocab: UALMVocabulary
    tokenizer: Optional[TextTokenizer]
    device: torch.device
    weights: WeightCache
    fast: bool


def beam_search_text(
    gen: BeamSearchHost,
    prompts: Sequence[Prompt],
    beam_size: int = 4,
    max_tokens: int = 256,
    min_tokens: int = 0,
    length_penalty: float = 1.0,
    waveforms: Optional[Waveforms] = None,
    use_cache: bool = True,
) -> List[GeneratedSegment]:
    """The best text reply of each prompt (one ``<text>`` segment)."""
    if beam_size < 1:
        raise ValueError("beam_size must be >= 1")
    if not 0 <= min_tokens <= max_tokens:
        raise ValueError("need 0 <= min_tokens <= max_tokens")
    if not prompts:
        return []
    for p in prompts:
        check_prompt(p, gen.vocab)
    model, vocab, n = gen.model, gen.vocab, beam_size
    n_prompts, n_rows = len(prompts), len(prompts) * beam_size
    device = gen.device
    eos = vocab.eos_id
    text_mask = torch.zeros(vocab.size, dtype=torch.bool, device=device)
    text_mask[vocab.text_offset : vocab.audio_offset] = True
    eos_mask = torch.zeros_like(text_mask)
    eos_mask[eos] = True

    def frames_of(stream0: torch.Tensor) -> torch.Tensor:
        frames = torch.zeros(len(stream0), vocab.n_codebooks, dtype=torch.long)
        frames[:, 0] = stream0
        return frames.to(device)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            batch = batch_prompts(prompts, waveforms, device=device)
            gen.weights.refresh()
            decoder = Decoder(
                model,
                use_cache=use_cache,
                capacity=batch.ids.shape[1] + max_tokens + 2,
                weights=gen.weights,
                fast=gen.fast,
            )
            decoder.prefill(batch)
            marker = torch.full((n_prompts,), vocab.modality_id("text"))
            hidden = decoder.step(frames_of(marker))
            expand = torch.arange(n_prompts, device=device).repeat_interleave(n)
            decoder.select(expand)
            hidden = hidden.index_select(0, expand)

            scores = torch.full((n_prompts, n), -math.inf, device=device)
            scores[:, 0] = 0.0
            tokens: List[List[int]] = [[] for _ in range(n_rows)]
            finished: List[List[Tuple[float, List[int]]]] = [
                [] for _ in range(n_prompts)
            ]
            done = [False] * n_prompts
            for t in range(max_tokens + 1):
                if t >= max_tokens:
                    allowed = eos_mask
                elif t < min_tokens:
                    allowed = text_mask
                else:
                    allowed = text_mask | eos_mask
                logits = model.stream_logits(hidden, 0).float()
                logp = torch.log_softmax(mask_logits(logits, allowed[None]), dim=-1)
                total = (scores.reshape(-1, 1) + logp).view(n_prompts, -1)
                top_scores, top_index = total.topk(2 * n, dim=-1)
                top_scores, top_index = top_scores.tolist(), top_index.tolist()
                rows, next_tokens, next_scores = [], [], []
                vocab_size = logp.shape[-1]
                for b in range(n_prompts):
                    alive: List[Tuple[int, int, float]] = []
                    if not done[b]:
                        for rank, (score, index) in enumerate(
                            zip(top_scores[b], top_index[b])
                        ):
                            if score == -math.inf:
                                break
                            row = b * n + index // vocab_size
                            token = index % vocab_size
                            if token == eos:
                                if rank < n:
                                    finished[b].append((score, tokens[row]))
                                continue
                            alive.append((row, token, score))
                            if len(alive) == n:
                                break
                        done[b] = len(finished[b]) >= n or not alive
                    if done[b]:
                        alive = []
                    alive += [(b * n, 0, -math.inf)] * (n - len(alive))
                    for row, token, score in alive:
                        rows.append(row)
                        next_tokens.append(token)
                        next_scores.append(score)
                if all(done):
                    break
                tokens = [tokens[r] + [tok] for r, tok in zip(rows, next_tokens)]
                scores = torch.tensor(next_scores, device=device).view(n_prompts, n)
                decoder.select(torch.tensor(rows, device=device))
                hidden = decoder.step(frames_of(torch.tensor(next_tokens)))
    finally:
        model.train(was_training)

    out = []
    for hyps in finished:
        score, ids = max(hyps, key=lambda h: h[0] / (len(h[1]) + 1) ** length_penalty)
        token_ids = [i - vocab.text_offset for i in ids]
        text = gen.tokenizer.decode(token_ids) if gen.tokenizer is not None else None
        out.append(GeneratedSegment("text", "<eos>", token_ids, text=text, score=score))
    return out
