"""UALM's token layer: vocabulary layout, delay pattern, the task registry and
its templates, and the sequence builder that writes conversations into the
multi-stream layout.
"""

from espnet2.ualm.tokens.conversation import (
    AudioInputSegment,
    AudioSegment,
    Message,
    TextSegment,
    audio_references,
    conversation_from_dialogue,
)
from espnet2.ualm.tokens.delay import delay_deinterleave, delay_interleave
from espnet2.ualm.tokens.sequence import (
    AudioInputSpan,
    BuiltSequence,
    SequenceBuilder,
    TurnSpan,
)
from espnet2.ualm.tokens.tasks import (
    TASKS,
    TaskRegistry,
    TaskSpec,
    get_task_template,
    load_tasks,
)
from espnet2.ualm.tokens.templates import TaskTemplate, TemplateError
from espnet2.ualm.tokens.vocabulary import (
    SPECIAL_TOKENS,
    TokenInfo,
    UALMVocabulary,
    as_vocabulary,
)

__all__ = [
    "SPECIAL_TOKENS",
    "TASKS",
    "AudioInputSegment",
    "AudioInputSpan",
    "AudioSegment",
    "BuiltSequence",
    "Message",
    "SequenceBuilder",
    "TaskRegistry",
    "TaskSpec",
    "TaskTemplate",
    "TemplateError",
    "TextSegment",
    "TokenInfo",
    "TurnSpan",
    "UALMVocabulary",
    "as_vocabulary",
    "audio_references",
    "conversation_from_dialogue",
    "delay_deinterleave",
    "delay_interleave",
    "get_task_template",
    "load_tasks",
]
