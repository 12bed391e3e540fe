"""What generation returns: the segments of a reply and its raw frames."""

import dataclasses
from typing import List, Optional, Union

import torch

from espnet2.ualm.tokens.conversation import AudioSegment, Message, TextSegment


@dataclasses.dataclass(eq=False)
class GeneratedSegment:
    """One segment (one turn) of a generated reply.

    ``closing`` is the token that ended it: ``<eot>`` (the reply goes on
    with another segment) or ``<eos>``. Text segments hold the tokenizer's
    ``token_ids`` and, when a tokenizer was given, the decoded ``text``;
    audio segments hold the codec ``codes`` ``[T, K]``. ``score``: the
    sum of the chosen tokens' log-probabilities (beam search only).
    ``truncated``: the segment reached its length bound (``max_text_tokens``
    or ``max_audio_seconds``) and was closed there, not by the model.
    """

    modality: str
    closing: str
    token_ids: Optional[List[int]] = None
    text: Optional[str] = None
    codes: Optional[torch.Tensor] = None
    score: Optional[float] = None
    truncated: bool = False

    @property
    def value(self) -> Union[str, List[int], torch.Tensor]:
        """The text (or its token ids without a tokenizer), or the codes."""
        if self.modality == "audio":
            return self.codes
        return self.text if self.text is not None else self.token_ids

    def as_segment(self) -> Union[TextSegment, AudioSegment]:
        """The conversation segment, to put the reply back into a dialogue."""
        if self.modality == "audio":
            return AudioSegment(self.codes)
        if self.text is None:
            raise ValueError("a text segment needs a tokenizer to be decoded")
        return TextSegment(self.text)


@dataclasses.dataclass(eq=False)
class GenerationResult:
    """A reply: its segments, and every generated frame ``ids`` ``[L, K]``.

    ``ids`` holds the modality markers, contents, closing tokens and the
    ``<assistant>`` role tokens between turns, exactly as the sequence
    builder lays the same reply out: appended to the prompt they continue
    the conversation.
    """

    segments: List[GeneratedSegment]
    ids: torch.Tensor

    def as_message(self) -> Message:
        return Message("assistant", tuple(s.as_segment() for s in self.segments))
