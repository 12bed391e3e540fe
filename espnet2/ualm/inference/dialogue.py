"""The clarifying dialogue (UALM-Reason): the model asks about a vague
prompt, the user answers, turn by turn, then it writes the rich caption and
the audio; a batch of prompts over one KV cache.

The conversation is the ``clarifying_dialogue`` template of the task
registry (``tokens/tasks.py``), laid out as training lays it out
(``text/clarify.py``: ``dialogue_messages``)::

    user: Ask what you need to know, then generate audio for this caption. <prompt>
    assistant: <question 1>                  (closed by <eos>: the turn is over)
    user: <answer 1>
    ...
    assistant: <rich caption> <audio>        (the caption closed by <eot>)

The model decides, by the closing token of each text segment, whether it
asks (``<eos>``) or has written the rich caption (``<eot>``). Each row's
segment is decoded (``Conversation.run``, paused after each text segment
and at the end of the assistant's turn); a question is answered by
``answer`` and the answer appended as the user's turn (``Conversation.
append``: the cache grows by that turn, nothing is re-prefilled); after a
rich caption the row's next segment is forced to audio; after the
``max_turns``-th answer the row's next segments are forced to a rich caption
and audio (``Conversation.force``), so no row asks more than ``max_turns``
questions.
"""

import dataclasses
from typing import Callable, List, Optional, Sequence

import torch

from espnet2.ualm.inference.decoder import Waveforms
from espnet2.ualm.inference.generate import UALMGenerator
from espnet2.ualm.inference.results import GeneratedSegment
from espnet2.ualm.inference.settings import DecodeSettings
from espnet2.ualm.tokens.conversation import Message, TextSegment
from espnet2.ualm.tokens.sequence import BuiltSequence, SequenceBuilder
from espnet2.ualm.tokens.tasks import DIALOGUE_TEMPLATE, TASKS
from espnet2.ualm.tokens.templates import TaskTemplate

# (row, question) -> the user's answer; row: the index of the prompt
Answer = Callable[[int, str], str]
# the assistant's last turn: the rich caption, then the audio
_FINAL = ("text", "audio")
_EOT = "<eot>"


@dataclasses.dataclass(eq=False)
class ClarifyingDialogue:
    """One row's dialogue: the questions and answers in order, the rich
    caption (``None`` if the model went to audio without one), the audio
    codes ``[T, K]`` and every generated segment in order."""

    questions: List[str] = dataclasses.field(default_factory=list)
    answers: List[str] = dataclasses.field(default_factory=list)
    rich_caption: Optional[str] = None
    codes: Optional[torch.Tensor] = None
    segments: List[GeneratedSegment] = dataclasses.field(default_factory=list)

    @property
    def turns(self) -> int:
        """Questions the user answered."""
        return len(self.answers)


def answer_turn(
    builder: SequenceBuilder, template: TaskTemplate, answer: str
) -> BuiltSequence:
    """The user's turn ``answer``, laid out as in training, then
    ``<assistant>``: what ``Conversation.append`` continues the dialogue
    with."""
    if not isinstance(answer, str) or not answer.strip():
        raise ValueError(f"the user's answer must be non-empty text, got {answer!r}")
    return builder.build(
        [Message("user", (TextSegment(answer),))],
        cfg_dropout=template.cfg_dropout,
        add_generation_prompt=True,
        bos=False,
    )


def dialogue_settings(settings: DecodeSettings, max_turns: int) -> DecodeSettings:
    """``settings`` with room for ``max_turns`` questions, a rich caption
    and the audio (``max_segments``)."""
    if max_turns < 0:
        raise ValueError(f"max_turns must be >= 0, got {max_turns}")
    return settings.replace(
        max_segments=max(settings.max_segments, max_turns + len(_FINAL))
    )


def clarify(
    gen: UALMGenerator,
    builder: SequenceBuilder,
    prompts: Sequence[BuiltSequence],
    answer: Answer,
    settings: Optional[DecodeSettings] = None,
    max_turns: int = 3,
    waveforms: Optional[Waveforms] = None,
    generator: Optional[torch.Generator] = None,
    template: Optional[TaskTemplate] = None,
) -> List[ClarifyingDialogue]:
    """The clarifying dialogue of every prompt (``clarifying_dialogue``
    prompts, built with ``prompt_only=True``), batched; the module
    docstring says how. ``answer(row, question)``: the user's answer."""
    template = template or TASKS.templates[DIALOGUE_TEMPLATE]
    settings = dialogue_settings(settings or DecodeSettings(), max_turns)
    n = len(prompts)
    conv = gen.start(prompts, settings, None, waveforms, generator)
    if max_turns == 0:
        conv.force(range(n), _FINAL)
    out = [ClarifyingDialogue() for _ in range(n)]
    live = list(range(n))
    while live:
        results = conv.run(pause_after_text=True, pause_after_reply=True)
        chunks: List[Optional[BuiltSequence]] = [None] * n
        ended = []
        for b in live:
            d = out[b]
            d.segments += results[b].segments
            last = results[b].segments[-1]
            if last.modality == "audio":  # the reply is over
                d.codes = last.codes
                ended.append(b)
            elif last.closing == _EOT:  # the rich caption: the audio follows
                d.rich_caption = last.text
                conv.force([b], ("audio",))
            else:  # a question: the assistant's turn is over
                d.questions.append(last.text)
                d.answers.append(answer(b, last.text or ""))
                chunks[b] = answer_turn(builder, template, d.answers[-1])
                if d.turns >= max_turns:
                    conv.force([b], _FINAL)
        conv.end(ended)
        if any(c is not None for c in chunks):
            conv.append(chunks)
        live = [b for b in live if b not in ended]
    return out
