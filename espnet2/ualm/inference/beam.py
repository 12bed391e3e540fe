"""Beam search over one text segment (understanding and text-only tasks).

Each prompt keeps ``beam_size`` hypotheses: rows of one batch whose KV cache
is reordered after every step. A hypothesis ends with ``<eos>``; a prompt is
done once it has ``beam_size`` ended hypotheses (HF's ``early_stopping=True``),
so one beam is exactly greedy decoding. The best ended hypothesis by
``score / length ** length_penalty`` is returned.
"""

import math
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from espnet2.ualm.inference.constraints import ReplyConstraints
from espnet2.ualm.inference.decoder import (
    Decoder,
    Prompt,
    Waveforms,
    batch_prompts,
    check_prompt,
)
from espnet2.ualm.inference.results import GeneratedSegment
from espnet2.ualm.inference.sampling import mask_logits
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.text.tokenizer import TextTokenizer


def beam_search_text(
    model: UALMModel,
    make_decoder: Callable[[int], Decoder],
    constraints: ReplyConstraints,
    tokenizer: Optional[TextTokenizer],
    prompts: Sequence[Prompt],
    beam_size: int = 4,
    max_tokens: int = 256,
    min_tokens: int = 0,
    length_penalty: float = 1.0,
    waveforms: Optional[Waveforms] = None,
) -> List[GeneratedSegment]:
    """The best text reply of each prompt (one ``<text>`` segment).

    ``make_decoder(capacity)`` gives the decoder (``UALMGenerator.decoder``:
    the generation's backend); ``constraints`` the id masks of the model's
    vocabulary (a text segment's ids, ``<eos>``), as generation uses them.
    """
    if beam_size < 1:
        raise ValueError("beam_size must be >= 1")
    if not 0 <= min_tokens <= max_tokens:
        raise ValueError("need 0 <= min_tokens <= max_tokens")
    if not prompts:
        return []
    vocab = model.vocabulary
    for p in prompts:
        check_prompt(p, vocab)
    n = beam_size
    n_prompts, n_rows = len(prompts), len(prompts) * beam_size
    device = constraints.device
    eos = vocab.eos_id
    only_eos = torch.tensor([[True, False]], device=device)
    closes = constraints.closes(only_eos)

    def frames_of(stream0: torch.Tensor) -> torch.Tensor:
        frames = torch.zeros(len(stream0), vocab.n_codebooks, dtype=torch.long)
        frames[:, 0] = stream0
        return frames.to(device)

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            batch = batch_prompts(prompts, waveforms, device=device)
            decoder = make_decoder(batch.ids.shape[1] + max_tokens + 2)
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
                step = torch.tensor([t], device=device)
                allowed = constraints.text_allowed(step, closes, min_tokens, max_tokens)
                logits = model.stream_logits(hidden, 0).float()
                logp = torch.log_softmax(mask_logits(logits, allowed), dim=-1)
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
        text = tokenizer.decode(token_ids) if tokenizer is not None else None
        out.append(
            GeneratedSegment(
                "text",
                "<eos>",
                token_ids,
                text=text,
                score=score,
                truncated=len(token_ids) >= max_tokens,
            )
        )
    return out
