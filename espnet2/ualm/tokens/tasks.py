"""The task registry: every task declared once, with all any stage needs of it.

A ``TaskSpec`` says which template lays the task's examples out, which
data-directory files the examples are read from, the training blend group,
the modalities of a reply, how the task is scored and which file holds its
prompts. Manifests (stage 5), the training dataset and blend, inference
requests and scoring all read the registry, so adding a task is one
declaration here, or one entry of a recipe's YAML file (``load_tasks``)::

    templates:                     # optional: new layouts (see templates.py)
      describe:
        messages:
          - {role: user, content: [{audio_input: "{audio}"}, {text: Describe.}]}
          - {role: assistant, content: [{text: "{caption}"}]}
    tasks:
      describe_audio:
        template: describe         # a layout above or a built-in one
        files: [wav, text]         # data-dir files (FILE_NAMES)
        fields: {caption: text}    # template field -> file, where they differ
        group: understanding       # blend group
        reply: [text]              # default: the template's assistant segments
        scoring: captioning        # SCORING_KINDS; omit: not scored
        key_metrics: [cider_d]     # default: the scoring kind's
        prompt_file: text          # the prompts of generated audio (CLAP)
        aliases: [describe]
        description: audio -> free description

A task entry may instead hold its layout inline (the template keys:
``messages``, ``conversation``, ...), which declares a template of the
task's name. Every task is checked on registration (``validate_task``): an
unknown template or scoring kind, a duplicate name, files that do not match
what the template reads raise ``TaskError`` naming the task.
"""

import dataclasses
from types import MappingProxyType
from typing import (
    Any,
    Dict,
    Iterable,
    Iterator,
    Mapping,
    Optional,
    Tuple,
    Union,
)

import yaml

from espnet2.ualm.tokens.templates import (
    TEMPLATE_KEYS,
    MessageTemplate,
    SegmentTemplate,
    TaskTemplate,
    TemplateError,
    format_fields,
    task_template_from_dict,
)

# File key -> its name in a formatted data directory (``codes``: in the
# stage-4 codes directory); any other key is a text file of that name.
FILE_NAMES: Mapping[str, str] = MappingProxyType(
    {
        "wav": "wav.scp",
        "dialogue": "dialogue.jsonl",
        "codes": "codes.scp",
        # a preference task's rejected replies: a codes directory in the data dir
        "rejected_codes": "rejected/codes.scp",
    }
)
# The file of a preference task's rejected replies (its chosen ones: "codes").
REJECTED = "rejected_codes"
# Scoring kind -> its key metrics (RESULTS.md's summary and the permutation
# test), unless a task names its own.
SCORING_KINDS: Mapping[str, Tuple[str, ...]] = MappingProxyType(
    {
        "generation": ("judge_overall",),
        "speech": ("mcd", "roundtrip_wer"),
        "captioning": ("cider_d", "attribute_accuracy", "bleu_4"),
        "qa": ("accuracy",),
        "text": ("accuracy",),
        "asr": ("wer",),
    }
)
REPLY_KINDS: Tuple[str, ...] = ("text", "audio")


class TaskError(TemplateError):
    """A task declaration is malformed or does not fit its template."""


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """One task.

    ``template``: the name of the template its examples are built with.
    ``files``: the data-directory files its examples read (``FILE_NAMES``
    keys or text-file names); ``fields``: template text field -> the file
    holding it, where the names differ. ``group``: its blend group.
    ``reply``: the modalities of the reply's segments, ``None`` when the model
    chooses. ``scoring``: a ``SCORING_KINDS`` kind, ``None`` when not scored;
    ``key_metrics``: its headline metrics (default: the kind's).
    ``prompt_file``: the file of the prompts of generated audio.
    ``aliases``: other names requests may use for it.
    ``preference``: its examples are pairs of a chosen reply (``codes``) and
    a rejected one (``rejected_codes``) to the same prompt, for DPO
    (``espnet2/ualm/model/dpo.py``).
    """

    name: str
    template: str
    files: Tuple[str, ...]
    group: str
    reply: Optional[Tuple[str, ...]]
    scoring: Optional[str] = None
    key_metrics: Tuple[str, ...] = ()
    prompt_file: str = "text"
    fields: Mapping[str, str] = dataclasses.field(default_factory=dict)
    aliases: Tuple[str, ...] = ()
    description: str = ""
    preference: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", tuple(self.files))
        object.__setattr__(self, "aliases", tuple(self.aliases))
        object.__setattr__(self, "key_metrics", tuple(self.key_metrics))
        object.__setattr__(self, "fields", MappingProxyType(dict(self.fields)))
        if self.reply is not None:
            object.__setattr__(self, "reply", tuple(self.reply))
        if not self.key_metrics and self.scoring in SCORING_KINDS:
            object.__setattr__(self, "key_metrics", SCORING_KINDS[self.scoring])

    def file_of(self, field: str) -> str:
        """The data-directory file holding template text field ``field``."""
        return self.fields.get(field, field)


