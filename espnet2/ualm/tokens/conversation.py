"""Conversations as the sequence builder reads them: messages of segments.

A segment is one modality: text, discrete audio (codec codes the model reads
or writes) or continuous audio input (encoder features the model only
reads). ``conversation_from_dialogue`` turns doc/data_layout.md's
``dialogue.jsonl`` messages into this form.
"""

import dataclasses
from typing import (
    Any,
    Iterable,
    List,
    Mapping,
    Optional,
    Sequence,
    Set,
    Tuple,
    Union,
)

import numpy as np
import torch

from espnet2.ualm.tokens.vocabulary import ROLES


@dataclasses.dataclass(frozen=True)
class TextSegment:
    text: str
    modality = "text"


@dataclasses.dataclass(frozen=True, eq=False)
class AudioSegment:
    """Discrete codec codes ``[T, n_codebooks]`` (generated or prompted audio)."""

    codes: torch.Tensor
    modality: str = "audio"

    def __post_init__(self):
        codes = self.codes
        if isinstance(codes, np.ndarray):
            codes = torch.from_numpy(codes)
        codes = torch.as_tensor(codes)
        if codes.dim() != 2:
            raise ValueError(f"audio codes must be [T, K], got {tuple(codes.shape)}")
        object.__setattr__(self, "codes", codes.long())


@dataclasses.dataclass(frozen=True)
class AudioInputSegment:
    """Continuous audio input: ``num_frames`` encoder frames of audio ``key``.

    ``key`` names the waveform the collate function hands to the encoder;
    ``num_frames`` must equal what the encoder gives for it
    (``WhisperAudioEncoder.num_frames(num_samples)``).
    """

    key: str
    num_frames: int
    modality = "audio_input"

    def __post_init__(self):
        if int(self.num_frames) <= 0:
            raise ValueError(f"audio input {self.key!r} has no frames")


Segment = Union[TextSegment, AudioSegment, AudioInputSegment]


@dataclasses.dataclass(frozen=True)
class Message:
    role: str
    segments: Tuple[Segment, ...]

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"unknown role {self.role!r}; roles are {ROLES}")
        object.__setattr__(self, "segments", tuple(self.segments))
        if not self.segments:
            raise ValueError(f"{self.role} message without segments")


# ----- dialogue.jsonl -------------------------------------------------------

# Content types of dialogue.jsonl. "audio" is read through the encoder in
# system/user messages and generated as codec codes in assistant messages;
# "audio_input" forces the encoder (an assistant listening to its own audio).
DIALOGUE_SEGMENT_TYPES = ("text", "audio", "audio_input")


def message_parts(message: Any, where: str = "message") -> List[Mapping[str, Any]]:
    """The content parts of a ``dialogue.jsonl`` message, checked; a plain
    string content (the form Hugging Face chat templates also take) is one
    text part. A malformed message is a ``ValueError`` saying what it is."""
    if not isinstance(message, Mapping):
        raise ValueError(
            f"{where}: a message must be a mapping with 'role' and 'content', "
            f"got {type(message).__name__}"
        )
    content = message.get("content")
    if content is None:
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if not isinstance(content, (list, tuple)):
        raise ValueError(
            f"{where}: content must be a string or a list of parts, "
            f"got {type(content).__name__}"
        )
    for j, part in enumerate(content):
        if not isinstance(part, Mapping):
            raise ValueError(
                f"{where}, segment {j}: a content part must be a mapping such as "
                f"{{'type': 'text', 'text': ...}}, got {type(part).__name__}"
            )
    return list(content)


def _is_discrete(role: str, part_type: str) -> bool:
    return part_type == "audio" and role == "assistant"


def audio_references(
    messages: Iterable[Mapping[str, Any]],
) -> Tuple[Set[str], Set[str]]:
    """Audio ids a dialogue needs as (codec codes, encoder input).

    Lets a data loader read only what the conversation uses.
    """
    discrete, continuous = set(), set()
    for i, msg in enumerate(messages):
        for part in message_parts(msg, f"message {i}"):
            if part["type"] in ("audio", "audio_input"):
                target = (
                    discrete if _is_discrete(msg["role"], part["type"]) else continuous
                )
                target.add(part["audio"])
    return discrete, continuous


def conversation_from_dialogue(
    messages: Sequence[Mapping[str, Any]],
    audio_codes: Optional[Mapping[str, Any]] = None,
    audio_input_frames: Optional[Mapping[str, int]] = None,
) -> List[Message]:
    """``dialogue.jsonl`` messages -> ``Message`` list.

    ``audio_codes`` maps audio ids to codes ``[T, K]``; ``audio_input_frames``
    maps audio ids to their number of encoder frames.
    """
    audio_codes = audio_codes or {}
    audio_input_frames = audio_input_frames or {}
    out = []
    for i, msg in enumerate(messages):
        parts = message_parts(msg, f"message {i}")
        role = msg.get("role")
        if role not in ROLES:
            raise ValueError(f"message {i}: unknown role {role!r}; roles are {ROLES}")
        segments: List[Segment] = []
        for j, part in enumerate(parts):
            where = f"message {i} ({role}), segment {j}"
            kind = part.get("type")
            if kind == "text":
                segments.append(TextSegment(str(part["text"])))
            elif kind in ("audio", "audio_input"):
                audio_id = part.get("audio")
                if _is_discrete(role, kind):
                    if audio_id not in audio_codes:
                        raise KeyError(
                            f"{where}: no codec codes for audio {audio_id!r}"
                        )
                    segments.append(AudioSegment(audio_codes[audio_id]))
                else:
                    if audio_id not in audio_input_frames:
                        raise KeyError(
                            f"{where}: no encoder frame count for audio {audio_id!r}"
                        )
                    segments.append(
                        AudioInputSegment(audio_id, int(audio_input_frames[audio_id]))
                    )
            else:
                raise ValueError(
                    f"{where}: unknown content type {kind!r}; types are "
                    f"{DIALOGUE_SEGMENT_TYPES}"
                )
        out.append(Message(role, tuple(segments)))
    return out
