"""Generation of UALM replies: text, audio, or both, batched, with CFG.

A prompt ends with the ``<assistant>`` role token (``SequenceBuilder.build(...,
add_generation_prompt=True)``). A reply is a series of segments (turns) laid
out as the sequence builder does:

* the modality marker, ``<text>`` or ``<audio>`` (predicted by the model, or
  forced by the caller's plan);
* text: stream 0 over the text ids and the closing token, streams 1..K-1
  ``<pad>`` (id 0);
* audio: one delayed frame per step (``tokens/delay.py``, the vocabulary's
  ``AudioLayout``): each stream is masked to its own codebook, and stream 0
  may close the segment with ``<eos>``/``<eot>``. With the default layout
  (``closing="frame"``) stream ``k`` holds its codebook pad where the delay
  pattern has a hole, and the segment ends ``max(delays)`` steps after the
  closing token; with ``closing="after"`` (ESPnet-SpeechLM's) every stream
  samples its codebook, pad included, at every step, stream 0 may close
  once the delay steps of the minimum length are written, and the closing
  step ends the segment (id 0 in the other streams). Either de-interleaves
  to ``[T, K]`` codes;
* ``<eos>`` ends the reply; after ``<eot>`` the ``<assistant>`` role token
  is given and the model writes the next segment's marker.

One loop (``Conversation.run``) decodes every kind of reply. Each row's state
(phase, step within its segment, closing step and token, segments so far)
lives in tensors on the model's device and moves on by tensor operations
after every step; the host reads it only at steps where some row's phase may
have changed (every step while a row writes text or a marker; during audio,
from the first step at which a segment could end), which is also where
finished segments are cut out of the step buffer.

A conversation can stop after an audio (or text) segment (``run(
pause_after_audio=True)``, ``pause_after_text``) or at the end of the
assistant's turn (``pause_after_reply``: the segment closed by ``<eos>``),
take new input (``append``: e.g. the generated audio re-encoded as a
listening turn, or the user's answer to a question), fix some rows' next
segments (``force``), end some rows (``end``) and go on from the same KV
cache: what self-reflection (``reflect.py``) and the clarifying dialogue
(``dialogue.py``) need.

Classifier-free guidance doubles the batch: row ``B + b`` is row ``b``'s
prompt with its condition padded (``decoder.unconditional_ids``: the
layout's ``cfg_null`` over its ``cfg_extent``), fed the same generated
tokens, except the role tokens between turns, which training pads with the
condition. Audio tokens use ``uncond + s * (cond - uncond)``; markers and
text use the conditional logits.
"""

import contextlib
import enum
import math
from typing import Iterator, List, Optional, Sequence, Tuple

import torch

from espnet2.ualm.inference.beam import beam_search_text
from espnet2.ualm.inference.constraints import ReplyConstraints
from espnet2.ualm.inference.decoder import (
    Decoder,
    Prompt,
    Waveforms,
    batch_prompts,
    check_prompt,
    resolve_backend,
)
from espnet2.ualm.inference.fast import WeightCache
from espnet2.ualm.inference.results import GeneratedSegment, GenerationResult
from espnet2.ualm.inference.sampling import sample
from espnet2.ualm.inference.settings import DecodeSettings, Plan, check_plan
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.text.tokenizer import TextTokenizer
from espnet2.ualm.tokens.delay import delay_deinterleave, delay_holes
from espnet2.ualm.tokens.vocabulary import CLOSING_AFTER, UALMVocabulary

_NEVER = 1 << 40  # closing step of a segment that has not closed


class Phase(enum.IntEnum):
    """Where a row of a reply stands (``RowState.phase``)."""

    ROLE = 0  # the given <assistant> token opening the next segment
    MODALITY = 1  # the segment's modality marker
    TEXT = 2
    AUDIO = 3
    PAUSED = 4  # after an audio segment, waiting for ``append`` or ``run``
    DONE = 5


class RowState:
    """Every row's place in its reply, as ``[B]`` tensors on the device."""

    def __init__(self, n_rows: int, device: torch.device):
        def full(value: int) -> torch.Tensor:
            return torch.full((n_rows,), value, dtype=torch.long, device=device)

        self.phase = full(Phase.MODALITY)
        self.step = full(0)  # content steps of the current segment
        self.closed_at = full(_NEVER)  # audio: step of stream 0's closing token
        self.close_id = full(-1)
        self.n_segments = full(0)
        self.length = full(0)  # frames generated in this run

    def host(self) -> List[List[int]]:
        """phase, step, closed_at, n_segments, length: one transfer."""
        fields = (self.phase, self.step, self.closed_at, self.n_segments, self.length)
        return torch.stack(fields).tolist()