def template_reads(template: TaskTemplate, spec: TaskSpec) -> Tuple[str, ...]:
    """The files a templated task's examples read, in order of appearance."""
    out = []
    for message in template.messages:
        for seg in message.segments:
            if seg.kind == "text":
                names = [spec.file_of(f) for f in format_fields(seg.value)]
            else:
                names = ["codes" if seg.kind == "audio" else "wav"]
            out.extend(n for n in names if n not in out)
    return tuple(out)


def validate_task(spec: TaskSpec, templates: Mapping[str, TaskTemplate]) -> None:
    """Raises ``TaskError`` naming ``spec``'s task and what is wrong with it."""
    where = f"task {spec.name!r}"
    if not isinstance(spec.name, str) or not spec.name.isidentifier():
        raise TaskError(f"task name {spec.name!r} must be an identifier")
    if spec.template not in templates:
        raise TaskError(
            f"{where}: unknown template {spec.template!r}; templates are "
            f"{sorted(templates)}"
        )
    if not isinstance(spec.group, str) or not spec.group:
        raise TaskError(f"{where}: needs a blend group")
    if spec.scoring is not None and spec.scoring not in SCORING_KINDS:
        raise TaskError(
            f"{where}: unknown scoring kind {spec.scoring!r}; kinds are "
            f"{sorted(SCORING_KINDS)}"
        )
    if spec.key_metrics and spec.scoring is None:
        raise TaskError(f"{where}: key metrics without a scoring kind")
    if spec.reply is not None:
        bad = [k for k in spec.reply if k not in REPLY_KINDS]
        if bad or not spec.reply:
            raise TaskError(
                f"{where}: reply {list(spec.reply)} must be a non-empty list of "
                f"{REPLY_KINDS} (or null: the model chooses)"
            )
    if len(set(spec.files)) != len(spec.files):
        raise TaskError(f"{where}: files {list(spec.files)} repeat")
    template = templates[spec.template]
    if template.conversation:
        if spec.preference:
            raise TaskError(f"{where}: a preference task needs a templated reply")
        _check_conversation_files(spec, template, where)
        return
    reads = template_reads(template, spec)
    if spec.preference:
        if REJECTED not in spec.files or "codes" not in reads:
            raise TaskError(
                f"{where}: a preference task reads its chosen replies' codes and "
                f"{REJECTED!r} (files {list(spec.files)}; template "
                f"{spec.template!r} reads {list(reads)})"
            )
        reads = reads + (REJECTED,)
    if set(reads) != set(spec.files):
        raise TaskError(
            f"{where}: files {sorted(spec.files)} do not match what template "
            f"{spec.template!r} reads: {sorted(reads)} (text fields: 'fields' maps "
            "a field to its file)"
        )
    unused = sorted(set(spec.fields) - set(template.fields()))
    if unused:
        raise TaskError(
            f"{where}: fields {unused} are not fields of template {spec.template!r}"
        )
    answer = [
        seg.kind
        for m in template.messages[len(template.prompt_messages()) :]
        for seg in m.segments
    ]
    if spec.reply is not None and list(spec.reply) != answer:
        raise TaskError(
            f"{where}: reply {list(spec.reply)} differs from template "
            f"{spec.template!r}'s answer {answer}"
        )


