"""Writes a conversation into UALM's multi-stream token layout.

Chat template: ``<bos>``, then one *turn* per message segment::

    <role> <modality> content <eos>    (<eot> when the next turn has the same role)

so a user message of audio then text is two user turns, the first closed by
``<eot>``. Layout ``[T, K]`` (``K`` = codebooks): text and special tokens sit
in stream 0 with every other stream ``<pad>`` (id 0, zero embedding).
Continuous audio input is ``num_frames`` ``<audio_placeholder>`` positions
whose embeddings the model overwrites with encoder features. Discrete audio
``[T_a, K]`` gets a closing frame (the turn's ``<eos>``/``<eot>`` in stream
0, codebook pads elsewhere) and the whole block is delay-interleaved with
each codebook's own pad: it takes ``T_a + K`` positions, stream 0 emits the
closing token at ``T_a`` and the turn ends ``K - 1`` steps later. That is
the default ``AudioLayout`` of the vocabulary; another (an imported
ESPnet-SpeechLM model's: the closing token after the delayed block, every
stream's holes targets) is written as its layout says (``_audio_block``).

``loss_mask[t, k]`` marks ``ids[t, k]`` as a target (predicted from the
positions before ``t``). Targets of a target turn: the modality marker, the
content and the closing token (audio: every code, and the closing token in
stream 0; delay pads are never targets). The role token is given at
inference, so it is a target only with ``loss_region="all"``.
``condition_mask`` marks what classifier-free guidance may drop: everything
outside the assistant's turns (``<bos>`` and role tokens included); an
assistant listening to its own audio (``audio_input`` turn) belongs to the
answer, not to the condition.
"""

import dataclasses
from typing import Any, List, Mapping, Sequence, Tuple, Union

import torch

from espnet2.ualm.text.tokenizer import TextTokenizer
from espnet2.ualm.tokens.conversation import (
    AudioInputSegment,
    AudioSegment,
    Message,
    TextSegment,
)
from espnet2.ualm.tokens.delay import delay_interleave
from espnet2.ualm.tokens.tasks import get_task_template
from espnet2.ualm.tokens.templates import TaskTemplate
from espnet2.ualm.tokens.vocabulary import CLOSING_AFTER, UALMVocabulary

LOSS_REGIONS = ("assistant", "all")


@dataclasses.dataclass(frozen=True)
class AudioInputSpan:
    """``num_frames`` placeholder positions from ``start``, for audio ``key``."""

    key: str
    start: int
    num_frames: int


@dataclasses.dataclass(frozen=True)
class TurnSpan:
    """Positions ``[start, end)`` of one turn, role token included."""

    role: str
    modality: str
    start: int
    end: int
    target: bool


@dataclasses.dataclass(frozen=True, eq=False)
class BuiltSequence:
    """One example in the model's layout; what a collate function needs.

    ids ``[T, K]`` long; loss_mask ``[T, K]`` bool (targets);
    condition_mask ``[T]`` bool (dropped by CFG; all False for tasks
    without CFG); audio_inputs: placeholder spans in order of position.
    """

    ids: torch.Tensor
    loss_mask: torch.Tensor
    condition_mask: torch.Tensor
    audio_inputs: Tuple[AudioInputSpan, ...]
    turns: Tuple[TurnSpan, ...]

    def __len__(self) -> int:
        return self.ids.shape[0]

    @property
    def n_streams(self) -> int:
        return self.ids.shape[1]


class _Writer:
    """Accumulates position chunks of ids, loss mask and condition mask."""

    def __init__(self, n_streams: int):
        self.n_streams = n_streams
        self.ids: List[torch.Tensor] = []
        self.loss: List[torch.Tensor] = []
        self.cond: List[torch.Tensor] = []
        self.length = 0

    def stream0(self, ids: Sequence[int], target: bool, condition: bool) -> None:
        n = len(ids)
        block = torch.zeros(n, self.n_streams, dtype=torch.long)
        block[:, 0] = torch.as_tensor(list(ids), dtype=torch.long)
        mask = torch.zeros(n, self.n_streams, dtype=torch.bool)
        mask[:, 0] = target
        self.block(block, mask, condition)

    def block(self, ids: torch.Tensor, mask: torch.Tensor, condition: bool) -> None:
        self.ids.append(ids)
        self.loss.append(mask)
        self.cond.append(torch.full((ids.shape[0],), condition, dtype=torch.bool))
        self.length += ids.shape[0]


