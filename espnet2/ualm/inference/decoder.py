"""Prompt batching and step-by-step decoding through the backbone.

Prompts of different lengths are left-padded so that every row's next
position is the last column: the attention mask hides the padding and the
position ids count only real positions (from 0, as in training), so a row
is computed as if it were alone. Each step feeds one multi-stream frame per
row: its embedding is the sum of the ``K`` stream embeddings
(``UALMModel.embed``), and a KV cache preallocated for the whole reply
(``fast.PreallocatedKVLayer``) keeps the keys and values of everything
before; decode steps run ``fast.FastBackbone`` (a lean Qwen2/Llama step)
or, for other backbones, the HF forward over the same cache.
``use_cache=False`` recomputes the whole sequence every step through the HF
forward instead: slow, but the reference the cache is tested against.

With classifier-free guidance the batch holds the ``B`` conditional rows
followed by their ``B`` unconditional rows, so one forward per step serves
both.
"""

import dataclasses
import logging
import math
from typing import TYPE_CHECKING, List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.tokens.sequence import BuiltSequence
from espnet2.ualm.tokens.vocabulary import UALMVocabulary

if TYPE_CHECKING:
    from espnet2.ualm.inference.fast import FastBackbone, WeightCache
    from espnet2.ualm.inference.static_step import StaticStep

Prompt = Union[BuiltSequence, torch.Tensor]
Waveforms = Union[Mapping[str, torch.Tensor], Sequence[Mapping[str, torch.Tensor]]]


def prompt_ids(prompt: Prompt) -> torch.Tensor:
    """The ``[T, K]`` ids of a prompt (a built sequence or a tensor)."""
    ids = prompt.ids if isinstance(prompt, BuiltSequence) else torch.as_tensor(prompt)
    if ids.dim() != 2 or ids.shape[0] == 0:
        raise ValueError(f"a prompt must be non-empty [T, K] ids, not {ids.shape}")
    return ids.long()


def check_prompt(prompt: Prompt, vocab: UALMVocabulary) -> torch.Tensor:
    """The prompt's ids; raises unless it ends with the ``<assistant>`` token.

    An all-pad prompt (what the CFG branch sees) is accepted too: it asks
    for unconditional generation.
    """
    ids = prompt_ids(prompt)
    if ids.shape[1] != vocab.n_codebooks:
        raise ValueError(
            f"prompt has {ids.shape[1]} streams, the model {vocab.n_codebooks}"
        )
    if bool(ids.any()) and int(ids[-1, 0]) != vocab.role_id("assistant"):
        raise ValueError(
            "a prompt must end with <assistant> (build it with "
            "add_generation_prompt=True or prompt_only=True)"
        )
    return ids


def unconditional_ids(prompt: Prompt) -> torch.Tensor:
    """The CFG branch's prompt: the condition replaced by ``<pad>``.

    Training pads an example's ``condition_mask`` positions (role tokens and
    every non-assistant turn); a prompt of a CFG task (text-to-audio) has all
    of its positions in the condition, so this is the spec's all-pad prompt
    of the same length. A prompt without a condition mask (a raw tensor, or a
    task built without CFG) becomes all pad as well.
    """
    ids = prompt_ids(prompt)
    if isinstance(prompt, BuiltSequence) and bool(prompt.condition_mask.any()):
        return ids.masked_fill(prompt.condition_mask[:, None], 0)
    return torch.zeros_like(ids)


@dataclasses.dataclass
class PromptBatch:
    """Left-padded prompts, ready for ``UALMModel.embed``.

    ``ids`` [R, L, K]; ``attention_mask`` [R, L] (0 on the left padding);
    ``position_ids`` [R, L]; the audio-input tensors as in the training
    batch (spans shifted by each row's padding). ``R`` is ``B``, or ``2B``
    with the unconditional rows after the conditional ones.
    """

    ids: torch.Tensor
    attention_mask: torch.Tensor
    position_ids: torch.Tensor
    audio_input: Optional[torch.Tensor] = None
    audio_input_lengths: Optional[torch.Tensor] = None
    audio_input_spans: Optional[torch.Tensor] = None


def _waveforms_of(waveforms: Optional[Waveforms], row: int, n_rows: int):
    if waveforms is None or isinstance(waveforms, Mapping):
        return waveforms
    if len(waveforms) != n_rows:
        raise ValueError(
            f"{len(waveforms)} waveform mappings for {n_rows} prompts: give one "
            "mapping per prompt, or one mapping for all"
        )
    return waveforms[row]


