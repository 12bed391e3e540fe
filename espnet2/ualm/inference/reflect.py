"""Self-reflection (UALM-Reason): the model listens to its own audio and
tries again, for a batch of prompts over one KV cache.

The conversation is the ``self_reflection`` template of the task registry
(``tokens/tasks.py``), laid out by the sequence builder exactly as training
lays it out::

    user: Generate audio for this caption. <caption>
    assistant: <rich caption> <audio v1>
               <v1 heard: audio_input>  <caption of v1> <critique> <audio v2>

Each row: the rich caption and v1 are decoded (``Conversation.run``, paused
after v1); v1's codes are decoded to a waveform by the codec and the
waveform is appended as the assistant's listening turn (``Conversation.
append``: encoded by the model's own encoder and adapter, the rest of the
cache untouched); the caption of v1 and the critique are decoded from that
cache; a row whose critique finds no mismatch ends there (``Conversation.
end``, v1 is its answer), the others write v2. The round (listen, caption,
critique, new attempt) repeats up to ``max_rounds`` times.
"""

import dataclasses
from typing import Callable, List, Optional, Sequence, Tuple

import torch

from espnet2.ualm.inference.decoder import Waveforms
from espnet2.ualm.inference.generate import UALMGenerator
from espnet2.ualm.inference.results import GeneratedSegment
from espnet2.ualm.inference.settings import DecodeSettings
from espnet2.ualm.text.critique import finds_no_mismatch
from espnet2.ualm.tokens.conversation import AudioInputSegment, Message
from espnet2.ualm.tokens.sequence import BuiltSequence, SequenceBuilder
from espnet2.ualm.tokens.tasks import REFLECTION_LISTEN, REFLECTION_TEMPLATE, TASKS
from espnet2.ualm.tokens.templates import TaskTemplate

# The template's answer: what each generated segment is, around the listening
# turn (the loop reads the segments by these positions).
_FIRST = ("text", "audio")  # rich caption, v1
_ROUND = ("text", "text", "audio")  # caption of the attempt, critique, next attempt

# codes [T, K] -> 1-D waveform at the encoder's sample rate
Listen = Callable[[torch.Tensor], torch.Tensor]


@dataclasses.dataclass(eq=False)
class Attempt:
    """One generated clip (``codes`` ``[T, K]``) and, once the model has
    listened to it, its caption of the clip and its critique."""

    codes: torch.Tensor
    heard_caption: Optional[str] = None
    critique: Optional[str] = None


@dataclasses.dataclass(eq=False)
class Reflection:
    """One row's reflection: the plan (rich caption), every attempt in
    order (the last is the answer), whether a critique ended it early and
    every generated segment in order (``GenerationResult.segments`` of the
    whole reply)."""

    rich_caption: Optional[str]
    attempts: List[Attempt]
    stopped_early: bool = False
    segments: List[GeneratedSegment] = dataclasses.field(default_factory=list)

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]

    @property
    def rounds(self) -> int:
        """Listening rounds made (each a caption and a critique)."""
        return sum(a.critique is not None for a in self.attempts)


def check_reflection_template(template: TaskTemplate) -> None:
    """Raises unless ``template``'s answer is the layout the loop decodes."""
    answer = template.messages[len(template.prompt_messages()) :]
    kinds = tuple(seg.kind for m in answer for seg in m.segments)
    want = _FIRST + ("audio_input",) + _ROUND
    if kinds != want:
        raise ValueError(
            f"template {template.name!r}: a reflection answer is {list(want)}, "
            f"this one is {list(kinds)}"
        )


def reflection_plan(max_rounds: int) -> Tuple[str, ...]:
    """The generated segments of a reflection of ``max_rounds`` rounds."""
    if max_rounds < 0:
        raise ValueError(f"max_rounds must be >= 0, got {max_rounds}")
    return _FIRST + _ROUND * max_rounds


def listening_turn(
    builder: SequenceBuilder, template: TaskTemplate, key: str, num_frames: int
) -> BuiltSequence:
    """The assistant's turn that hears audio ``key`` (``num_frames`` encoder
    frames), laid out as in training, then ``<assistant>``: what
    ``Conversation.append`` continues the conversation with."""
    turn = Message("assistant", (AudioInputSegment(key, int(num_frames)),))
    return builder.build(
        [turn],
        cfg_dropout=template.cfg_dropout,
        add_generation_prompt=True,
        bos=False,
    )


def reflect(
    gen: UALMGenerator,
    builder: SequenceBuilder,
    prompts: Sequence[BuiltSequence],
    listen: Listen,
    settings: Optional[DecodeSettings] = None,
    max_rounds: int = 1,
    waveforms: Optional[Waveforms] = None,
    generator: Optional[torch.Generator] = None,
    keys: Optional[Sequence[str]] = None,
    template: Optional[TaskTemplate] = None,
    stop: Callable[[Optional[str]], bool] = finds_no_mismatch,
) -> List[Reflection]:
    """Self-reflection of every prompt (``self_reflection`` prompts, built
    with ``prompt_only=True``), batched; the module docstring says how.

    ``listen``: an attempt's codes -> its waveform at the encoder's rate
    (the codec's decoding, resampled). ``max_rounds``: most listening
    rounds per row. ``keys``: per row, the prefix of its attempts' audio
    keys (default: the row index). ``stop``: does a critique end the row
    (default: it parses and finds no mismatch)?
    """
    template = template or TASKS.templates[REFLECTION_TEMPLATE]
    check_reflection_template(template)
    encoder = gen.model.audio_encoder
    if encoder is None:
        raise ValueError("self-reflection listens through the audio encoder; "
                         "the model has none")  # fmt: skip
    n = len(prompts)
    keys = [str(b) for b in range(n)] if keys is None else list(keys)
    if len(keys) != n:
        raise ValueError(f"{len(keys)} keys for {n} prompts")
    conv = gen.start(
        prompts, settings, reflection_plan(max_rounds), waveforms, generator
    )
    first = conv.run(pause_after_audio=True)
    out = []
    for r in first:
        rich, attempt = r.segments
        out.append(
            Reflection(rich.text, [Attempt(attempt.codes)], segments=[rich, attempt])
        )
    live = list(range(n))
    for k in range(max_rounds):
        if not live:
            break
        chunks: List[Optional[BuiltSequence]] = [None] * n
        waves: List[dict] = [{} for _ in range(n)]
        for b in live:
            wav = torch.as_tensor(listen(out[b].final.codes)).float().reshape(-1)
            key = f"{keys[b]}/{REFLECTION_LISTEN}{k + 1}"
            frames = encoder.num_frames(wav.numel())
            chunks[b] = listening_turn(builder, template, key, frames)
            waves[b] = {key: wav}
        conv.append(chunks, waves)
        heard = conv.run(pause_after_text=True)
        critiques = conv.run(pause_after_text=True)
        done = []
        for b in live:
            attempt = out[b].final
            attempt.heard_caption = heard[b].segments[0].text
            attempt.critique = critiques[b].segments[0].text
            out[b].segments += heard[b].segments + critiques[b].segments
            if stop(attempt.critique):
                out[b].stopped_early = True
                done.append(b)
        conv.end(done)
        live = [b for b in live if b not in done]
        if not live:
            break
        again = conv.run(pause_after_audio=True)
        for b in live:
            (segment,) = again[b].segments
            out[b].attempts.append(Attempt(segment.codes))
            out[b].segments.append(segment)
    return out