class UALMGenerator:
    """Generates replies of a ``UALMModel`` for batches of prompts.

    Args:
        model: the model (put in eval mode while generating).
        tokenizer: decodes text segments (optional: without it, text
            segments hold token ids only).
        frame_rate: the codec's frames per second (``codec.frame_rate``);
            needed whenever audio may be generated.
        backend: the decode step (``settings.BACKENDS``), resolved once here.
        linear_weight_dtype: on CPU, the dtype of the prepacked linear
            weights of the ``fast`` step and the audio heads
            (``torch.bfloat16`` for a float32 model); ``None``: the model's.

    Audio steps compute every stream's logits in one matmul (``AudioHeads``)
    over both CFG halves, guide them once and sample all streams of all
    rows in one call; constraints (delay holes, codebook ranges, closing
    tokens, min/max length) are tensors built from each row's state.
    """

    def __init__(
        self,
        model: UALMModel,
        tokenizer: Optional[TextTokenizer] = None,
        frame_rate: Optional[float] = None,
        backend: str = "auto",
        linear_weight_dtype: Optional[torch.dtype] = None,
    ):
        self.model = model
        self.backend = resolve_backend(backend, model)
        # the hf backend is the reference: plain F.linear heads, no prepacking
        self.weights = WeightCache(
            model, prepack=self.backend != "hf", weight_dtype=linear_weight_dtype
        )
        self.vocab: UALMVocabulary = model.vocabulary
        self.tokenizer = tokenizer
        self.frame_rate = None if frame_rate is None else float(frame_rate)
        self.n_streams = self.vocab.n_codebooks
        self.device = model.head_weight.device
        self.constraints = ReplyConstraints(self.vocab, self.device)
        self._audio_layout()

    def _audio_layout(self) -> None:
        """The audio rules of the vocabulary's ``AudioLayout``, as the decode
        loop uses them."""
        vocab, device = self.vocab, self.device
        self.delays = vocab.audio_delays
        self.delay_shift = torch.tensor(self.delays, device=device)
        delay = max(self.delays)
        self.closing_after = vocab.audio_layout.closing == CLOSING_AFTER
        # steps before stream 0 may close at the minimum length, and after it
        self.close_lead = delay if self.closing_after else 0
        self.close_tail = 0 if self.closing_after else delay
        # the streams that take the closing frame's ids at stream 0's closing
        # step: closed after the block, all others (id 0); in a closing frame,
        # those not delayed (their pad; MusicGen's pattern has none)
        streams = torch.arange(self.n_streams, device=device)
        undelayed = self.delay_shift == 0
        self.closing_streams = (streams > 0) & (
            undelayed if not self.closing_after else torch.ones_like(undelayed)
        )
        self.has_closing_streams = bool(self.closing_streams.any())
        pads = torch.tensor(vocab.audio_pad_ids(), device=device)
        self.closing_fill = pads.masked_fill(
            torch.tensor(self.closing_after, device=device), vocab.pad_id
        )
        self.null_frame = torch.zeros(self.n_streams, dtype=torch.long, device=device)
        self.null_frame[0] = vocab.cfg_null_id

    def decoder(self, capacity: int) -> Decoder:
        """A decoder of this generator's backend with room for ``capacity``."""
        self.weights.refresh()
        return Decoder(self.model, self.backend, capacity, self.weights)

    def start(
        self,
        prompts: Sequence[Prompt],
        settings: Optional[DecodeSettings] = None,
        modalities: Optional[Sequence[str]] = None,
        waveforms: Optional[Waveforms] = None,
        generator: Optional[torch.Generator] = None,
    ) -> "Conversation":
        """Runs the prompts and returns the conversation, ready to ``run``."""
        return Conversation(
            self,
            prompts,
            settings or DecodeSettings(),
            modalities,
            waveforms,
            generator,
        )

    def generate(
        self,
        prompts: Sequence[Prompt],
        settings: Optional[DecodeSettings] = None,
        modalities: Optional[Sequence[str]] = None,
        waveforms: Optional[Waveforms] = None,
        generator: Optional[torch.Generator] = None,
        **overrides,
    ) -> List[GenerationResult]:
        """Replies to ``prompts`` (built sequences or ``[T, K]`` ids), batched.

        ``modalities``: ``None``: the model chooses each segment's modality
        and when to stop; ``"audio"``/``"text"``: one segment of that kind; a
        sequence (``("text", "audio")``): exactly those segments in order.
        ``waveforms``: audio-input key -> waveform for the prompts' encoder
        placeholders (one mapping, or one per prompt). ``generator`` makes
        sampling reproducible. ``overrides`` replace fields of ``settings``.
        """
        settings = (settings or DecodeSettings()).replace(**overrides)
        if not prompts:
            check_plan(modalities)
            return []
        return self.start(prompts, settings, modalities, waveforms, generator).run()

    def beam_search(
        self,
        prompts: Sequence[Prompt],
        beam_size: int = 4,
        max_tokens: int = 256,
        min_tokens: int = 0,
        length_penalty: float = 1.0,
        waveforms: Optional[Waveforms] = None,
    ) -> List[GeneratedSegment]:
        """The best one-segment text reply of each prompt (``beam.py``)."""
        return beam_search_text(
            self.model,
            self.decoder,
            self.constraints,
            self.tokenizer,
            prompts,
            beam_size=beam_size,
            max_tokens=max_tokens,
            min_tokens=min_tokens,
            length_penalty=length_penalty,
            waveforms=waveforms,
        )


