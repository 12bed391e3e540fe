"""Task templates: how each task's examples become conversations.

A template is the token layout of a task's examples; the built-in ones are
declared with their tasks in ``espnet2.ualm.tokens.tasks``. Templates are
checked on construction, those from a mapping (YAML) with errors that name
the task, message and segment.

A templated task fills fixed messages from an example's fields: text
segments are ``str.format`` strings (``"Generate audio for this caption.
{caption}"``), audio segments name one field (``"{audio}"``) holding codec
codes (``audio``) or an encoder input (``audio_input``). A conversation task
(``conversation=True``) reads the example's ``messages`` (``dialogue.jsonl``).

YAML form of a template (an entry of a task file's ``templates:``, or the
template keys of a task entry: ``espnet2.ualm.tokens.tasks``)::

    my_task:
      messages:
        - role: user
          content:
            - audio_input: "{audio}"
            - text: "Describe the sound."
        - role: assistant
          content:
            - text: "{caption}"
      cfg_dropout: false
"""

import dataclasses
import string
from typing import Any, List, Mapping, Sequence, Tuple

import numpy as np
import torch

from espnet2.ualm.tokens.conversation import (
    AudioInputSegment,
    AudioSegment,
    Message,
    Segment,
    TextSegment,
    conversation_from_dialogue,
)
from espnet2.ualm.tokens.vocabulary import ROLES

SEGMENT_KINDS: Tuple[str, ...] = ("text", "audio", "audio_input")


class TemplateError(ValueError):
    """A task template is malformed, or an example does not fit its template."""


@dataclasses.dataclass(frozen=True)
class SegmentTemplate:
    kind: str  # one of SEGMENT_KINDS
    value: str  # text: a format string; audio kinds: "{field}"


@dataclasses.dataclass(frozen=True)
class MessageTemplate:
    role: str
    segments: Tuple[SegmentTemplate, ...]


@dataclasses.dataclass(frozen=True)
class TaskTemplate:
    """One task's conversation shape.

    ``messages``: the fixed messages of a templated task. ``conversation``:
    the example brings its own ``messages`` instead; ``allowed_kinds`` and
    ``required_assistant_kinds`` then say which segments they may and must
    hold. ``cfg_dropout``: the model may drop this task's condition (CFG).
    """

    name: str
    messages: Tuple[MessageTemplate, ...] = ()
    conversation: bool = False
    allowed_kinds: Tuple[str, ...] = SEGMENT_KINDS
    required_assistant_kinds: Tuple[str, ...] = ()
    cfg_dropout: bool = False
    description: str = ""

    def __post_init__(self):
        validate_task_template(self)

    def fields(self) -> Tuple[str, ...]:
        """Example fields a templated task reads, in order of appearance."""
        if self.conversation:
            return ("messages",)
        out: List[str] = []
        for msg in self.messages:
            for seg in msg.segments:
                for name in format_fields(seg.value):
                    if name not in out:
                        out.append(name)
        return tuple(out)

    def prompt_messages(self) -> Tuple["MessageTemplate", ...]:
        """The messages before the answer (the trailing assistant ones)."""
        return tuple(_strip_trailing_assistant(self.messages))

    def render(
        self, example: Mapping[str, Any], prompt_only: bool = False
    ) -> List[Message]:
        """The conversation of one example.

        ``prompt_only`` drops the trailing assistant messages (what a model
        is given at inference); their fields need not be in ``example``.
        """
        if self.conversation:
            messages = self._render_conversation(example, with_answer=not prompt_only)
            return _strip_trailing_assistant(messages) if prompt_only else messages
        templates = self.messages
        if prompt_only:
            templates = _strip_trailing_assistant(templates)
        return [
            Message(m.role, tuple(self._render_segment(s, example) for s in m.segments))
            for m in templates
        ]

    # ----- helpers ------------------------------------------------------------

    def _render_segment(
        self, seg: SegmentTemplate, example: Mapping[str, Any]
    ) -> Segment:
        if seg.kind == "text":
            return TextSegment(seg.value.format_map(_TextFields(self.name, example)))
        field = format_fields(seg.value)[0]
        value = _field(self.name, example, field)
        if seg.kind == "audio":
            if isinstance(value, AudioSegment):
                return value
            if isinstance(value, str):
                value = _lookup(self.name, example, "audio_codes", value)
            if not isinstance(value, (torch.Tensor, np.ndarray)):
                raise TemplateError(
                    f"task {self.name!r}: field {field!r} must hold codec codes [T, K] "
                    f"or an audio id, got {type(value).__name__}"
                )
            return AudioSegment(value)
        if isinstance(value, AudioInputSegment):
            return value
        if isinstance(value, str):
            frames = _lookup(self.name, example, "audio_input_frames", value)
            return AudioInputSegment(value, int(frames))
        raise TemplateError(
            f"task {self.name!r}: field {field!r} must hold an AudioInputSegment or an "
            f"audio id, got {type(value).__name__}"
        )

    def _render_conversation(
        self, example: Mapping[str, Any], with_answer: bool
    ) -> List[Message]:
        raw = _field(self.name, example, "messages")
        try:
            messages = conversation_from_dialogue(
                raw, example.get("audio_codes"), example.get("audio_input_frames")
            )
        except (KeyError, ValueError) as e:
            raise TemplateError(f"task {self.name!r}: {e}") from e
        for i, msg in enumerate(messages):
            for j, seg in enumerate(msg.segments):
                kind = _segment_kind(seg)
                if kind not in self.allowed_kinds:
                    raise TemplateError(
                        f"task {self.name!r}: message {i} ({msg.role}), segment {j} is "
                        f"{kind}; this task allows {self.allowed_kinds}"
                    )
        if not with_answer:
            return messages
        if not any(m.role == "assistant" for m in messages):
            raise TemplateError(
                f"task {self.name!r}: conversation has no assistant message"
            )
        if self.required_assistant_kinds:
            found = {
                _segment_kind(s)
                for m in messages
                if m.role == "assistant"
                for s in m.segments
            }
            missing = [k for k in self.required_assistant_kinds if k not in found]
            if missing:
                raise TemplateError(
                    f"task {self.name!r}: the assistant must write {missing} segments "
                    f"(it writes {sorted(found)})"
                )
        return messages


