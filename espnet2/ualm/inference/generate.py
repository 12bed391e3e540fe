"""Generation of UALM replies: text, audio, or both, batched, with CFG.

A prompt ends with the ``<assistant>`` role token (``SequenceBuilder.build(...,
add_generation_prompt=True)``). A reply is a series of turns laid out as the
sequence builder does:

* the modality marker, ``<text>`` or ``<audio>`` (predicted by the model, or
  forced by the caller's plan);
* text: stream 0 over the text ids and the closing tokens, streams 1..K-1
  ``<pad>`` (id 0);
* audio: one delayed frame per step. Stream ``k`` is forced to its codebook
  pad during the first ``k`` steps; each stream is masked to its own
  codebook (pads excluded); stream 0 may also close the segment with
  ``<eos>``/``<eot>``; afterwards stream 0 is forced to its pad and stream
  ``k`` to its pad once its delayed frames are done, so the segment ends
  ``K - 1`` steps after the closing token and de-interleaves to ``[T, K]``
  codes (``T + K`` steps: codes plus the closing frame);
* ``<eos>`` ends the reply; after ``<eot>`` the ``<assistant>`` role token
  is given and the model writes the next turn's marker (text, then audio, as
  reasoning does).

Classifier-free guidance doubles the batch: row ``B + b`` is row ``b``'s
prompt with its condition padded (``decoder.unconditional_ids``), fed the
same generated tokens, except the role tokens between turns, which training
pads with the condition. Audio tokens use ``uncond + s * (cond - uncond)``;
markers and text use the conditional logits.
"""

import dataclasses
import enum
import math
from typing import Dict, FrozenSet, List, Optional, Sequence, Tuple, Union

import torch

from espnet2.ualm.inference.beam import beam_search_text
from espnet2.ualm.inference.decoder import (
    Decoder,
    Prompt,
    Waveforms,
    batch_prompts,
    check_prompt,
)
from espnet2.ualm.inference.fast import WeightCache
from espnet2.ualm.inference.results import GeneratedSegment, GenerationResult
from espnet2.ualm.inference.sampling import (
    GREEDY,
    RELEASE_AUDIO_SAMPLING,
    SamplingConfig,
    sample,
)
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.text.tokenizer import TextTokenizer
from espnet2.ualm.tokens.delay import delay_deinterleave
from espnet2.ualm.tokens.vocabulary import UALMVocabulary

GENERATED_MODALITIES: Tuple[str, ...] = ("text", "audio")
_EPS = 1e-9


@dataclasses.dataclass(frozen=True)
class GenerationConfig:
    """Settings of one ``generate`` call.

    modalities: ``None``: the model chooses each segment's modality and when
        to stop; ``"audio"``/``"text"``: exactly one segment of that kind;
        a sequence (``("text", "audio")``): exactly those segments in order.
    min_audio_seconds, max_audio_seconds: bounds of each audio segment,
        turned into frames with the generator's ``frame_rate``.
    min_text_tokens, max_text_tokens: bounds of each text segment.
    max_segments: most segments of a reply when the model chooses.
    cfg_scale: guidance scale ``s`` of audio tokens (paper: 3); ``None``
        runs no unconditional branch.
    text_sampling, audio_sampling: token choice (release: text greedy,
        audio temperature 0.8 with top-k 20).
    use_cache: keep the KV cache (else recompute everything each step).
    """

    modalities: Union[None, str, Sequence[str]] = None
    min_audio_seconds: float = 0.0
    max_audio_seconds: float = 10.0
    min_text_tokens: int = 0
    max_text_tokens: int = 256
    max_segments: int = 4
    cfg_scale: Optional[float] = 3.0
    text_sampling: SamplingConfig = GREEDY
    audio_sampling: SamplingConfig = RELEASE_AUDIO_SAMPLING
    use_cache: bool = True

    def __post_init__(self):
        plan = self.plan
        if plan is not None:
            if not plan:
                raise ValueError("modalities: an empty plan generates nothing")
            bad = [m for m in plan if m not in GENERATED_MODALITIES]
            if bad:
                raise ValueError(
                    f"modalities {bad} cannot be generated; use {GENERATED_MODALITIES}"
                )
        if self.max_segments < 1:
            raise ValueError("max_segments must be >= 1")
        if not 0 <= self.min_audio_seconds <= self.max_audio_seconds:
            raise ValueError("need 0 <= min_audio_seconds <= max_audio_seconds")
        if not 0 <= self.min_text_tokens <= self.max_text_tokens:
            raise ValueError("need 0 <= min_text_tokens <= max_text_tokens")

    @property
    def plan(self) -> Optional[Tuple[str, ...]]:
        """The forced modalities, one per segment, or ``None``."""
        if self.modalities is None:
            return None
        if isinstance(self.modalities, str):
            return (self.modalities,)
        return tuple(self.modalities)

    @property
    def may_generate_audio(self) -> bool:
        return self.plan is None or "audio" in self.plan

    def audio_frame_bounds(self, frame_rate: float) -> Tuple[int, int]:
        """(min, max) frames of an audio segment at the codec's frame rate."""
        low = math.ceil(self.min_audio_seconds * frame_rate - _EPS)
        high = math.floor(self.max_audio_seconds * frame_rate + _EPS)
        return low, high