class Conversation:
    """A batch of replies in progress over one KV cache (``UALMGenerator.start``).

    ``run`` decodes until every row has ended its reply (or paused);
    ``append`` feeds new input to rows between runs.
    """

    def __init__(
        self,
        gen: UALMGenerator,
        prompts: Sequence[Prompt],
        settings: DecodeSettings,
        modalities: Optional[Sequence[str]],
        waveforms: Optional[Waveforms],
        generator: Optional[torch.Generator],
    ):
        if not prompts:
            raise ValueError("no prompts")
        self.gen, self.settings, self.generator = gen, settings, generator
        self.plan: Plan = check_plan(modalities)
        vocab = gen.vocab
        for p in prompts:
            check_prompt(p, vocab)
        audio = self.plan is None or "audio" in self.plan
        self.frame_bounds = (0, 0)
        if audio:
            if gen.frame_rate is None:
                raise ValueError(
                    "audio may be generated: give the codec's frame_rate to the "
                    "generator (or force text with modalities='text')"
                )
            self.frame_bounds = settings.audio_frame_bounds(gen.frame_rate)
        self.use_cfg = settings.cfg_scale is not None and audio
        self.n_rows = len(prompts)
        self.longest = settings.longest_reply(
            self.plan, gen.frame_rate, gen.n_streams, gen.delays
        )
        batch = batch_prompts(prompts, waveforms, self.use_cfg, gen.device, vocab=vocab)
        self.decoder = gen.decoder(batch.ids.shape[1] + self.longest)
        self.state = RowState(self.n_rows, gen.device)
        self._pending: Optional[Tuple[torch.Tensor, List[int]]] = None
        self._pause_after_text = False  # this run's (``run``)
        self._pause_after_reply = False  # this run's (``run``)
        # ``force``: per row, (its segment count when forced, the forced
        # modalities); the tensors say the same for the closing rules
        self._forced: List[Optional[Tuple[int, Plan]]] = [None] * self.n_rows
        self._forced_start = torch.full((self.n_rows,), -1, device=gen.device)
        self._forced_len = torch.zeros(self.n_rows, dtype=torch.long, device=gen.device)
        self._segments: List[List[GeneratedSegment]] = [[] for _ in prompts]
        with torch.no_grad(), _eval(gen.model):
            self.hidden = self.decoder.prefill(batch)

    # ----- between runs -------------------------------------------------------------

    def append(
        self,
        inputs: Sequence[Optional[Prompt]],
        waveforms: Optional[Waveforms] = None,
    ) -> None:
        """Feeds new input to paused rows: one prompt continuation per row
        (``[T, K]`` ids or a built sequence ending with ``<assistant>``; the
        unconditional rows get it with its condition padded), or ``None`` to
        let that row go on with the next segment. Rows that ended their
        reply take ``None`` only."""
        if len(inputs) != self.n_rows:
            raise ValueError(f"append: {len(inputs)} inputs for {self.n_rows} rows")
        phases = self.state.phase.tolist()
        given = [i for i, x in enumerate(inputs) if x is not None]
        for i in given:
            if phases[i] != Phase.PAUSED:
                raise ValueError(
                    f"append: row {i} is not paused ({Phase(phases[i]).name})"
                )
            check_prompt(inputs[i], self.gen.vocab)
        if not given:
            return
        self._flush()
        k = self.gen.n_streams
        filler = torch.zeros(1, k, dtype=torch.long)  # rows without input
        chunks = [x if x is not None else filler for x in inputs]
        batch = batch_prompts(
            chunks,
            waveforms,
            self.use_cfg,
            self.gen.device,
            left_pad=False,
            vocab=self.gen.vocab,
        )
        none = torch.tensor([x is None for x in inputs] * (2 if self.use_cfg else 1))
        batch.attention_mask[none.to(batch.attention_mask.device)] = 0
        with torch.no_grad(), _eval(self.gen.model):
            hidden = self.decoder.extend(batch)
        keep = none.to(hidden.device)[:, None]
        self.hidden = torch.where(keep, self.hidden, hidden)
        rows = torch.tensor(given, device=self.gen.device)
        self.state.phase[rows] = Phase.MODALITY
        counts = self.state.n_segments.tolist()
        for i in given:  # a forced tail that was written is over
            f = self._forced[i]
            if f is not None and counts[i] >= f[0] + len(f[1]):
                self._forced[i] = None
                self._forced_start[i] = -1

    def force(self, rows: Sequence[int], modalities: Sequence[str]) -> None:
        """The next segments of ``rows`` (paused, or not started) are exactly
        ``modalities`` and end the reply (the last one closes with ``<eos>``,
        the others with ``<eot>``), whatever the plan: a dialogue whose user
        has answered the last question allowed gets its rich caption and
        audio."""
        plan = check_plan(modalities)
        phases = self.state.phase.tolist()
        counts = self.state.n_segments.tolist()
        for i in rows:
            if phases[i] not in (Phase.PAUSED, Phase.MODALITY):
                raise ValueError(
                    f"force: row {i} is not paused ({Phase(phases[i]).name})"
                )
            if "audio" in plan and self.plan is not None and "audio" not in self.plan:
                raise ValueError("force: audio in a conversation started for text")
            self._forced[i] = (counts[i], plan)
            self._forced_start[i] = counts[i]
            self._forced_len[i] = len(plan)

    def _close_ok(
        self, n_segments: torch.Tensor, index: Optional[torch.Tensor]
    ) -> torch.Tensor:
        """``[R, 2]``: may rows ``index`` (``None``: all) close their segment
        with ``<eos>``, ``<eot>``: the plan's rule, or the forced one."""
        c = self.gen.constraints
        ok = c.close_ok(n_segments, self.plan, self.settings.max_segments)
        if all(f is None for f in self._forced):
            return ok
        start, length = self._forced_start, self._forced_len
        if index is not None:
            start, length = start[index], length[index]
        is_last = n_segments - start >= length - 1
        forced = torch.stack([is_last, ~is_last], dim=-1)
        return torch.where((start >= 0)[:, None], forced, ok)

    # ----- the decode loop ----------------------------------------------------------

    def end(self, rows: Sequence[int]) -> None:
        """Ends the replies of paused ``rows`` where they stand (their last
        segment closed by ``<eot>``): self-reflection stops a row whose
        critique finds no mismatch. A later ``run`` leaves them be."""
        phases = self.state.phase.tolist()
        for i in rows:
            if phases[i] != Phase.PAUSED:
                raise ValueError(
                    f"end: row {i} is not paused ({Phase(phases[i]).name})"
                )
        if rows:
            index = torch.tensor(list(rows), device=self.gen.device)
            self.state.phase[index] = Phase.DONE

    def run(
        self,
        pause_after_audio: bool = False,
        pause_after_text: bool = False,
        pause_after_reply: bool = False,
    ) -> List[GenerationResult]:
        """Decodes until every row has ended its reply, or paused after an
        audio segment closed by ``<eot>`` when ``pause_after_audio`` (after a
        text segment so closed when ``pause_after_text``; after any segment
        closed by ``<eos>`` when ``pause_after_reply``: the assistant's turn
        is over: the caller appends the user's next turn or ends the row).

        Returns what each row generated in this run: its finished segments
        and every frame (markers, contents, closing and role tokens).
        """
        state = self.state
        if bool((state.phase == Phase.DONE).all()):
            empty = torch.zeros(0, self.gen.n_streams, dtype=torch.long)
            return [GenerationResult([], empty) for _ in range(self.n_rows)]
        self._flush()
        state.phase = torch.where(
            state.phase == Phase.PAUSED,
            torch.full_like(state.phase, Phase.ROLE),
            state.phase,
        )
        state.length.zero_()
        self._pause_after_text = pause_after_text
        self._pause_after_reply = pause_after_reply
        first = [len(s) for s in self._segments]
        buffer = torch.zeros(
            self.n_rows,
            self.longest + 1,
            self.gen.n_streams,
            dtype=torch.long,
            device=self.gen.device,
        )
        view = state.host()
        starts = [0] * self.n_rows
        next_check, t = 0, 0
        with torch.no_grad(), _eval(self.gen.model):
            while True:
                phases = view[0]  # as the frame was made (view moves on below)
                frame = self._next_frame(phases, view[3])
                self._advance(frame, pause_after_audio, t + 1 >= next_check)
                buffer[:, t] = frame
                t += 1
                if t >= next_check:
                    new_view = state.host()
                    self._collect(view, new_view, buffer, starts)
                    view = new_view
                    if all(p >= Phase.PAUSED for p in view[0]):
                        break
                    next_check = t + self._horizon(view)
                if t >= buffer.shape[1]:
                    raise RuntimeError("reply outgrew its bound (longest_reply)")
                self._feed(frame, phases)
            self._pending = (frame, phases)  # fed before anything that follows
        ids = buffer.cpu()
        return [
            GenerationResult(self._segments[b][first[b] :], ids[b, : view[4][b]])
            for b in range(self.n_rows)
        ]

    def _next_frame(self, phases: List[int], n_segments: List[int]) -> torch.Tensor:
        """The next ``[B, K]`` frame: every stream of the audio rows, the
        forced tokens, then stream 0 of the rows writing text or a marker."""
        gen, state = self.gen, self.state
        c = gen.constraints
        audio = [b for b, p in enumerate(phases) if p == Phase.AUDIO]
        if len(audio) == self.n_rows:
            return self._audio_ids(None)
        frame = torch.zeros(
            self.n_rows, gen.n_streams, dtype=torch.long, device=gen.device
        )
        plan = self.plan
        forced = self._forced
        chosen = [
            b
            for b, p in enumerate(phases)
            if p == Phase.TEXT
            or (p == Phase.MODALITY and plan is None and forced[b] is None)
        ]
        if audio:
            index = torch.tensor(audio, device=gen.device)
            frame[index] = self._audio_ids(index)
        for b, p in enumerate(phases):
            if p == Phase.ROLE:
                frame[b, 0] = c.assistant_id
            elif p == Phase.MODALITY and forced[b] is not None:
                start, tail = forced[b]
                frame[b, 0] = c.marker_ids[tail[n_segments[b] - start]]
            elif p == Phase.MODALITY and plan is not None:
                frame[b, 0] = c.marker_ids[plan[n_segments[b]]]
        if chosen:
            index = torch.tensor(chosen, device=gen.device)
            logits = gen.model.stream_logits(self.hidden[index], 0, "codebook")
            phase, step = state.phase[index], state.step[index]
            closes = c.closes(self._close_ok(state.n_segments[index], index))
            s = self.settings
            allowed = torch.where(
                (phase == Phase.TEXT)[:, None],
                c.text_allowed(step, closes, s.min_text_tokens, s.max_text_tokens),
                c.markers,
            )
            frame[index, 0] = sample(logits, s.text_sampling, allowed, self.generator)
        return frame

    def _audio_ids(self, index: Optional[torch.Tensor]) -> torch.Tensor:
        """The next ``[A, K]`` ids of the audio rows ``index`` (``None``: all).

        One matmul gives every stream's logits for the rows and their CFG
        copies (``AudioHeads``), guided as ``uncond + s * (cond - uncond)``;
        then the columns no stream may take, stream 0's codes past the
        maximum length and its closing tokens before the minimum (or when
        the plan forbids them) are masked, the delay pattern's holes get flat
        logits (``closing="frame"``; closed after the block, every stream
        samples its codebook, pad included), and all ``A * K`` streams are
        sampled in one call. Closed after the block, the minimum and maximum
        count frames: stream 0 closes ``max(delays)`` steps later.
        """
        gen = self.gen
        state, s = self.state, self.settings
        hidden = self.hidden
        step, closed_at, n_seg = state.step, state.closed_at, state.n_segments
        if index is not None:
            sel = torch.cat([index, index + self.n_rows]) if self.use_cfg else index
            hidden = hidden.index_select(0, sel)
            step, closed_at, n_seg = step[index], closed_at[index], n_seg[index]
        n_audio = step.shape[0]
        heads = gen.weights.audio_heads(hidden.shape[0])
        logits = heads.logits(hidden)
        if self.use_cfg:
            logits = torch.lerp(logits[n_audio:], logits[:n_audio], s.cfg_scale)
        low, high = self.frame_bounds
        low, high = low + gen.close_lead, high + gen.close_lead
        holes = None
        if not gen.closing_after:
            holes = delay_holes(step, closed_at, heads.n_streams, gen.delay_shift)
        close_ok = self._close_ok(n_seg, index)
        closes_ok = (step >= low)[:, None] & close_ok
        # stream 0: codes (and its pad) unless past the maximum, closing
        # tokens as allowed
        disallow0 = heads.code_columns & (step >= high)[:, None]
        disallow0[:, -2:] |= ~closes_ok
        logits = logits.masked_fill(heads.never, -math.inf)
        logits[:, 0].masked_fill_(disallow0, -math.inf)
        if holes is not None:
            logits.masked_fill_(holes[..., None], 0.0)  # any id; replaced below
        column = sample(
            logits.view(n_audio * heads.n_streams, heads.width),
            s.audio_sampling,
            None,
            self.generator,
        ).view(n_audio, heads.n_streams)
        ids = heads.column_ids[column + heads.stream_base]
        if holes is not None:
            ids = torch.where(holes, heads.pad_ids, ids)
        if gen.has_closing_streams:
            c = gen.constraints
            closing = (ids[:, :1] == c.eos_id) | (ids[:, :1] == c.eot_id)
            ids = torch.where(closing & gen.closing_streams, gen.closing_fill, ids)
        return ids

    def _advance(
        self, frame: torch.Tensor, pause_after_audio: bool, may_change: bool = True
    ) -> None:
        """Moves every row's state on by the frame it just produced.

        ``may_change`` false: no row's phase can change at this step
        (``_horizon``), so every live row is inside an audio segment and only
        its step and closing token move (a third of the tensor operations).
        """
        st, c = self.state, self.gen.constraints
        token = frame[:, 0]
        phase = st.phase
        closing_token = (token == c.eos_id) | (token == c.eot_id)
        audio = phase == Phase.AUDIO
        if not may_change:
            newly = audio & (st.closed_at == _NEVER) & closing_token
            st.closed_at = torch.where(newly, st.step, st.closed_at)
            st.close_id = torch.where(newly, token, st.close_id)
            st.step = st.step + audio
            st.length = st.length + audio
            return
        live = phase < Phase.PAUSED
        text = phase == Phase.TEXT
        newly = (text | (audio & (st.closed_at == _NEVER))) & closing_token
        st.closed_at = torch.where(newly, st.step, st.closed_at)
        st.close_id = torch.where(newly, token, st.close_id)
        st.step = st.step + (text & ~closing_token) + audio
        # an audio segment ends once its frames and the closing one are
        # delayed (closed after the block: at the closing step)
        steps = st.closed_at + 1 + self.gen.close_tail
        ended = (text & closing_token) | (audio & (st.step == steps))
        after = torch.full_like(phase, Phase.DONE)
        after = after.masked_fill(st.close_id == c.eot_id, Phase.ROLE)
        if pause_after_audio:
            after = after.masked_fill(audio & (st.close_id == c.eot_id), Phase.PAUSED)
        if self._pause_after_text:
            after = after.masked_fill(text & (st.close_id == c.eot_id), Phase.PAUSED)
        if self._pause_after_reply:
            after = after.masked_fill(st.close_id == c.eos_id, Phase.PAUSED)
        started = phase == Phase.MODALITY
        content = torch.where(
            token == c.marker_ids["text"],
            torch.full_like(phase, Phase.TEXT),
            torch.full_like(phase, Phase.AUDIO),
        )
        phase = torch.where(
            phase == Phase.ROLE, torch.full_like(phase, Phase.MODALITY), phase
        )
        phase = torch.where(started, content, phase)
        st.phase = torch.where(ended, after, phase)
        reset = started | ended
        st.step = st.step.masked_fill(reset, 0)
        st.closed_at = st.closed_at.masked_fill(reset, _NEVER)
        st.n_segments = st.n_segments + ended
        st.length = st.length + live

    def _horizon(self, view: List[List[int]]) -> int:
        """Steps after which some row's phase may change: 1 while a row is
        outside an audio segment; for audio rows, until the first could end
        (``max(delays)`` steps after its closing token, which comes at the
        earliest at the minimum length; closed after the block, at it)."""
        gen = self.gen
        low = self.frame_bounds[0] + gen.close_lead
        phases, steps, closed_at = view[0], view[1], view[2]
        horizon = None
        for p, s, c in zip(phases, steps, closed_at):
            if p >= Phase.PAUSED:
                continue
            if p != Phase.AUDIO:
                return 1
            close = max(low, s) if c == _NEVER else c
            h = close + 1 + gen.close_tail - s
            horizon = h if horizon is None else min(horizon, h)
        return max(1, horizon or 1)

    def _collect(self, old, new, buffer: torch.Tensor, starts: List[int]) -> None:
        """Cuts the segments rows finished since the last look out of ``buffer``."""
        gen = self.gen
        for b in range(self.n_rows):
            was, now = old[0][b], new[0][b]
            if was == Phase.MODALITY and now in (Phase.TEXT, Phase.AUDIO):
                starts[b] = new[4][b]
            if new[3][b] == old[3][b]:
                continue
            kind = "text" if was == Phase.TEXT else "audio"
            if was == Phase.MODALITY:  # cannot happen: a segment has content
                raise RuntimeError(f"row {b} closed a segment it had not opened")
            end = new[4][b]
            content = buffer[b, starts[b] : end].cpu()
            close_id = int(content[-1, 0]) if kind == "text" else None
            if kind == "text":
                ids = [int(i) - gen.vocab.text_offset for i in content[:-1, 0]]
                text = gen.tokenizer.decode(ids) if gen.tokenizer is not None else None
                segment = GeneratedSegment(
                    "text", _name(gen, close_id), ids, text=text,
                    truncated=len(ids) >= self.settings.max_text_tokens,
                )  # fmt: skip
            else:
                close_id = int(self.state.close_id[b])
                if gen.closing_after:  # the closing step, then the codes
                    frames = delay_deinterleave(content[:-1], delays=gen.delays)
                else:  # the codes and the closing frame
                    frames = delay_deinterleave(content, delays=gen.delays)[:-1]
                codes = gen.vocab.ids_to_codes(frames)
                if gen.closing_after:  # a pad among the frames: code 0, as
                    # ESPnet-SpeechLM's decode_batch clips it
                    codes = codes.masked_fill(codes == gen.vocab.codebook_size, 0)
                segment = GeneratedSegment(
                    "audio", _name(gen, close_id), codes=codes,
                    truncated=codes.shape[0] >= self.frame_bounds[1],
                )  # fmt: skip
            self._segments[b].append(segment)

    def _feed(self, frame: torch.Tensor, phases: List[int]) -> None:
        """Steps the decoder on the frame made while the rows were in
        ``phases``. CFG: the unconditional rows get it too, without the role
        tokens (training pads them: the layout's null frame). Paused rows skip
        the position."""
        device = frame.device
        if self.use_cfg:
            uncond = frame
            if any(p == Phase.ROLE for p in phases):
                uncond = frame.clone()
                role = torch.tensor([p == Phase.ROLE for p in phases], device=device)
                uncond[role] = self.gen.null_frame
            frame = torch.cat([frame, uncond])
        hole = None
        if any(p == Phase.PAUSED for p in phases):
            hole = torch.tensor([p == Phase.PAUSED for p in phases], device=device)
            hole = torch.cat([hole, hole]) if self.use_cfg else hole
        self.hidden = self.decoder.step(frame, hole)

    def _flush(self) -> None:
        """Feeds the last frame of the previous run (a conversation goes on)."""
        if self._pending is not None:
            with torch.no_grad(), _eval(self.gen.model):
                self._feed(*self._pending)
            self._pending = None


def _name(gen: UALMGenerator, close_id: int) -> str:
    return gen.vocab.special_tokens[close_id]


@contextlib.contextmanager
def _eval(model: torch.nn.Module) -> Iterator[None]:
    """Eval mode for a block; the model's mode is restored after."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)