def template_dialogue(template: TaskTemplate, example: Mapping[str, Any]) -> List[dict]:
    """The ``dialogue.jsonl`` messages (doc/data_layout.md) of a templated
    task's example: text fields as strings, audio fields as audio ids of the
    data directory. ``conversation_from_dialogue`` of them is what
    ``template.render`` gives for the same content, so a converter can write
    a template's examples as conversations (self-reflection data)."""
    if template.conversation:
        raise TemplateError(f"task {template.name!r} is a conversation already")
    out = []
    for m in template.messages:
        content = []
        for seg in m.segments:
            if seg.kind == "text":
                text = seg.value.format_map(_TextFields(template.name, example))
                content.append({"type": "text", "text": text})
                continue
            value = _field(template.name, example, format_fields(seg.value)[0])
            if not isinstance(value, str):
                raise TemplateError(
                    f"task {template.name!r}: audio field {seg.value} must be an "
                    f"audio id, got {type(value).__name__}"
                )
            content.append({"type": seg.kind, "audio": value})
        out.append({"role": m.role, "content": content})
    return out


def _segment_kind(seg: Segment) -> str:
    if isinstance(seg, TextSegment):
        return "text"
    if isinstance(seg, AudioSegment):
        return "audio"
    return "audio_input"


def _strip_trailing_assistant(messages: Sequence) -> list:
    messages = list(messages)
    while messages and messages[-1].role == "assistant":
        messages.pop()
    return messages


class _TextFields(dict):
    """``format_map`` lookup with errors that name the task and field."""

    def __init__(self, task: str, example: Mapping[str, Any]):
        super().__init__()
        self.task, self.example = task, example

    def __missing__(self, key: str) -> str:
        value = _field(self.task, self.example, key)
        if not isinstance(value, str):
            raise TemplateError(
                f"task {self.task!r}: text field {key!r} must be a string, got "
                f"{type(value).__name__}"
            )
        return value


def _field(task: str, example: Mapping[str, Any], name: str) -> Any:
    if name not in example:
        raise TemplateError(
            f"task {task!r}: example lacks field {name!r} (it has {sorted(example)})"
        )
    return example[name]


def _lookup(task: str, example: Mapping[str, Any], table: str, key: str) -> Any:
    values = example.get(table) or {}
    if key not in values:
        raise TemplateError(f"task {task!r}: {table} has no entry for audio {key!r}")
    return values[key]


def format_fields(value: str) -> List[str]:
    """Field names of a format string; raises ValueError on bad syntax."""
    return [
        name for _, name, _, _ in string.Formatter().parse(value) if name is not None
    ]


# ----- validation -----------------------------------------------------------


