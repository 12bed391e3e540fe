"""Prompt batching and step-by-step decoding through the backbone.

Prompts of different lengths are left-padded so that every row's next
position is the last column: the attention mask hides the padding and the
position ids count only real positions (from 0, as in training), so a row
is computed as if it were alone. Each step feeds one multi-stream frame per
row: its embedding is the sum of the ``K`` stream embeddings
(``UALMModel.embed``), and a KV cache preallocated for the whole reply
(``fast.PreallocatedKVLayer``) keeps the keys and values of everything
before. Input appended later (``Decoder.extend``: a user turn in the middle
of a conversation) is right-padded instead; its padding stays masked.

The decode step is chosen once, by ``backend`` (``settings.BACKENDS``): the
Hugging Face forward over the cache (``hf``, the reference the others are
tested against), ``fast.FastBackbone`` (``fast``), or ``static_step.StaticStep``
compiled (``compile``) or replayed as a CUDA graph (``cuda_graph``). The
prompt itself always goes through the HF forward.

With classifier-free guidance the batch holds the ``B`` conditional rows
followed by their ``B`` unconditional rows, so one forward per step serves
both.
"""

import dataclasses
import logging
import math
from typing import List, Mapping, Optional, Sequence, Union

import torch
import torch.nn.functional as F