class _Phase(enum.Enum):
    ROLE = "role"  # the given <assistant> token opening the next turn
    MODALITY = "modality"  # the turn's modality marker
    TEXT = "text"
    AUDIO = "audio"
    DONE = "done"


@dataclasses.dataclass
class _Row:
    """Where one reply stands."""

    phase: _Phase = _Phase.MODALITY
    step: int = 0  # content steps of the current segment
    closed_at: Optional[int] = None  # audio: step of stream 0's closing token
    close_id: int = -1
    # chunks of [n, K] frames (content: the current segment's)
    content: List[torch.Tensor] = dataclasses.field(default_factory=list)
    frames: List[torch.Tensor] = dataclasses.field(default_factory=list)
    segments: List[GeneratedSegment] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class _AudioState:
    """The audio rows of one run of audio steps, as tensors (``[A]`` each)."""

    index: List[int]  # their rows in the batch
    index_tensor: torch.Tensor
    step: torch.Tensor  # content steps of the segment so far
    closed_at: torch.Tensor  # step of stream 0's closing token, or never
    close_id: torch.Tensor
    close_ok: torch.Tensor  # [A, 2] bool: <eos>, <eot> allowed


class UALMGenerator:
    """Generates replies of a ``UALMModel`` for batches of prompts.

    Args:
        model: the model (put in eval mode while generating).
        tokenizer: decodes text segments (optional: without it, text
            segments hold token ids only).
        frame_rate: the codec's frames per second (``codec.frame_rate``);
            needed whenever audio may be generated.
        fast: decode steps through ``FastBackbone`` where the backbone is
            one it reproduces, and runs of audio steps kept on the device
            (``_audio_run``); ``False``: the HF forward and one Python
            bookkeeping pass per step (same tokens; the reference the fast
            path is tested against).
        prepack: on CPU, oneDNN-prepacked copies of the backbone's and the
            audio heads' linear weights (float32/bfloat16; rebuilt when a
            weight changes).
        linear_weight_dtype: with ``prepack`` on CPU, the dtype of those
            copies (``torch.bfloat16`` for a float32 model: the fast path's
            matmuls run in bfloat16, everything else in the model's dtype;
            the tokens may then differ from float32 decoding). ``None``: the
            model's dtype.
        cuda_graph: (CUDA) replay the fast decode step as one CUDA graph
            (``static_step.StaticStep``): on a GPU a one-position step is
            hundreds of kernel launches, which the graph replaces by one.
        compile_step: run the fast decode step through ``torch.compile``
            (fused kernels; the first step of each batch size and capacity
            compiles, which takes a minute at a 0.5B shape). Both flags need
            the fast path; they change the float summation order, not the
            step (tested against ``FastBackbone``).

    Audio steps compute every stream's logits in one matmul (``AudioHeads``)
    over both CFG halves, guide them once and sample all streams of all
    rows in one call; constraints (delay pads, codebook ranges, closing
    tokens, min/max length) are tensors built from each row's step.
    """

    def __init__(
        self,
        model: UALMModel,
        tokenizer: Optional[TextTokenizer] = None,
        frame_rate: Optional[float] = None,
        fast: bool = True,
        prepack: bool = True,
        linear_weight_dtype: Optional[torch.dtype] = None,
        cuda_graph: bool = False,
        compile_step: bool = False,
    ):
        self.model = model
        self.fast = bool(fast)
        device = model.head_weight.device
        if cuda_graph and device.type != "cuda":
            raise ValueError(f"cuda_graph needs a model on a CUDA device, not {device}")
        if (cuda_graph or compile_step) and not self.fast:
            raise ValueError("cuda_graph / compile_step need the fast path (fast=True)")
        self.cuda_graph = bool(cuda_graph)
        self.compile_step = bool(compile_step)
        self.weights = WeightCache(
            model, prepack=prepack, weight_dtype=linear_weight_dtype
        )
        self.vocab: UALMVocabulary = model.vocabulary
        self.tokenizer = tokenizer
        self.frame_rate = None if frame_rate is None else float(frame_rate)
        vocab = self.vocab
        self.n_streams = vocab.n_codebooks
        self.eos_id, self.eot_id = vocab.eos_id, vocab.eot_id
        self.assistant_id = vocab.role_id("assistant")
        self.marker_ids: Dict[str, int] = {
            m: vocab.modality_id(m) for m in GENERATED_MODALITIES
        }
        self.device = device

        def mask(*ranges: Tuple[int, int]) -> torch.Tensor:
            out = torch.zeros(vocab.size, dtype=torch.bool, device=device)
            for start, stop in ranges:
                out[start:stop] = True
            return out

        self._text_mask = mask((vocab.text_offset, vocab.audio_offset))
        self._marker_mask = mask(*[(i, i + 1) for i in self.marker_ids.values()])
        self._close_masks: Dict[FrozenSet[int], torch.Tensor] = {
            frozenset(ids): mask(*[(i, i + 1) for i in ids])
            for ids in ((self.eos_id,), (self.eot_id,), (self.eos_id, self.eot_id))
        }
        self._empty = mask()
        self._never_closed = 1 << 40  # closed_at of a row that has not closed

    # ----- public API ---------------------------------------------------------

    def generate(
        self,
        prompts: Sequence[Prompt],
        config: Optional[GenerationConfig] = None,
        waveforms: Optional[Waveforms] = None,
        generator: Optional[torch.Generator] = None,
        **overrides,
    ) -> List[GenerationResult]:
        """Replies to ``prompts`` (built sequences or ``[T, K]`` ids), batched.

        ``waveforms``: audio-input key -> waveform for the prompts' encoder
        placeholders (one mapping, or one per prompt). ``generator`` makes
        sampling reproducible. ``overrides`` replace fields of ``config``.
        """
        config = dataclasses.replace(config or GenerationConfig(), **overrides)
        if not prompts:
            return []
        for p in prompts:
            check_prompt(p, self.vocab)
        frame_bounds = (0, 0)
        if config.may_generate_audio:
            if self.frame_rate is None:
                raise ValueError(
                    "audio may be generated: give the codec's frame_rate to the "
                    "generator (or force text with modalities='text')"
                )
            frame_bounds = config.audio_frame_bounds(self.frame_rate)
        use_cfg = config.cfg_scale is not None and config.may_generate_audio
        n_rows = len(prompts)
        batch = batch_prompts(prompts, waveforms, use_cfg, self.device)
        self.weights.refresh()
        capacity = batch.ids.shape[1] + self._longest_reply(config, frame_bounds)
        decoder = Decoder(
            self.model,
            use_cache=config.use_cache,
            capacity=capacity,
            weights=self.weights,
            fast=self.fast,
            cuda_graph=self.cuda_graph,
            compile_step=self.compile_step,
        )
        rows = [_Row() for _ in range(n_rows)]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                hidden = decoder.prefill(batch)
                while True:
                    active = [r.phase for r in rows if r.phase is not _Phase.DONE]
                    role_rows = [r.phase is _Phase.ROLE for r in rows]
                    if self.fast and all(p is _Phase.AUDIO for p in active):
                        frames = self._audio_run(
                            decoder,
                            hidden,
                            rows,
                            config,
                            frame_bounds,
                            use_cfg,
                            generator,
                        )
                    else:
                        frames = self._next_frames(
                            hidden, rows, config, frame_bounds, use_cfg, generator
                        )
                        for row, frame in zip(rows, frames.cpu()):
                            self._advance(row, frame)
                    if all(r.phase is _Phase.DONE for r in rows):
                        break
                    if use_cfg:
                        uncond = frames
                        if any(role_rows):
                            uncond = frames.clone()
                            uncond[torch.tensor(role_rows, device=frames.device)] = 0
                        frames = torch.cat([frames, uncond])
                    hidden = decoder.step(frames)
        finally:
            self.model.train(was_training)
        return [
            GenerationResult(
                segments=r.segments,
                ids=torch.cat(r.frames).cpu()
                if r.frames
                else torch.zeros(0, self.n_streams, dtype=torch.long),
            )
            for r in rows
        ]

    def _longest_reply(
        self, config: GenerationConfig, frame_bounds: Tuple[int, int]
    ) -> int:
        """Most positions a reply can take (sizes the KV cache; a bound)."""
        audio = 1 + frame_bounds[1] + self.n_streams  # marker, frames, close, delay
        text = 1 + config.max_text_tokens + 1  # marker, tokens, close
        plan = config.plan
        if plan is not None:
            kinds = [audio if m == "audio" else text for m in plan]
        else:
            kinds = [max(audio, text)] * config.max_segments
        return sum(kinds) + len(kinds) - 1  # role tokens between turns

    def beam_search(
        self,
        prompts: Sequence[Prompt],
        beam_size: int = 4,
        max_tokens: int = 256,
        min_tokens: int = 0,
        length_penalty: float = 1.0,
        waveforms: Optional[Waveforms] = None,
        use_cache: bool = True,
    ) -> List[GeneratedSegment]:
        """The best one-segment text reply of each prompt (``beam.py``)."""
        return beam_search_text(
            self,
            prompts,
            beam_size=beam_size,
            max_tokens=max_tokens,
            min_tokens=min_tokens,
            length_penalty=length_penalty,
            waveforms=waveforms,
            use_cache=use_cache,
        )

    # ----- one step -------------------------------------------------------------

    def _close_ids(self, row: _Row, config: GenerationConfig) -> FrozenSet[int]:
        """Closing tokens allowed for the current segment."""
        plan = config.plan
        index = len(row.segments)
        if plan is not None:  # exactly the planned segments
            last = index >= len(plan) - 1
            return frozenset((self.eos_id,) if last else (self.eot_id,))
        if index >= config.max_segments - 1:
            return frozenset((self.eos_id,))
        return frozenset((self.eos_id, self.eot_id))

    def _row_constraints(
        self, row: _Row, config: GenerationConfig
    ) -> Tuple[torch.Tensor, List[int]]:
        """(allowed stream-0 ids, forced id per stream or -1 to sample) of a
        row outside an audio segment (those go through ``_audio_sample``)."""
        forced = [0] * self.n_streams
        allowed = self._empty
        if row.phase is _Phase.DONE:
            return allowed, forced
        if row.phase is _Phase.ROLE:
            forced[0] = self.assistant_id
            return allowed, forced
        if row.phase is _Phase.MODALITY:
            plan = config.plan
            if plan is not None:
                forced[0] = self.marker_ids[plan[len(row.segments)]]
            else:
                forced[0] = -1
                allowed = self._marker_mask
            return allowed, forced
        if row.phase is not _Phase.TEXT:
            raise ValueError(f"no stream-0 constraints for phase {row.phase}")
        closes = self._close_masks[self._close_ids(row, config)]
        forced[0] = -1
        if row.step >= config.max_text_tokens:
            allowed = closes
        elif row.step < config.min_text_tokens:
            allowed = self._text_mask
        else:
            allowed = self._text_mask | closes
        return allowed, forced

    def _next_frames(
        self,
        hidden: torch.Tensor,
        rows: List[_Row],
        config: GenerationConfig,
        frame_bounds: Tuple[int, int],
        use_cfg: bool,
        generator: Optional[torch.Generator],
    ) -> torch.Tensor:
        """The next ``[B, K]`` frame of every row (rows in any phase)."""
        n_rows, model = len(rows), self.model
        audio_index = [b for b, r in enumerate(rows) if r.phase is _Phase.AUDIO]
        other = [b for b, r in enumerate(rows) if r.phase is not _Phase.AUDIO]
        plans = {b: self._row_constraints(rows[b], config) for b in other}
        frames = torch.zeros(n_rows, self.n_streams, dtype=torch.long)
        for b, (_, forced) in plans.items():
            frames[b] = torch.tensor(forced)
        frames = frames.to(hidden.device)
        if audio_index:
            state = self._audio_state(rows, audio_index, config)
            ids = self._audio_sample(
                hidden, state, config, frame_bounds, use_cfg, generator
            )
            frames[audio_index] = ids
        # markers and text: stream 0, conditional logits, text sampling
        index = [b for b in other if plans[b][1][0] < 0]
        if index:
            idx = torch.tensor(index, device=hidden.device)
            logits = model.stream_logits(hidden[idx], 0, "codebook")
            allowed = torch.stack([plans[b][0] for b in index])
            frames[index, 0] = sample(logits, config.text_sampling, allowed, generator)
        return frames

    # ----- audio steps --------------------------------------------------------------

    def _audio_state(
        self, rows: List[_Row], index: List[int], config: GenerationConfig
    ) -> _AudioState:
        """Tensors of the audio rows ``index``: step, closing step and token,
        the closing tokens each may emit."""
        device = self.device
        closes = [self._close_ids(rows[b], config) for b in index]
        return _AudioState(
            index=index,
            index_tensor=torch.tensor(index, device=device),
            step=torch.tensor([rows[b].step for b in index], device=device),
            closed_at=torch.tensor(
                [
                    self._never_closed
                    if rows[b].closed_at is None
                    else rows[b].closed_at
                    for b in index
                ],
                device=device,
            ),
            close_id=torch.tensor([rows[b].close_id for b in index], device=device),
            close_ok=torch.tensor(
                [[self.eos_id in c, self.eot_id in c] for c in closes], device=device
            ),
        )

    def _audio_sample(
        self,
        hidden: torch.Tensor,
        state: _AudioState,
        config: GenerationConfig,
        frame_bounds: Tuple[int, int],
        use_cfg: bool,
        generator: Optional[torch.Generator],
    ) -> torch.Tensor:
        """The next ``[A, K]`` ids of the audio rows of ``state``, which it
        advances (step, closing step and token).

        One matmul gives every stream's logits for the rows and their CFG
        copies (``AudioHeads``), guided as ``uncond + s * (cond - uncond)``;
        then the columns no stream may take, stream 0's codes past the
        maximum length and its closing tokens before the minimum (or when
        the plan forbids them) are masked, forced streams (delay pads) get
        flat logits, and all ``A * K`` streams are sampled in one call.
        """
        n_rows = hidden.shape[0] // (2 if use_cfg else 1)
        n_audio = len(state.index)
        if n_audio != n_rows:
            sel = state.index_tensor
            if use_cfg:
                sel = torch.cat([sel, sel + n_rows])
            hidden = hidden.index_select(0, sel)
        heads = self.weights.audio_heads(hidden.shape[0])
        logits = heads.logits(hidden)
        if use_cfg:
            logits = torch.lerp(logits[n_audio:], logits[:n_audio], config.cfg_scale)
        low, high = frame_bounds
        step = state.step
        k = heads.streams
        forced = (step[:, None] < k) | (step[:, None] - k >= state.closed_at[:, None])
        codes_ok = step < high
        closes_ok = (step >= low)[:, None] & state.close_ok
        # stream 0: codes unless past the maximum, closing tokens as allowed
        disallow0 = heads.code_columns & ~codes_ok[:, None]
        disallow0[:, -2:] |= ~closes_ok
        logits = logits.masked_fill(heads.never, -math.inf)
        logits[:, 0].masked_fill_(disallow0, -math.inf)
        logits.masked_fill_(forced[..., None], 0.0)  # any id; replaced below
        column = sample(
            logits.view(n_audio * self.n_streams, heads.width),
            config.audio_sampling,
            None,
            generator,
        ).view(n_audio, self.n_streams)
        ids = heads.column_ids[column + heads.stream_base]
        ids = torch.where(forced, heads.pad_ids, ids)
        first = ids[:, 0]
        closing = (first == self.eos_id) | (first == self.eot_id)
        state.closed_at = torch.where(closing, step, state.closed_at)
        state.close_id = torch.where(closing, first, state.close_id)
        state.step = step + 1
        return ids

    def _audio_run(
        self,
        decoder: Decoder,
        hidden: torch.Tensor,
        rows: List[_Row],
        config: GenerationConfig,
        frame_bounds: Tuple[int, int],
        use_cfg: bool,
        generator: Optional[torch.Generator],
    ) -> torch.Tensor:
        """Audio steps while every unfinished row is in an audio segment.

        Row state stays in tensors; the host looks at it only from the first
        step at which some row could have finished its segment (``K - 1``
        steps after the earliest allowed closing token). Returns the last
        frame ``[B, K]`` (not yet fed to the decoder) after updating the rows:
        frames appended, finished segments closed.
        """
        n_rows, k = len(rows), self.n_streams
        index = [b for b, r in enumerate(rows) if r.phase is _Phase.AUDIO]
        state = self._audio_state(rows, index, config)
        low = frame_bounds[0]
        # a row finishes when it samples step closed_at + K - 1; it closes at
        # the earliest at max(min length, its step)
        check_from = min(
            (max(low, rows[b].step) if rows[b].closed_at is None else rows[b].closed_at)
            + k
            - 1
            - rows[b].step
            for b in index
        )
        everyone = len(index) == n_rows
        chunks: List[torch.Tensor] = []
        t = 0
        while True:
            ids = self._audio_sample(
                hidden, state, config, frame_bounds, use_cfg, generator
            )
            if everyone:
                frame = ids
            else:
                frame = ids.new_zeros(n_rows, k).index_copy_(0, state.index_tensor, ids)
            chunks.append(ids)
            if t >= check_from and bool((state.step == state.closed_at + k).any()):
                break
            hidden = decoder.step(torch.cat([frame, frame]) if use_cfg else frame)
            t += 1
        block = torch.stack(chunks, dim=1).cpu()  # [A, T, K]
        steps = state.step.tolist()
        closed_at = state.closed_at.tolist()
        close_id = state.close_id.tolist()
        for a, b in enumerate(index):
            row = rows[b]
            row.frames.append(block[a])
            row.content.append(block[a])
            row.step = steps[a]
            if closed_at[a] != self._never_closed:
                row.closed_at, row.close_id = closed_at[a], close_id[a]
            if row.closed_at is not None and row.step == row.closed_at + k:
                self._finish_audio(row)
        return frame

    # ----- bookkeeping ---------------------------------------------------------

    def _close(self, row: _Row, close_id: int, segment: GeneratedSegment) -> None:
        row.segments.append(segment)
        row.phase = _Phase.ROLE if close_id == self.eot_id else _Phase.DONE
        row.content, row.step, row.closed_at = [], 0, None

    def _closing_name(self, close_id: int) -> str:
        return self.vocab.special_tokens[close_id]

    def _advance(self, row: _Row, frame: torch.Tensor) -> None:
        """Moves ``row`` on by the frame it just produced."""
        if row.phase is _Phase.DONE:
            return
        row.frames.append(frame[None])
        token = int(frame[0])
        if row.phase is _Phase.ROLE:
            row.phase = _Phase.MODALITY
        elif row.phase is _Phase.MODALITY:
            row.phase = (
                _Phase.TEXT if token == self.marker_ids["text"] else _Phase.AUDIO
            )
            row.content, row.step, row.closed_at = [], 0, None
        elif row.phase is _Phase.TEXT:
            if token in (self.eos_id, self.eot_id):
                token_ids = [t - self.vocab.text_offset for t in row.content]
                text = None
                if self.tokenizer is not None:
                    text = self.tokenizer.decode(token_ids)
                segment = GeneratedSegment(
                    "text", self._closing_name(token), token_ids=token_ids, text=text
                )
                self._close(row, token, segment)
            else:
                row.content.append(token)
                row.step += 1
        elif row.phase is _Phase.AUDIO:
            row.content.append(frame[None])
            if row.closed_at is None and token in (self.eos_id, self.eot_id):
                row.closed_at, row.close_id = row.step, token
            row.step += 1
            if row.closed_at is not None and row.step == row.closed_at + self.n_streams:
                self._finish_audio(row)

    def _finish_audio(self, row: _Row) -> None:
        """Closes a row's audio segment once its delayed frames are done."""
        frames = delay_deinterleave(torch.cat(row.content))[:-1]
        codes = self.vocab.ids_to_codes(frames)
        segment = GeneratedSegment(
            "audio", self._closing_name(row.close_id), codes=codes
        )
        self._close(row, row.close_id, segment)