def validate_task_template(template: TaskTemplate) -> None:
    """Raises ``TemplateError`` naming the task, message and segment at fault."""
    name = template.name
    if not isinstance(name, str) or not name.isidentifier():
        raise TemplateError(f"task name {name!r} must be an identifier")
    where = f"task template {name!r}"
    for kinds, what in (
        (template.allowed_kinds, "allowed_kinds"),
        (template.required_assistant_kinds, "required_assistant_kinds"),
    ):
        bad = [k for k in kinds if k not in SEGMENT_KINDS]
        if bad:
            raise TemplateError(
                f"{where}: {what} has unknown kinds {bad}; kinds are {SEGMENT_KINDS}"
            )
    if template.conversation:
        if template.messages:
            raise TemplateError(f"{where}: a conversation task takes no fixed messages")
        missing = [
            k
            for k in template.required_assistant_kinds
            if k not in template.allowed_kinds
        ]
        if missing:
            raise TemplateError(
                f"{where}: required kinds {missing} are not allowed kinds"
            )
        if template.cfg_dropout and "audio" not in template.allowed_kinds:
            raise TemplateError(f"{where}: cfg_dropout needs audio targets")
        return
    if not template.messages:
        raise TemplateError(
            f"{where}: no messages (set conversation=True for dialogue.jsonl data)"
        )
    for i, msg in enumerate(template.messages):
        at = f"{where}, message {i}"
        if msg.role not in ROLES:
            raise TemplateError(f"{at}: unknown role {msg.role!r}; roles are {ROLES}")
        if not msg.segments:
            raise TemplateError(f"{at}: no segments")
        for j, seg in enumerate(msg.segments):
            _validate_segment(seg, f"{at} ({msg.role}), segment {j}")
    if template.messages[-1].role != "assistant":
        raise TemplateError(
            f"{where}: the last message must be the assistant's (the target)"
        )
    has_audio_target = any(
        s.kind == "audio"
        for m in template.messages
        if m.role == "assistant"
        for s in m.segments
    )
    if template.cfg_dropout and not has_audio_target:
        raise TemplateError(f"{where}: cfg_dropout needs an assistant audio segment")


def _validate_segment(seg: SegmentTemplate, at: str) -> None:
    if seg.kind not in SEGMENT_KINDS:
        raise TemplateError(
            f"{at}: unknown kind {seg.kind!r}; kinds are {SEGMENT_KINDS}"
        )
    if not isinstance(seg.value, str):
        raise TemplateError(
            f"{at}: value must be a string, got {type(seg.value).__name__}"
        )
    try:
        parsed = list(string.Formatter().parse(seg.value))
    except ValueError as e:
        raise TemplateError(f"{at}: bad format string {seg.value!r}: {e}") from e
    fields = [f for _, f, _, _ in parsed if f is not None]
    for field in fields:
        if not field.isidentifier():
            raise TemplateError(f"{at}: field {{{field}}} must be a plain name")
    if any(spec or conv for _, f, spec, conv in parsed if f is not None):
        raise TemplateError(f"{at}: fields take no conversion or format spec")
    if seg.kind != "text" and (len(parsed) != 1 or parsed[0][0] or len(fields) != 1):
        raise TemplateError(
            f"{at}: an {seg.kind} segment is exactly one field, like "
            f"'{{audio}}'; got {seg.value!r}"
        )


# ----- construction from mappings (YAML) ------------------------------------

# The YAML keys of a template: its fields but the name (the mapping's key).
TEMPLATE_KEYS: Tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TaskTemplate) if f.name != "name"
)


def task_template_from_dict(name: str, conf: Mapping[str, Any]) -> TaskTemplate:
    """A template from its YAML form (see the module docstring)."""
    where = f"task template {name!r}"
    if not isinstance(conf, Mapping):
        raise TemplateError(f"{where}: must be a mapping, got {type(conf).__name__}")
    unknown = sorted(set(conf) - set(TEMPLATE_KEYS))
    if unknown:
        raise TemplateError(
            f"{where}: unknown keys {unknown}; known: {list(TEMPLATE_KEYS)}"
        )
    messages = []
    for i, msg in enumerate(conf.get("messages") or ()):
        at = f"{where}, message {i}"
        if not isinstance(msg, Mapping) or set(msg) != {"role", "content"}:
            raise TemplateError(
                f"{at}: must be a mapping with exactly 'role' and 'content'"
            )
        segments = []
        for j, seg in enumerate(msg["content"] or ()):
            if not isinstance(seg, Mapping) or len(seg) != 1:
                raise TemplateError(
                    f"{at}, segment {j}: must be one 'kind: value' pair with kind in "
                    f"{SEGMENT_KINDS}, got {seg!r}"
                )
            ((kind, value),) = seg.items()
            segments.append(SegmentTemplate(kind, value))
        messages.append(MessageTemplate(msg["role"], tuple(segments)))
    kwargs = {k: conf[k] for k in TEMPLATE_KEYS[1:] if k in conf}
    for key in ("allowed_kinds", "required_assistant_kinds"):
        if key in kwargs:
            kwargs[key] = tuple(kwargs[key])
    return TaskTemplate(name=name, messages=tuple(messages), **kwargs)