def _check_conversation_files(
    spec: TaskSpec, template: TaskTemplate, where: str
) -> None:
    """A conversation task reads ``dialogue``, and ``wav`` / ``codes`` when its
    conversations hold audio (user audio, assistant audio)."""
    allowed = {"dialogue"}
    if set(template.allowed_kinds) & {"audio", "audio_input"}:
        allowed |= {"wav", "codes"}
    if "dialogue" not in spec.files or set(spec.files) - allowed:
        raise TaskError(
            f"{where}: a conversation task (template {spec.template!r}) reads "
            f"'dialogue' and at most {sorted(allowed - {'dialogue'})}; files are "
            f"{list(spec.files)}"
        )
    if spec.fields:
        raise TaskError(f"{where}: a conversation task takes no 'fields'")


class TaskRegistry:
    """Tasks by name (and alias) with the templates they are built with.

    Construction validates every task (``validate_task``) and that no two
    tasks or aliases share a name.
    """

    def __init__(
        self, tasks: Iterable[TaskSpec], templates: Iterable[TaskTemplate]
    ) -> None:
        self.templates: Mapping[str, TaskTemplate] = MappingProxyType(
            _unique({}, templates, "template")
        )
        self.tasks: Mapping[str, TaskSpec] = MappingProxyType(
            _unique({}, tasks, "task")
        )
        names: Dict[str, str] = {}
        for spec in self.tasks.values():
            validate_task(spec, self.templates)
            for name in (spec.name, *spec.aliases):
                if name in names:
                    raise TaskError(
                        f"task {spec.name!r}: name {name!r} is already task "
                        f"{names[name]!r}"
                    )
                names[name] = spec.name
        self._names = MappingProxyType(names)

    def __contains__(self, name: object) -> bool:
        return name in self._names

    def __iter__(self) -> Iterator[str]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    def get(self, name: str) -> TaskSpec:
        """The task ``name`` (or an alias); ``TaskError`` listing the tasks."""
        if name not in self._names:
            raise TaskError(f"unknown task {name!r}; tasks are {sorted(self._names)}")
        return self.tasks[self._names[name]]

    def template_of(self, name: str) -> TaskTemplate:
        """The template task ``name``'s examples are built with."""
        return self.templates[self.get(name).template]

    def scored(self) -> Tuple[str, ...]:
        """The tasks with a scoring kind."""
        return tuple(n for n, s in self.tasks.items() if s.scoring is not None)

    def extended(self, extra: Union[str, Mapping[str, Any]]) -> "TaskRegistry":
        """This registry plus the templates and tasks of ``extra``: a YAML file
        or its mapping (module docstring). Names may not redefine ours; the
        same definition again is no change (a packed model's own task file,
        also given as ``--task_templates``)."""
        if isinstance(extra, str):
            with open(extra, encoding="utf-8") as f:
                extra = yaml.safe_load(f) or {}
        if not isinstance(extra, Mapping) or set(extra) - {"templates", "tasks"}:
            raise TaskError(
                "a task file is a mapping with 'templates' and/or 'tasks', got "
                f"{sorted(extra) if isinstance(extra, Mapping) else type(extra)}"
            )
        templates = dict(self.templates)
        for name, conf in (extra.get("templates") or {}).items():
            template = task_template_from_dict(name, conf)
            if templates.get(name, template) != template:
                raise TemplateError(f"task template {name!r} is already defined")
            templates[name] = template
        tasks = dict(self.tasks)
        for name, conf in (extra.get("tasks") or {}).items():
            spec, template = task_from_dict(name, conf, templates)
            if tasks.get(name, spec) != spec:
                raise TaskError(f"task {name!r} is already defined")
            if template is not None:
                if templates.get(template.name, template) != template:
                    raise TemplateError(
                        f"task template {template.name!r} is already defined"
                    )
                templates[template.name] = template
            tasks[name] = spec
        return TaskRegistry(tasks.values(), templates.values())


_SPEC_KEYS: Tuple[str, ...] = tuple(
    f.name for f in dataclasses.fields(TaskSpec) if f.name != "name"
)