class SequenceBuilder:
    """Conversations -> ``BuiltSequence`` for one vocabulary and text tokenizer."""

    def __init__(
        self,
        vocabulary: UALMVocabulary,
        text_tokenizer: TextTokenizer,
        loss_region: str = "assistant",
    ):
        if loss_region not in LOSS_REGIONS:
            raise ValueError(
                f"loss_region must be one of {LOSS_REGIONS}, got {loss_region!r}"
            )
        if text_tokenizer.vocab_size != vocabulary.text_vocab_size:
            raise ValueError(
                f"text tokenizer has {text_tokenizer.vocab_size} ids, the vocabulary "
                f"was made for {vocabulary.text_vocab_size}"
            )
        self.vocab = vocabulary
        self.tokenizer = text_tokenizer
        self.loss_region = loss_region

    def build_example(
        self,
        task: Union[str, TaskTemplate],
        example: Mapping[str, Any],
        prompt_only: bool = False,
    ) -> BuiltSequence:
        """Renders ``example`` with the task's template and builds it.

        ``prompt_only``: the inference prompt, ending with ``<assistant>``.
        """
        template = get_task_template(task) if isinstance(task, str) else task
        messages = template.render(example, prompt_only=prompt_only)
        return self.build(
            messages,
            cfg_dropout=template.cfg_dropout,
            add_generation_prompt=prompt_only,
        )

    def build(
        self,
        messages: Sequence[Message],
        cfg_dropout: bool = False,
        add_generation_prompt: bool = False,
        bos: bool = True,
    ) -> BuiltSequence:
        """Lays out ``messages``.

        ``cfg_dropout``: fill ``condition_mask`` (else it is all False).
        ``add_generation_prompt``: end with an ``<assistant>`` role token, as
        the prompt of an answer to generate. ``bos=False``: no ``<bos>``,
        for turns that continue a conversation under way (the listening turn
        of self-reflection, ``Conversation.append``).
        """
        turns = [(m.role, seg) for m in messages for seg in m.segments]
        if not turns:
            raise ValueError("no messages to build")
        vocab = self.vocab
        out = _Writer(vocab.n_codebooks)
        if bos:
            out.stream0([vocab.bos_id], target=False, condition=cfg_dropout)
        spans: List[TurnSpan] = []
        audio_inputs: List[AudioInputSpan] = []
        for i, (role, seg) in enumerate(turns):
            if i + 1 < len(turns):
                next_role = turns[i + 1][0]
            else:
                next_role = "assistant" if add_generation_prompt else None
            close = vocab.eot_id if next_role == role else vocab.eos_id
            is_input = isinstance(seg, AudioInputSegment)
            answer = role == "assistant"
            target = self.loss_region == "all" or (answer and not is_input)
            condition = cfg_dropout and not answer
            start = out.length
            out.stream0(
                [vocab.role_id(role)],
                target=self.loss_region == "all",
                condition=cfg_dropout,
            )
            out.stream0([vocab.modality_id(seg.modality)], target, condition)
            if isinstance(seg, AudioInputSegment):
                audio_inputs.append(AudioInputSpan(seg.key, out.length, seg.num_frames))
                out.stream0(
                    [vocab.audio_placeholder_id] * seg.num_frames, False, condition
                )
                out.stream0([close], target, condition)
            elif isinstance(seg, AudioSegment):
                ids, mask = self._audio_block(seg, close, target)
                out.block(ids, mask, condition)
            elif isinstance(seg, TextSegment):
                text = vocab.text_ids(self.tokenizer.encode(seg.text))
                out.stream0(text + [close], target, condition)
            else:
                raise TypeError(f"unknown segment type {type(seg).__name__}")
            spans.append(TurnSpan(role, seg.modality, start, out.length, target))
        if add_generation_prompt:
            out.stream0(
                [vocab.role_id("assistant")], target=False, condition=cfg_dropout
            )
        return BuiltSequence(
            ids=torch.cat(out.ids),
            loss_mask=torch.cat(out.loss),
            condition_mask=torch.cat(out.cond),
            audio_inputs=tuple(audio_inputs),
            turns=tuple(spans),
        )

    def _audio_block(
        self, seg: AudioSegment, close: int, target: bool
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The codes in the vocabulary's ``AudioLayout``: ``[T_a + D + 1, K]``
        ids and mask (``D = max(delays)``).

        ``closing="frame"``: codes + closing frame, delayed (holes no
        targets); ``"after"``: the delayed codes (holes targets), then the
        closing token in stream 0, id 0 in the other streams.
        """
        vocab = self.vocab
        delays, pads = vocab.audio_delays, vocab.audio_pad_ids()
        frames = vocab.codes_to_ids(seg.codes)
        closing = torch.tensor([close, *pads[1:]], dtype=torch.long)
        after = vocab.audio_layout.closing == CLOSING_AFTER
        if after:
            closing[1:] = vocab.pad_id
            ids = torch.cat([delay_interleave(frames, pads, delays), closing[None]])
        else:
            ids = torch.cat([frames, closing[None]])
        # targets: every code (and, closed after, every hole), stream 0's close
        mask = torch.ones(len(ids), vocab.n_codebooks, dtype=torch.bool)
        mask[-1, 1:] = False
        if not after:
            ids = delay_interleave(ids, pads, delays)
            mask = delay_interleave(mask, False, delays)
        return ids, mask & target