def batch_prompts(
    prompts: Sequence[Prompt],
    waveforms: Optional[Waveforms] = None,
    with_unconditional: bool = False,
    device: Optional[torch.device] = None,
) -> PromptBatch:
    """Left-pads ``prompts`` (and their unconditional copies) into one batch.

    ``waveforms`` maps the audio-input keys of the prompts to 1-D waveforms
    at the encoder's sample rate (one mapping for all prompts, or one per
    prompt). A placeholder span the unconditional prompt has padded is not
    encoded for that row.
    """
    rows: List[torch.Tensor] = [prompt_ids(p) for p in prompts]
    if with_unconditional:
        rows += [unconditional_ids(p) for p in prompts]
    n_streams = rows[0].shape[1]
    if any(r.shape[1] != n_streams for r in rows):
        raise ValueError("all prompts need the same number of streams")
    length = max(r.shape[0] for r in rows)
    ids = torch.zeros(len(rows), length, n_streams, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    spans: List[List[int]] = []
    audio: List[torch.Tensor] = []
    for r, row_ids in enumerate(rows):
        offset = length - row_ids.shape[0]
        ids[r, offset:] = row_ids
        mask[r, offset:] = 1
        prompt = prompts[r % len(prompts)]
        if not isinstance(prompt, BuiltSequence):
            continue
        source = _waveforms_of(waveforms, r % len(prompts), len(prompts))
        for span in prompt.audio_inputs:
            if not bool((row_ids[span.start, 0] != 0).item()):
                continue  # dropped with the condition (CFG branch)
            if source is None or span.key not in source:
                raise KeyError(f"no waveform for audio input {span.key!r}")
            spans.append([r, offset + span.start, span.num_frames])
            audio.append(torch.as_tensor(source[span.key]).float().reshape(-1))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    batch = PromptBatch(ids, mask, positions)
    if audio:
        n_samples = max(len(a) for a in audio)
        wav = torch.zeros(len(audio), n_samples)
        for i, a in enumerate(audio):
            wav[i, : len(a)] = a
        batch.audio_input = wav
        batch.audio_input_lengths = torch.tensor([len(a) for a in audio])
        batch.audio_input_spans = torch.tensor(spans, dtype=torch.long)
    if device is not None:
        for field in dataclasses.fields(batch):
            value = getattr(batch, field.name)
            if value is not None:
                setattr(batch, field.name, value.to(device))
    return batch


class Decoder:
    """Runs the backbone over a prompt batch, then one frame per row per step.

    ``prefill`` and ``step`` return the final hidden state of each row's
    last position, ``[R, D]``; ``UALMModel.stream_logits`` (or the fused
    ``AudioHeads``) turns it into logits. ``select`` reorders or repeats
    rows (beam search).

    With the cache, keys and values live in ``PreallocatedKVLayer`` buffers
    of ``capacity`` positions (prompt + longest reply; grown by doubling if
    exceeded). Decode steps run ``FastBackbone`` when the backbone is one it
    reproduces (``weights`` supplies the prepared weights; without it they
    are prepared here), else the HF forward over the same cache.
    ``fast=False`` forces the HF forward. Without the cache every step
    recomputes the whole sequence through the HF forward (the reference).
    ``cuda_graph`` / ``compile_step``: the fast decode step runs as a
    ``StaticStep`` (replayed as a CUDA graph / compiled by ``torch.compile``)
    over a capacity rounded up to ``CAPACITY_QUANTUM``, until the cache
    outgrows it or ``select`` reorders it (then ``FastBackbone.step``).
    """

    def __init__(
        self,
        model: UALMModel,
        use_cache: bool = True,
        capacity: Optional[int] = None,
        weights: Optional["WeightCache"] = None,
        fast: bool = True,
        cuda_graph: bool = False,
        compile_step: bool = False,
    ):
        self.model = model
        self.cuda_graph = cuda_graph
        self.compile_step = compile_step
        self.static_step: Optional["StaticStep"] = None
        self._static_tried = False
        self.use_cache = use_cache
        self.capacity = capacity
        self.weights = weights
        self.fast = fast
        self.cache = None
        self.backbone_step: Optional["FastBackbone"] = None
        self.embeds: Optional[torch.Tensor] = None  # without cache: all so far
        self.length = 0  # positions so far (the prompt's padded length included)
        self.padded = False  # some row has left padding
        self._mask: Optional[torch.Tensor] = None  # [R, capacity] long
        self._positions: Optional[torch.Tensor] = None  # [R, capacity] long
        self._next_position: Optional[torch.Tensor] = None  # [R]
        # FastBackbone's additive mask [R, n_kv, 1, capacity] (left padding)
        self._attn_bias: Optional[torch.Tensor] = None

    # the attention mask and position ids of the positions so far
    @property
    def attention_mask(self) -> torch.Tensor:
        return self._mask[:, : self.length]

    @property
    def position_ids(self) -> torch.Tensor:
        return self._positions[:, : self.length]

    def _reserve(self, end: int) -> None:
        size = self._mask.shape[1]
        if end <= size:
            return
        size = max(end, 2 * size)
        for name in ("_mask", "_positions"):
            old = getattr(self, name)
            new = old.new_ones(old.shape[0], size)
            new[:, : self.length] = old[:, : self.length]
            setattr(self, name, new)
        if self._attn_bias is not None:
            old = self._attn_bias
            self._attn_bias = old.new_zeros(*old.shape[:-1], size)
            self._attn_bias[..., : self.length] = old[..., : self.length]

    def _run_hf(self, embeds: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        base = self.model.backbone.base_model
        if self.use_cache:
            out = base(
                inputs_embeds=embeds,
                attention_mask=self.attention_mask,
                position_ids=position_ids,
                past_key_values=self.cache,
                use_cache=True,
            )
            self.cache = out.past_key_values
        else:
            out = base(
                inputs_embeds=self.embeds,
                attention_mask=self.attention_mask,
                position_ids=self.position_ids,
                use_cache=False,
            )
        return out.last_hidden_state[:, -1]

    def prefill(self, batch: PromptBatch) -> torch.Tensor:
        embeds = self.model.embed(
            batch.ids,
            batch.audio_input,
            batch.audio_input_lengths,
            batch.audio_input_spans,
        )
        rows, length = batch.attention_mask.shape
        capacity = max(self.capacity or 0, length + 1)
        if self._static_mode:
            from espnet2.ualm.inference.static_step import static_capacity

            capacity = static_capacity(capacity)
        self._mask = batch.attention_mask.new_ones(rows, capacity)
        self._mask[:, :length] = batch.attention_mask
        self._positions = batch.position_ids.new_zeros(rows, capacity)
        self._positions[:, :length] = batch.position_ids
        self._next_position = batch.position_ids[:, -1] + 1
        self.length = length
        self.padded = not bool(batch.attention_mask.all())
        self.embeds = None if self.use_cache else embeds
        if self.use_cache:
            from espnet2.ualm.inference.fast import WeightCache, preallocated_cache

            self.cache = preallocated_cache(self.model, capacity)
            if self.fast:
                if self.weights is None:
                    self.weights = WeightCache(self.model)
                fast = self.weights.backbone(rows)
                self.backbone_step = fast
                if fast is not None:
                    fast.rope_table(capacity)
                    if self.padded:
                        bias = embeds.new_zeros(rows, fast.n_kv, 1, capacity)
                        pad = batch.attention_mask == 0
                        bias[..., :length].masked_fill_(pad[:, None, None], -math.inf)
                        self._attn_bias = bias
        return self._run_hf(embeds, batch.position_ids)

    def step(self, frames: torch.Tensor) -> torch.Tensor:
        """Feeds one ``[R, K]`` frame per row (generated ids: no placeholders)."""
        weight = self.model.backbone.get_input_embeddings().weight
        embeds = F.embedding_bag(frames, weight, mode="sum", padding_idx=0)
        position = self._next_position
        self._reserve(self.length + 1)
        self._mask[:, self.length] = 1
        self._positions[:, self.length] = position
        self._next_position = position + 1
        length = self.length
        self.length += 1
        if not self.use_cache:
            self.embeds = torch.cat([self.embeds, embeds[:, None]], dim=1)
            return self._run_hf(embeds[:, None], position[:, None])
        fast = self.backbone_step
        if fast is None:
            return self._run_hf(embeds[:, None], position[:, None])
        static = self._static(length)
        if static is not None:
            return static(embeds, length, position)
        fast.rope_table(length + 1)  # positions never exceed the column index
        return fast.step(embeds, self.cache.layers, length, position, self._attn_bias)

    @property
    def _static_mode(self) -> bool:
        return self.use_cache and self.fast and (self.cuda_graph or self.compile_step)

    def _static(self, length: int) -> Optional["StaticStep"]:
        """The ``StaticStep`` for a step writing column ``length``: built at the
        first step, ``None`` once the cache no longer fits it."""
        if not self._static_mode:
            return None
        static = self.static_step
        if static is not None and static.fits(self.cache.layers, length + 1):
            return static
        if static is not None:
            logging.info(
                "static decode step ends at position %d (the cache outgrew its "
                "%d positions or was reordered)",
                length,
                static.capacity,
            )
            self.static_step = None
        if not self._static_tried:
            self._static_tried = True
            from espnet2.ualm.inference.static_step import StaticStep

            capacity = self.cache.layers[0].capacity
            if length + 1 <= capacity:
                self.static_step = StaticStep(
                    self.backbone_step,
                    self.cache.layers,
                    capacity,
                    length,
                    self._attn_bias,
                    cuda_graph=self.cuda_graph,
                    compile_step=self.compile_step,
                )
        return self.static_step

    def select(self, index: torch.Tensor) -> None:
        """Keeps rows ``index`` (in that order; repeats allowed)."""
        index = index.to(self._mask.device)
        self._mask = self._mask.index_select(0, index)
        self._positions = self._positions.index_select(0, index)
        self._next_position = self._next_position.index_select(0, index)
        if self._attn_bias is not None:
            self._attn_bias = self._attn_bias.index_select(0, index)
        if self.use_cache:
            self.cache.reorder_cache(index)
        else:
            self.embeds = self.embeds.index_select(0, index)