def task_from_dict(
    name: str, conf: Mapping[str, Any], templates: Mapping[str, TaskTemplate]
) -> Tuple[TaskSpec, Optional[TaskTemplate]]:
    """A task from its YAML form, and its inline template (else ``None``)."""
    where = f"task {name!r}"
    if not isinstance(conf, Mapping):
        raise TaskError(f"{where}: must be a mapping, got {type(conf).__name__}")
    unknown = sorted(set(conf) - set(_SPEC_KEYS) - set(TEMPLATE_KEYS))
    if unknown:
        raise TaskError(
            f"{where}: unknown keys {unknown}; known: {list(_SPEC_KEYS)} and the "
            f"template keys {list(TEMPLATE_KEYS)}"
        )
    inline = {k: v for k, v in conf.items() if k in TEMPLATE_KEYS}
    template = None
    if inline:
        if "template" in conf:
            raise TaskError(f"{where}: give a template name or its keys, not both")
        template = task_template_from_dict(name, inline)
    elif "template" not in conf:
        raise TaskError(f"{where}: needs 'template' (a name) or the template keys")
    missing = [k for k in ("files", "group") if k not in conf]
    if missing:
        raise TaskError(f"{where}: needs {missing}")
    layout = template or templates.get(conf.get("template"))
    kwargs = {k: conf[k] for k in _SPEC_KEYS if k in conf}
    kwargs["template"] = layout.name if layout is not None else conf["template"]
    if "reply" not in conf:
        kwargs["reply"] = _answer_kinds(layout)
    return TaskSpec(name=name, **kwargs), template


def _answer_kinds(template: Optional[TaskTemplate]) -> Optional[Tuple[str, ...]]:
    """The kinds of a templated task's answer; ``None`` for a conversation."""
    if template is None or template.conversation:
        return None
    answer = template.messages[len(template.prompt_messages()) :]
    return tuple(seg.kind for m in answer for seg in m.segments)


def _unique(out: Dict[str, Any], items: Iterable[Any], what: str) -> Dict[str, Any]:
    for item in items:
        if item.name in out:
            raise TaskError(f"{what} {item.name!r} is declared twice")
        out[item.name] = item
    return out


# ----- the built-in templates and tasks --------------------------------------


def _user(*segments: SegmentTemplate) -> MessageTemplate:
    return MessageTemplate("user", segments)


def _assistant(*segments: SegmentTemplate) -> MessageTemplate:
    return MessageTemplate("assistant", segments)


def _text(value: str) -> SegmentTemplate:
    return SegmentTemplate("text", value)


def _audio(field: str) -> SegmentTemplate:
    return SegmentTemplate("audio", "{" + field + "}")


def _audio_input(field: str) -> SegmentTemplate:
    return SegmentTemplate("audio_input", "{" + field + "}")


T2A_PROMPT = "Generate audio for this caption. {caption}"
# The self_reflection template's listening turn: the field of the first
# attempt as the assistant hears it (its waveform through the encoder).
REFLECTION_LISTEN = "attempt_input"
REFLECTION_TEMPLATE = "self_reflection"  # decoded by inference/reflect.py
# The clarifying dialogue (decoded by inference/dialogue.py): the user's first
# message; the assistant asks questions (each its own turn, closed by <eos>),
# the user answers, and the assistant's last turn is the rich caption (closed
# by <eot>) and the audio.
DIALOGUE_TEMPLATE = "clarifying_dialogue"
DIALOGUE_PROMPT = (
    "Ask what you need to know, then generate audio for this caption. {caption}"
)
CAPTION_PROMPT = "Generate caption for this audio."
ASR_PROMPT = "Transcribe this audio."
TTS_PROMPT = "Read this text aloud. {text}"