from espnet2.ualm.inference.fast import (
    FastBackbone,
    WeightCache,
    fast_backbone_unsupported,
    preallocated_cache,
)
from espnet2.ualm.inference.settings import BACKENDS
from espnet2.ualm.inference.static_step import StaticStep, static_capacity
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.tokens.sequence import BuiltSequence
from espnet2.ualm.tokens.vocabulary import CFG_PROMPT, UALMVocabulary

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

    An all-pad prompt (what the CFG branch sees: ``<pad>``, or the layout's
    ``cfg_null`` in stream 0) is accepted too: it asks for unconditional
    generation.
    """
    ids = prompt_ids(prompt)
    if ids.shape[1] != vocab.n_codebooks:
        raise ValueError(
            f"prompt has {ids.shape[1]} streams, the model {vocab.n_codebooks}"
        )
    nulled = bool(((ids[:, 0] == 0) | (ids[:, 0] == vocab.cfg_null_id)).all())
    nulled = nulled and not bool(ids[:, 1:].any())
    if not nulled and int(ids[-1, 0]) != vocab.role_id("assistant"):
        raise ValueError(
            "a prompt must end with <assistant> (build it with "
            "add_generation_prompt=True or prompt_only=True)"
        )
    return ids


def unconditional_ids(
    prompt: Prompt, vocab: Optional[UALMVocabulary] = None
) -> torch.Tensor:
    """The CFG branch's prompt: the condition replaced by ``<pad>``.

    Training pads an example's ``condition_mask`` positions (role tokens and
    every non-assistant turn); a prompt of a CFG task (text-to-audio) has all
    of its positions in the condition, so this is the spec's all-pad prompt
    of the same length. A prompt without a condition mask (a raw tensor, or a
    task built without CFG) becomes all pad as well.

    ``vocab``: its ``AudioLayout`` says what the nulled positions hold
    (``cfg_null`` in stream 0, id 0 in the others) and which they are
    (``cfg_extent``: the condition, or every position of the prompt);
    ``None``: the default layout's (``<pad>``, the condition).
    """
    ids = prompt_ids(prompt)
    null = torch.zeros_like(ids[0])
    nulled = torch.ones(len(ids), dtype=torch.bool)
    if vocab is not None:
        null[0] = vocab.cfg_null_id
    whole = vocab is not None and vocab.audio_layout.cfg_extent == CFG_PROMPT
    if not whole and isinstance(prompt, BuiltSequence):
        if bool(prompt.condition_mask.any()):
            nulled = prompt.condition_mask
    return torch.where(nulled[:, None], null, ids)


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
    left_pad: bool = True,
    vocab: Optional[UALMVocabulary] = None,
) -> PromptBatch:
    """Pads ``prompts`` (and their unconditional copies) into one batch.

    ``waveforms`` maps the audio-input keys of the prompts to 1-D waveforms
    at the encoder's sample rate (one mapping for all prompts, or one per
    prompt). A placeholder span the unconditional prompt has padded is not
    encoded for that row. ``left_pad=False`` pads on the right (input
    appended to a conversation, ``Decoder.extend``). ``vocab``: the model's,
    whose ``AudioLayout`` makes the unconditional rows (``unconditional_ids``).
    """
    rows: List[torch.Tensor] = [prompt_ids(p) for p in prompts]
    if not rows:
        raise ValueError("no prompts to batch")
    if with_unconditional:
        rows += [unconditional_ids(p, vocab) for p in prompts]
    n_streams = rows[0].shape[1]
    if any(r.shape[1] != n_streams for r in rows):
        raise ValueError("all prompts need the same number of streams")
    length = max(r.shape[0] for r in rows)
    ids = torch.zeros(len(rows), length, n_streams, dtype=torch.long)
    mask = torch.zeros(len(rows), length, dtype=torch.long)
    spans: List[List[int]] = []
    audio: List[torch.Tensor] = []
    for r, row_ids in enumerate(rows):
        offset = length - row_ids.shape[0] if left_pad else 0
        ids[r, offset : offset + len(row_ids)] = row_ids
        mask[r, offset : offset + len(row_ids)] = 1
        prompt = prompts[r % len(prompts)]
        if not isinstance(prompt, BuiltSequence):
            continue
        source = _waveforms_of(waveforms, r % len(prompts), len(prompts))
        for span in prompt.audio_inputs:
            if int(row_ids[span.start, 0]) != int(prompt.ids[span.start, 0]):
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


def resolve_backend(name: str, model: UALMModel) -> str:
    """The decode step ``name`` asks for, checked against the model
    (``auto``: ``fast`` where ``FastBackbone`` reproduces the backbone)."""
    if name not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {name!r}")
    unsupported = fast_backbone_unsupported(model)
    if name == "auto":
        if unsupported:
            logging.info(f"decode steps through the HF forward: {unsupported}")
        return "hf" if unsupported else "fast"
    if name != "hf" and unsupported:
        raise ValueError(f"backend {name!r} is not available: {unsupported}")
    device = model.head_weight.device
    if "cuda_graph" in name and device.type != "cuda":
        raise ValueError(
            f"backend {name!r} needs a model on a CUDA device, not {device}"
        )
    return name


class Decoder:
    """Runs the backbone over a prompt batch, then one frame per row per step.

    ``prefill``, ``extend`` and ``step`` return the final hidden state of each
    row's last position, ``[R, D]``; ``UALMModel.stream_logits`` (or the fused
    ``AudioHeads``) turns it into logits. ``select`` reorders or repeats rows
    (beam search).

    Keys and values live in ``PreallocatedKVLayer`` buffers of ``capacity``
    positions (prompt + longest reply; grown by doubling if exceeded).
    ``backend`` is a resolved name (``resolve_backend``): ``hf`` runs every
    step through the HF forward; ``fast`` through ``FastBackbone`` (with the
    prepared weights of ``weights``); ``compile``, ``cuda_graph`` and
    ``compile+cuda_graph`` through a ``StaticStep`` over a capacity rounded
    up to ``CAPACITY_QUANTUM``, until the cache outgrows it or ``select`` /
    ``extend`` change it (then ``FastBackbone``).
    """

    def __init__(
        self,
        model: UALMModel,
        backend: str,
        capacity: int,
        weights: WeightCache,
    ):
        if backend not in BACKENDS or backend == "auto":
            raise ValueError(f"Decoder takes a resolved backend, not {backend!r}")
        self.model = model
        self.backend = backend
        self.static = backend not in ("hf", "fast")  # through StaticStep
        self.capacity = int(capacity)
        self.weights = weights
        self.cache = None
        self.fast: Optional[FastBackbone] = None
        self.static_step: Optional[StaticStep] = None
        self._static_tried = False
        self.length = 0  # positions so far (padding included)
        self._mask: Optional[torch.Tensor] = None  # [R, capacity] long
        self._positions: Optional[torch.Tensor] = None  # [R, capacity] long
        self._next_position: Optional[torch.Tensor] = None  # [R]
        # FastBackbone's additive mask [R, n_kv, 1, capacity] (padding), or None
        self._attn_bias: Optional[torch.Tensor] = None

    @property
    def attention_mask(self) -> torch.Tensor:
        """The attention mask of the positions so far, ``[R, length]``."""
        return self._mask[:, : self.length]

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
        """HF forward of ``[R, L, D]`` new positions over the cache -> ``[R, L, D]``."""
        out = self.model.backbone.base_model(
            inputs_embeds=embeds,
            attention_mask=self.attention_mask,
            position_ids=position_ids,
            past_key_values=self.cache,
            use_cache=True,
        )
        self.cache = out.past_key_values
        return out.last_hidden_state

    def _append(self, batch: PromptBatch) -> torch.Tensor:
        """Writes a batch's positions after those so far; ``[R, L, D]`` out."""
        embeds = self.model.embed(
            batch.ids,
            batch.audio_input,
            batch.audio_input_lengths,
            batch.audio_input_spans,
        )
        mask = batch.attention_mask
        rows, n_new = mask.shape
        start = self.length
        self._reserve(start + n_new + 1)
        self._mask[:, start : start + n_new] = mask
        positions = batch.position_ids  # from 0 over each row's real positions
        if self._next_position is not None:
            positions = positions + self._next_position[:, None]
        self._positions[:, start : start + n_new] = positions
        first = 0 if self._next_position is None else self._next_position
        self._next_position = first + mask.sum(-1)
        self.length = start + n_new
        if self.fast is not None and not bool(mask.all()):
            if self._attn_bias is None:
                self._attn_bias = embeds.new_zeros(
                    rows, self.fast.n_kv, 1, self._mask.shape[1]
                )
            hole = mask == 0
            self._attn_bias[..., start : start + n_new].masked_fill_(
                hole[:, None, None], -math.inf
            )
        return self._run_hf(embeds, positions)

    def prefill(self, batch: PromptBatch) -> torch.Tensor:
        """Runs the left-padded prompts: the first positions of the cache."""
        rows, length = batch.attention_mask.shape
        capacity = max(self.capacity, length + 1)
        if self.static:
            capacity = static_capacity(capacity)
        self._mask = batch.attention_mask.new_ones(rows, capacity)
        self._positions = batch.position_ids.new_zeros(rows, capacity)
        self._next_position = None
        self.length = 0
        self.cache = preallocated_cache(self.model, capacity)
        if self.backend != "hf":
            self.fast = self.weights.backbone(rows)
            self.fast.rope_table(capacity)
        return self._append(batch)[:, -1]

    def extend(self, batch: PromptBatch) -> torch.Tensor:
        """Appends right-padded input (``batch_prompts(..., left_pad=False)``)
        to every row; a row's padding stays masked. Returns the hidden state
        of each row's last real new position (a row without new input:
        of its last new column, which the caller ignores)."""
        if batch.attention_mask.shape[0] != self._mask.shape[0]:
            raise ValueError(
                f"extend: {batch.attention_mask.shape[0]} rows for a decoder of "
                f"{self._mask.shape[0]}"
            )
        self._drop_static("the cache was extended")
        hidden = self._append(batch)
        last = (batch.attention_mask.sum(-1) - 1).clamp(min=0)
        return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]

    def step(
        self, frames: torch.Tensor, hole: Optional[torch.Tensor] = None
    ) -> torch.Tensor:
        """Feeds one ``[R, K]`` frame per row (generated ids: no placeholders).

        ``hole`` (``[R]`` bool): rows for which this position is masked and
        takes no position id (a paused conversation waiting for the others).
        """
        weight = self.model.backbone.get_input_embeddings().weight
        embeds = F.embedding_bag(frames, weight, mode="sum", padding_idx=0)
        position = self._next_position
        column = self.length
        self._reserve(column + 1)
        self._positions[:, column] = position
        if hole is None:
            self._mask[:, column] = 1
            self._next_position = position + 1
        else:
            self._mask[:, column] = (~hole).long()
            self._next_position = position + (~hole).long()
            if self.fast is not None:
                self._hide(column, hole)
        self.length += 1
        if self.fast is None:
            return self._run_hf(embeds[:, None], position[:, None])[:, -1]
        static = self._static(column)
        if static is not None:
            return static(embeds, column, position)
        self.fast.rope_table(column + 1)  # positions never exceed the column index
        return self.fast.step(
            embeds, self.cache.layers, column, position, self._attn_bias
        )

    def _hide(self, column: int, hole: torch.Tensor) -> None:
        """Masks ``column`` of the rows ``hole`` in FastBackbone's bias (the
        static step's bias opens columns for every row: it stops here)."""
        self._drop_static("a row skips a position")
        self._static_tried = True
        if self._attn_bias is None:
            rows, capacity = self._mask.shape
            dtype = self.model.head_weight.dtype
            self._attn_bias = torch.zeros(
                rows, self.fast.n_kv, 1, capacity, dtype=dtype, device=hole.device
            )
        self._attn_bias[:, :, :, column].masked_fill_(hole[:, None, None], -math.inf)

    def _static(self, column: int) -> Optional[StaticStep]:
        """The ``StaticStep`` for a step writing ``column``: built at the first
        step, ``None`` once the cache no longer fits it."""
        if not self.static:
            return None
        static = self.static_step
        if static is not None and static.fits(self.cache.layers, column + 1):
            return static
        if static is not None:
            self._drop_static("the cache outgrew it or was reordered")
        if not self._static_tried:
            self._static_tried = True
            capacity = self.cache.layers[0].capacity
            if column + 1 <= capacity:
                self.static_step = StaticStep(
                    self.fast,
                    self.cache.layers,
                    capacity,
                    column,
                    self._attn_bias,
                    cuda_graph="cuda_graph" in self.backend,
                    compile_step="compile" in self.backend,
                )
        return self.static_step

    def _drop_static(self, why: str) -> None:
        if self.static_step is not None:
            logging.info(
                "static decode step ends at position %d (%s)", self.length, why
            )
            self.static_step = None

    def select(self, index: torch.Tensor) -> None:
        """Keeps rows ``index`` (in that order; repeats allowed)."""
        index = index.to(self._mask.device)
        self._mask = self._mask.index_select(0, index)
        self._positions = self._positions.index_select(0, index)
        self._next_position = self._next_position.index_select(0, index)
        if self._attn_bias is not None:
            self._attn_bias = self._attn_bias.index_select(0, index)
        self.cache.reorder_cache(index)
