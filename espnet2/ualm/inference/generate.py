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
from espnet2.ualm.inference.results import GeneratedSegment, GenerationResult
from espnet2.ualm.inference.sampling import (
    GREEDY,
    RELEASE_AUDIO_SAMPLING,
    SamplingConfig,
    guide,
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
    content: List[torch.Tensor] = dataclasses.field(default_factory=list)
    frames: List[torch.Tensor] = dataclasses.field(default_factory=list)
    segments: List[GeneratedSegment] = dataclasses.field(default_factory=list)


class UALMGenerator:
    """Generates replies of a ``UALMModel`` for batches of prompts.

    Args:
        model: the model (put in eval mode while generating).
        tokenizer: decodes text segments (optional: without it, text
            segments hold token ids only).
        frame_rate: the codec's frames per second (``codec.frame_rate``);
            needed whenever audio may be generated.
    """

    def __init__(
        self,
        model: UALMModel,
        tokenizer: Optional[TextTokenizer] = None,
        frame_rate: Optional[float] = None,
    ):
        self.model = model
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
        device = model.head_weight.device
        self.device = device

        def mask(*ranges: Tuple[int, int]) -> torch.Tensor:
            out = torch.zeros(vocab.size, dtype=torch.bool, device=device)
            for start, stop in ranges:
                out[start:stop] = True
            return out

        start0 = vocab.codebook_range(0)[0]
        self._text_mask = mask((vocab.text_offset, vocab.audio_offset))
        self._audio0_mask = mask((start0, start0 + vocab.codebook_size))
        self._marker_mask = mask(*[(i, i + 1) for i in self.marker_ids.values()])
        self._close_masks: Dict[FrozenSet[int], torch.Tensor] = {
            frozenset(ids): mask(*[(i, i + 1) for i in ids])
            for ids in ((self.eos_id,), (self.eot_id,), (self.eos_id, self.eot_id))
        }
        self._empty = mask()

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
        decoder = Decoder(self.model, use_cache=config.use_cache)
        rows = [_Row() for _ in range(n_rows)]
        was_training = self.model.training
        self.model.eval()
        try:
            with torch.no_grad():
                hidden = decoder.prefill(batch)
                while True:
                    role_rows = [r.phase is _Phase.ROLE for r in rows]
                    frames = self._next_frames(
                        hidden, rows, config, frame_bounds, use_cfg, generator
                    )
                    for row, frame in zip(rows, frames.cpu()):
                        self._advance(row, frame)
                    if all(r.phase is _Phase.DONE for r in rows):
                        break
                    if use_cfg:
                        uncond = frames.clone()
                        uncond[torch.tensor(role_rows, device=frames.device)] = 0
                        frames = torch.cat([frames, uncond])
                    hidden = decoder.step(frames)
        finally:
            self.model.train(was_training)
        return [
            GenerationResult(
                segments=r.segments,
                ids=torch.stack(r.frames)
                if r.frames
                else torch.zeros(0, self.n_streams, dtype=torch.long),
            )
            for r in rows
        ]

    def generate_reply(
        self,
        prompt: Prompt,
        config: Optional[GenerationConfig] = None,
        waveforms: Optional[Waveforms] = None,
        generator: Optional[torch.Generator] = None,
        **overrides,
    ) -> List[GeneratedSegment]:
        """The segments of one reply (``.value``: text or ``[T, K]`` codes)."""
        results = self.generate([prompt], config, waveforms, generator, **overrides)
        return results[0].segments

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
        self,
        row: _Row,
        config: GenerationConfig,
        frame_bounds: Tuple[int, int],
    ) -> Tuple[torch.Tensor, List[int]]:
        """(allowed stream-0 ids, forced id per stream or -1 to sample)."""
        vocab, n = self.vocab, self.n_streams
        forced = [0] * n
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
        closes = self._close_masks[self._close_ids(row, config)]
        if row.phase is _Phase.TEXT:
            low, high = config.min_text_tokens, config.max_text_tokens
            content = self._text_mask
        else:
            low, high = frame_bounds
            content = self._audio0_mask
            step, closed_at = row.step, row.closed_at
            for k in range(1, n):
                done = closed_at is not None and step - k >= closed_at
                forced[k] = vocab.audio_pad_id(k) if step < k or done else -1
            if closed_at is not None:
                forced[0] = vocab.audio_pad_id(0)
                return allowed, forced
        forced[0] = -1
        if row.step >= high:
            allowed = closes
        elif row.step < low:
            allowed = content
        else:
            allowed = content | closes
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
        """The next ``[B, K]`` frame of every row."""
        n_rows, model = len(rows), self.model
        plans = [self._row_constraints(r, config, frame_bounds) for r in rows]
        forced = torch.tensor([f for _, f in plans], dtype=torch.long)  # on host
        frames = forced.to(hidden.device)
        is_audio = [r.phase is _Phase.AUDIO for r in rows]

        def logits(stream: int, index: List[int], guided: bool) -> torch.Tensor:
            """Stream logits of rows ``index``; CFG-combined when ``guided``."""
            idx = torch.tensor(index, device=hidden.device)
            cond = model.stream_logits(hidden[idx], stream, "codebook").float()
            if not (guided and use_cfg):
                return cond
            uncond = model.stream_logits(hidden[idx + n_rows], stream, "codebook")
            return guide(cond, uncond.float(), config.cfg_scale)

        # stream 0: audio rows (guided, audio sampling), then marker/text rows
        for audio in (True, False):
            index = [
                b for b in range(n_rows) if is_audio[b] == audio and forced[b, 0] < 0
            ]
            if not index:
                continue
            allowed = torch.stack([plans[b][0] for b in index])
            chosen = sample(
                logits(0, index, guided=audio),
                config.audio_sampling if audio else config.text_sampling,
                allowed,
                generator,
            )
            frames[index, 0] = chosen
        # streams 1..K-1 of audio rows: their own codebook, pad excluded
        for k in range(1, self.n_streams):
            index = [b for b in range(n_rows) if forced[b, k] < 0]
            if not index:
                continue
            scores = logits(k, index, guided=True)
            allowed = torch.ones_like(scores, dtype=torch.bool)
            allowed[:, -1] = False  # the codebook's pad: never sampled
            chosen = sample(scores, config.audio_sampling, allowed, generator)
            frames[index, k] = chosen + self.vocab.codebook_range(k)[0]
        return frames

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
        row.frames.append(frame)
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
            row.content.append(frame)
            if row.closed_at is None and token in (self.eos_id, self.eot_id):
                row.closed_at, row.close_id = row.step, token
            row.step += 1
            if row.closed_at is not None and row.step == row.closed_at + self.n_streams:
                frames = delay_deinterleave(torch.stack(row.content))[:-1]
                codes = self.vocab.ids_to_codes(frames)
                segment = GeneratedSegment(
                    "audio", self._closing_name(row.close_id), codes=codes
                )
                self._close(row, row.close_id, segment)


def generate_reply(
    model: UALMModel,
    prompt: Prompt,
    config: Optional[GenerationConfig] = None,
    tokenizer: Optional[TextTokenizer] = None,
    frame_rate: Optional[float] = None,
    waveforms: Optional[Waveforms] = None,
    generator: Optional[torch.Generator] = None,
    **overrides,
) -> List[GeneratedSegment]:
    """One reply's segments; see ``UALMGenerator``."""
    return UALMGenerator(model, tokenizer, frame_rate).generate_reply(
        prompt, config, waveforms, generator, **overrides
    )