BUILTIN_TEMPLATES: Tuple[TaskTemplate, ...] = (
    TaskTemplate(
        "text_to_audio",
        (_user(_text(T2A_PROMPT)), _assistant(_audio("audio"))),
        cfg_dropout=True,
        description="generation: caption -> codec codes",
    ),
    TaskTemplate(
        "audio_caption",
        (
            _user(_audio_input("audio"), _text(CAPTION_PROMPT)),
            _assistant(_text("{caption}")),
        ),
        description="understanding: audio -> caption",
    ),
    TaskTemplate(
        "asr",
        (_user(_audio_input("audio"), _text(ASR_PROMPT)), _assistant(_text("{text}"))),
        description="understanding: speech -> transcript",
    ),
    # ``audio_dialogue`` lays a one-turn, system-less conversation out exactly
    # as this lays out its fields, so both give the same sequence.
    TaskTemplate(
        "audio_qa",
        (
            _user(_audio_input("audio"), _text("{question}")),
            _assistant(_text("{answer}")),
        ),
        description=(
            "understanding: audio + question -> answer, one turn from fields "
            "(requests naming template audio_qa); the audio_qa task's data is "
            "dialogue.jsonl, read through audio_dialogue"
        ),
    ),
    TaskTemplate(
        "rich_text_to_audio",
        (
            _user(_text(T2A_PROMPT)),
            _assistant(_text("{rich_caption}"), _audio("audio")),
        ),
        cfg_dropout=True,
        description="reasoning (enrichment): caption -> rich caption -> audio",
    ),
    # One round of self-reflection; ``inference/reflect.py`` decodes it
    # (and repeats the round after the listening turn, up to max_rounds).
    TaskTemplate(
        REFLECTION_TEMPLATE,
        (
            _user(_text(T2A_PROMPT)),
            _assistant(
                _text("{rich_caption}"),
                _audio("attempt"),
                _audio_input(REFLECTION_LISTEN),
                _text("{heard_caption}"),
                _text("{critique}"),
                _audio("audio"),
            ),
        ),
        cfg_dropout=True,
        description=(
            "reasoning (self-reflection): caption -> rich caption -> audio v1 -> "
            "listens to v1 (decoded, re-encoded) -> caption of v1 -> critique -> v2"
        ),
    ),
    TaskTemplate(
        "tts",
        (_user(_text(TTS_PROMPT)), _assistant(_audio("audio"))),
        cfg_dropout=True,
        description="generation: transcript -> speech codes",
    ),
    TaskTemplate(
        "text_dialogue",
        conversation=True,
        allowed_kinds=("text",),
        description="text only: dialogue.jsonl without audio",
    ),
    TaskTemplate(
        "audio_dialogue",
        conversation=True,
        description="multi-turn dialogue.jsonl (audio QA, instructions)",
    ),
    TaskTemplate(
        DIALOGUE_TEMPLATE,
        conversation=True,
        allowed_kinds=("text", "audio"),
        required_assistant_kinds=("text", "audio"),
        cfg_dropout=True,
        description=(
            "reasoning (dialogue): vague caption -> clarifying questions and the "
            "user's answers, turn by turn -> rich caption -> audio (dialogue.jsonl; "
            "the first user message is DIALOGUE_PROMPT)"
        ),
    ),
    TaskTemplate(
        "reasoning",
        conversation=True,
        required_assistant_kinds=("text", "audio"),
        description="assistant turns interleave text and audio (UALM-Reason)",
    ),
)

