"""Inference requests: one item of a task -> its prompt, or a clear error.

A request names a task of the registry (``espnet2.ualm.tokens.tasks``, or an
alias such as ``chat``) and its fields: text fields as strings, audio inputs
as a file path, a 1-D array at the encoder's rate, or ``(array,
sample_rate)``.
Conversation tasks take ``messages`` in ``dialogue.jsonl`` form and an
``audio`` mapping from the audio ids the messages name to such audio.

Whatever is wrong with one item (unknown task, empty caption, unreadable
audio, a prompt longer than the model can take) raises
:class:`InferenceItemError` naming the item, so the caller can record it and
go on with the rest of the batch.
"""

import dataclasses
from typing import Any, Dict, Optional, Tuple, Union

import numpy as np
import torch

from espnet2.ualm.data.io import AudioReadError, load_audio
from espnet2.ualm.tokens.conversation import AudioInputSegment, message_parts
from espnet2.ualm.tokens.sequence import BuiltSequence, SequenceBuilder
from espnet2.ualm.tokens.tasks import TaskRegistry
from espnet2.ualm.tokens.templates import TaskTemplate, TemplateError, format_fields

AudioLike = Union[str, np.ndarray, torch.Tensor, Tuple[Any, int]]


class InferenceItemError(ValueError):
    """One item cannot be answered; the message names it and why."""


@dataclasses.dataclass
class Request:
    """One item: ``fields`` per the task's template (see module docstring)."""

    id: str
    task: str
    fields: Dict[str, Any]
    audio: Dict[str, AudioLike] = dataclasses.field(default_factory=dict)
    plan: Optional[Tuple[str, ...]] = None  # overrides the task's reply plan
    template: Optional[str] = None  # overrides the task's own template


@dataclasses.dataclass
class PreparedRequest:
    request: Request
    prompt: BuiltSequence
    waveforms: Dict[str, torch.Tensor]
    plan: Optional[Tuple[str, ...]]


def read_audio(audio: AudioLike, sample_rate: int, where: str) -> torch.Tensor:
    """Mono float32 waveform at ``sample_rate`` from any ``AudioLike``
    (``data.io.load_audio``); a bad clip is an ``InferenceItemError``."""
    try:
        wav, _ = load_audio(audio, int(sample_rate))
    except AudioReadError as e:
        raise InferenceItemError(f"{where}: {e}") from e
    return torch.from_numpy(wav)