BUILTIN_TASKS: Tuple[TaskSpec, ...] = (
    TaskSpec(
        "text_to_audio",
        "text_to_audio",
        ("text", "codes"),
        "generation",
        ("audio",),
        "generation",
        fields={"caption": "text"},
        description="caption -> sound",
    ),
    TaskSpec(
        "text_to_audio_preference",
        "text_to_audio",
        ("text", "codes", REJECTED),
        "generation",
        ("audio",),
        fields={"caption": "text"},
        preference=True,
        description="caption -> a chosen and a rejected sound (DPO pairs)",
    ),
    TaskSpec(
        "rich_text_to_audio",
        "rich_text_to_audio",
        ("text", "rich_text", "codes"),
        "generation",
        ("text", "audio"),
        "generation",
        prompt_file="rich_text",
        fields={"caption": "text", "rich_caption": "rich_text"},
        description="caption -> rich caption -> sound",
    ),
    # The same layout as rich_text_to_audio, from a vague prompt (the mini
    # corpus's vague_text drops the attributes the rich caption restores).
    TaskSpec(
        "enrichment",
        "rich_text_to_audio",
        ("vague_text", "rich_text", "codes"),
        "generation",
        ("text", "audio"),
        "generation",
        prompt_file="rich_text",
        fields={"caption": "vague_text", "rich_caption": "rich_text"},
        aliases=("enrich",),
        description="vague caption -> rich caption -> sound",
    ),
    # The baseline of enrichment and dialogue (an evaluation task): the vague
    # prompt straight to audio, judged against the clip's hidden parameters.
    TaskSpec(
        "vague_text_to_audio",
        "text_to_audio",
        ("vague_text", "codes"),
        "generation",
        ("audio",),
        "generation",
        prompt_file="vague_text",
        fields={"caption": "vague_text"},
        description="vague caption -> sound (the reasoning flows' baseline)",
    ),
    TaskSpec(
        DIALOGUE_TEMPLATE,
        DIALOGUE_TEMPLATE,
        ("dialogue", "codes"),
        "generation",
        None,
        "generation",
        prompt_file="rich_text",
        aliases=("dialogue",),
        description=(
            "vague caption -> clarifying questions, the user's answers -> rich "
            "caption -> sound (UALM.dialogue)"
        ),
    ),
    # Decoded by UALM.reflect (the loop repeats the round); its training
    # examples are one round, from data dirs with the first attempt's codes
    # and waveform beside the final clip's (a later step: issue 18).
    TaskSpec(
        "self_reflection",
        "self_reflection",
        ("text", "rich_text", "codes", "wav", "heard_text", "critique"),
        "generation",
        None,
        "generation",
        fields={
            "caption": "text",
            "rich_caption": "rich_text",
            "heard_caption": "heard_text",
        },
        aliases=("reflect",),
        description=(
            "caption -> rich caption -> sound -> its caption and critique -> sound"
        ),
    ),
    TaskSpec(
        "tts",
        "tts",
        ("text", "codes"),
        "generation",
        ("audio",),
        "speech",
        description="transcript -> speech",
    ),
    TaskSpec(
        "audio_caption",
        "audio_caption",
        ("wav", "text"),
        "understanding",
        ("text",),
        "captioning",
        fields={"caption": "text"},
        description="sound -> caption",
    ),
    TaskSpec(
        "asr",
        "asr",
        ("wav", "text"),
        "understanding",
        ("text",),
        "asr",
        description="speech -> transcript",
    ),
    # QA data is dialogue.jsonl: a system prompt, several turns or clips,
    # which the one-turn audio_qa template cannot express.
    TaskSpec(
        "audio_qa",
        "audio_dialogue",
        ("wav", "dialogue"),
        "understanding",
        ("text",),
        "qa",
        description="questions about a clip (dialogue.jsonl)",
    ),
    TaskSpec(
        "text_dialogue",
        "text_dialogue",
        ("dialogue",),
        "text",
        ("text",),
        "text",
        description="text-only dialogue (dialogue.jsonl)",
    ),
    TaskSpec(
        "audio_dialogue",
        "audio_dialogue",
        ("wav", "dialogue"),
        "understanding",
        None,
        aliases=("chat",),
        description="mixed text and audio conversations; the model chooses",
    ),
    TaskSpec(
        "reasoning",
        "reasoning",
        ("wav", "codes", "dialogue"),
        "generation",
        None,
        description="assistant turns interleave text and audio (UALM-Reason)",
    ),
)

TASKS = TaskRegistry(BUILTIN_TASKS, BUILTIN_TEMPLATES)


def load_tasks(extra: Optional[Union[str, Mapping[str, Any]]] = None) -> TaskRegistry:
    """The built-in tasks plus those of ``extra`` (a YAML file or mapping)."""
    return TASKS if extra is None else TASKS.extended(extra)


def get_task_template(
    name: str, templates: Optional[Mapping[str, TaskTemplate]] = None
) -> TaskTemplate:
    """The template ``name`` (default: among the built-in ones)."""
    templates = TASKS.templates if templates is None else templates
    if name not in templates:
        raise TemplateError(
            f"unknown task template {name!r}; templates are {sorted(templates)}"
        )
    return templates[name]