class RequestBuilder:
    """Turns requests into prompts for one model.

    Args:
        builder: the model's sequence builder (vocabulary + text tokenizer).
        tasks: the registry of the tasks requests may name (their templates
            and reply plans).
        audio_rate, num_frames: the encoder's sample rate and frame count
            function (``None`` for a model without an audio encoder).
        max_positions: the backbone's longest sequence.
    """

    def __init__(
        self,
        builder: SequenceBuilder,
        tasks: TaskRegistry,
        audio_rate: Optional[int],
        num_frames,
        max_positions: int,
    ):
        self.builder = builder
        self.tasks = tasks
        self.audio_rate = audio_rate
        self.num_frames = num_frames
        self.max_positions = int(max_positions)

    def template(self, task: str, name: Optional[str] = None) -> TaskTemplate:
        """The template ``name``, else task ``task``'s own."""
        try:
            return self.tasks.templates[name] if name else self.tasks.template_of(task)
        except KeyError:
            raise InferenceItemError(
                f"unknown template {name!r}; templates: {sorted(self.tasks.templates)}"
            ) from None
        except ValueError as e:
            raise InferenceItemError(str(e)) from e

    def plan(self, request: Request) -> Optional[Tuple[str, ...]]:
        """The request's own plan, else its task's (``TaskSpec.reply``)."""
        if request.plan is not None:
            return tuple(request.plan)
        if request.task not in self.tasks:
            return None  # prepare() reports the unknown task
        return self.tasks.get(request.task).reply

    def prepare(self, request: Request, reply_positions: int) -> PreparedRequest:
        """The prompt and waveforms of ``request``; ``reply_positions``: the
        most positions the reply may take (for the length check)."""
        where = f"item {request.id!r} (task {request.task})"
        try:
            template = self.template(request.task, request.template)
            waves: Dict[str, torch.Tensor] = {}
            if template.conversation:
                example = self._conversation(request, waves, where)
            else:
                example = self._template_fields(request, template, waves, where)
            prompt = self.builder.build_example(template, example, prompt_only=True)
        except InferenceItemError as e:
            raise InferenceItemError(
                str(e) if str(e).startswith(where) else f"{where}: {e}"
            ) from e
        except (KeyError, ValueError, TypeError, TemplateError) as e:
            raise InferenceItemError(f"{where}: {e}") from e
        total = len(prompt) + reply_positions
        if total > self.max_positions:
            raise InferenceItemError(
                f"{where}: prompt of {len(prompt)} positions + up to "
                f"{reply_positions} for the reply exceeds the model's "
                f"{self.max_positions} positions; shorten the input or lower "
                "max_text_tokens / max_audio_seconds"
            )
        return PreparedRequest(request, prompt, waves, self.plan(request))

    # ----- fields ---------------------------------------------------------------

    def _audio_input(
        self, key: str, audio: AudioLike, waves: Dict[str, torch.Tensor], where: str
    ) -> AudioInputSegment:
        if self.audio_rate is None:
            raise InferenceItemError(
                f"{where}: the task reads audio, the model has no audio encoder"
            )
        wav = read_audio(audio, self.audio_rate, where)
        waves[key] = wav
        return AudioInputSegment(key, int(self.num_frames(wav.numel())))

    def _template_fields(
        self,
        request: Request,
        template: TaskTemplate,
        waves: Dict[str, torch.Tensor],
        where: str,
    ) -> Dict[str, Any]:
        example: Dict[str, Any] = {}
        for message in template.prompt_messages():
            for seg in message.segments:
                for name in format_fields(seg.value):
                    if name not in request.fields:
                        raise InferenceItemError(
                            f"{where}: missing field {name!r} (the {template.name} "
                            f"template needs {list(template.fields())})"
                        )
                    value = request.fields[name]
                    if seg.kind == "text":
                        if not isinstance(value, str) or not value.strip():
                            raise InferenceItemError(f"{where}: empty {name}")
                        example[name] = value
                    elif seg.kind == "audio_input":
                        example[name] = self._audio_input(
                            f"{request.id}/{name}", value, waves, where
                        )
                    else:
                        raise InferenceItemError(
                            f"{where}: discrete audio in a prompt is not supported "
                            f"(field {name!r})"
                        )
        return example

    def _conversation(
        self, request: Request, waves: Dict[str, torch.Tensor], where: str
    ) -> Dict[str, Any]:
        messages = request.fields.get("messages")
        if not isinstance(messages, (list, tuple)) or not messages:
            raise InferenceItemError(f"{where}: no messages")
        frames: Dict[str, int] = {}
        out = []
        for i, msg in enumerate(messages):
            content = []
            for part in message_parts(msg, f"message {i}"):
                if part.get("type") in ("audio", "audio_input"):
                    aid = part.get("audio")
                    if msg.get("role") == "assistant":
                        raise InferenceItemError(
                            f"{where}: message {i}: earlier assistant audio in a "
                            "prompt is not supported"
                        )
                    if aid not in request.audio:
                        raise InferenceItemError(
                            f"{where}: message {i} names audio {aid!r}, which was "
                            "not given"
                        )
                    key = f"{request.id}/{aid}"
                    if key not in waves:
                        seg = self._audio_input(key, request.audio[aid], waves, where)
                        frames[key] = seg.num_frames
                    part = {"type": "audio_input", "audio": key}
                elif part.get("type") == "text" and not str(part.get("text", "")):
                    raise InferenceItemError(f"{where}: message {i} has empty text")
                content.append(part)
            out.append({**msg, "content": content})
        while out and out[-1].get("role") == "assistant":
            out.pop()
        if not out:
            raise InferenceItemError(f"{where}: no user message to answer")
        return {"messages": out, "audio_input_frames": frames}
