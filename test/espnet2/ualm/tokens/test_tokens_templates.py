"""Task templates: the built-ins render, and malformed ones fail clearly."""

import pytest
import torch
import yaml

from espnet2.ualm.tokens.conversation import (
    AudioInputSegment,
    AudioSegment,
    TextSegment,
    audio_references,
    conversation_from_dialogue,
)
from espnet2.ualm.tokens.tasks import TASKS, get_task_template, load_tasks
from espnet2.ualm.tokens.templates import (
    MessageTemplate,
    SegmentTemplate,
    TaskTemplate,
    TemplateError,
)

DIALOGUE = [
    {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
    {
        "role": "user",
        "content": [
            {"type": "audio", "audio": "clip1"},
            {"type": "text", "text": "How many beeps?"},
        ],
    },
    {"role": "assistant", "content": [{"type": "text", "text": "Three."}]},
]


def test_builtin_tasks_are_declared_once():
    for name in (
        "text_to_audio",
        "audio_caption",
        "asr",
        "audio_qa",
        "rich_text_to_audio",
        "tts",
        "text_dialogue",
        "audio_dialogue",
        "reasoning",
    ):
        assert get_task_template(name).name == name
    assert TASKS.templates["text_to_audio"].fields() == ("caption", "audio")
    assert TASKS.templates["text_to_audio"].cfg_dropout
    assert not TASKS.templates["audio_caption"].cfg_dropout
    assert TASKS.templates["tts"].fields() == ("text", "audio")
    assert TASKS.templates["tts"].cfg_dropout
    with pytest.raises(TemplateError, match="unknown task template 'text_to_smell'"):
        get_task_template("text_to_smell")


def test_text_to_audio_renders_prompt_and_codes():
    codes = torch.zeros(4, 3, dtype=torch.long)
    user, assistant = TASKS.templates["text_to_audio"].render(
        {"caption": "a dog barks", "audio": codes}
    )
    assert user.segments == (
        TextSegment("Generate audio for this caption. a dog barks"),
    )
    assert assistant.role == "assistant" and torch.equal(
        assistant.segments[0].codes, codes
    )
    prompt = TASKS.templates["text_to_audio"].render({"caption": "x"}, prompt_only=True)
    assert [m.role for m in prompt] == ["user"]


def test_audio_fields_resolve_ids_through_the_example_tables():
    example = {
        "caption": "beeps",
        "audio": "clip1",
        "audio_input_frames": {"clip1": 7},
    }
    user, assistant = TASKS.templates["audio_caption"].render(example)
    assert user.segments[0] == AudioInputSegment("clip1", 7)
    assert user.segments[1] == TextSegment("Generate caption for this audio.")
    assert assistant.segments == (TextSegment("beeps"),)


def test_missing_field_names_task_and_field():
    with pytest.raises(TemplateError, match="'asr': example lacks field 'text'"):
        TASKS.templates["asr"].render({"audio": AudioInputSegment("u", 3)})
    with pytest.raises(TemplateError, match="must hold codec codes"):
        TASKS.templates["text_to_audio"].render({"caption": "c", "audio": 3})


def test_dialogue_audio_is_input_for_users_and_codes_for_the_assistant():
    codes = torch.zeros(2, 3, dtype=torch.long)
    messages = DIALOGUE + [
        {"role": "user", "content": [{"type": "text", "text": "Make one."}]},
        {"role": "assistant", "content": [{"type": "audio", "audio": "gen"}]},
    ]
    assert audio_references(messages) == ({"gen"}, {"clip1"})
    conv = conversation_from_dialogue(messages, {"gen": codes}, {"clip1": 5})
    assert conv[1].segments[0] == AudioInputSegment("clip1", 5)
    assert isinstance(conv[4].segments[0], AudioSegment)
    with pytest.raises(KeyError, match="no encoder frame count for audio 'clip1'"):
        conversation_from_dialogue(DIALOGUE)


def test_conversation_tasks_check_their_segments():
    example = {"messages": DIALOGUE, "audio_input_frames": {"clip1": 5}}
    assert len(TASKS.templates["audio_dialogue"].render(example)) == 3
    with pytest.raises(
        TemplateError, match="segment 0 is audio_input; this task allows"
    ):
        TASKS.templates["text_dialogue"].render(example)
    with pytest.raises(TemplateError, match="must write \\['audio'\\] segments"):
        TASKS.templates["reasoning"].render(example)
    no_answer = {"messages": DIALOGUE[:2], "audio_input_frames": {"clip1": 5}}
    with pytest.raises(TemplateError, match="no assistant message"):
        TASKS.templates["audio_dialogue"].render(no_answer)


def test_templates_from_yaml(tmp_path):
    path = tmp_path / "tasks.yaml"
    path.write_text(
        "templates:\n"
        "  describe:\n"
        "    messages:\n"
        "      - role: user\n"
        "        content:\n"
        "          - audio_input: '{audio}'\n"
        "          - text: 'Describe the sound in {n_words} words.'\n"
        "      - role: assistant\n"
        "        content:\n"
        "          - text: '{caption}'\n"
    )
    templates = load_tasks(str(path)).templates
    assert "text_to_audio" in templates
    assert templates["describe"].fields() == ("audio", "n_words", "caption")


@pytest.mark.parametrize(
    "yaml_text, message",
    [
        ("t:\n  messages: []\n", "no messages"),
        ("t:\n  prompt: x\n", "unknown keys \\['prompt'\\]"),
        (
            "t:\n  messages:\n    - {role: bot, content: [{text: hi}]}\n",
            "message 0: unknown role 'bot'",
        ),
        (
            "t:\n  messages:\n    - {role: assistant, content: [{image: '{x}'}]}\n",
            "message 0 \\(assistant\\), segment 0: unknown kind 'image'",
        ),
        (
            "t:\n  messages:\n    - {role: assistant, content: [{text: 'a {b'}]}\n",
            "bad format string",
        ),
        (
            "t:\n  messages:\n    - {role: assistant, content: [{audio: 'x {a}'}]}\n",
            "exactly one field",
        ),
        (
            "t:\n  messages:\n    - {role: assistant, content: [{text: '{a.b}'}]}\n",
            "plain name",
        ),
        (
            "t:\n  messages:\n    - {role: user, content: [{text: hi}]}\n",
            "last message",
        ),
        (
            "t:\n  cfg_dropout: true\n"
            "  messages:\n    - {role: assistant, content: [{text: hi}]}\n",
            "cfg_dropout needs an assistant audio segment",
        ),
        (
            "text_to_audio:\n  messages:\n"
            "    - {role: assistant, content: [{text: x}]}\n",
            "already defined",
        ),
        (
            "t:\n  messages:\n"
            "    - {role: assistant, content: [{text: a, audio: b}]}\n",
            "one 'kind: value' pair",
        ),
    ],
)
def test_malformed_templates_fail_with_a_clear_message(yaml_text, message):
    with pytest.raises(TemplateError, match=message):
        load_tasks({"templates": yaml.safe_load(yaml_text)})


def test_template_objects_are_validated_on_construction():
    with pytest.raises(TemplateError, match="identifier"):
        TaskTemplate(
            "bad name", (MessageTemplate("assistant", (SegmentTemplate("text", "x"),)),)
        )
    with pytest.raises(TemplateError, match="takes no fixed messages"):
        TaskTemplate(
            "t",
            (MessageTemplate("assistant", (SegmentTemplate("text", "x"),)),),
            conversation=True,
        )


def test_dialogue_prompt_needs_no_answer():
    example = {"messages": DIALOGUE[:2], "audio_input_frames": {"clip1": 5}}
    prompt = TASKS.templates["audio_dialogue"].render(example, prompt_only=True)
    assert [m.role for m in prompt] == ["system", "user"]
    full = {"messages": DIALOGUE, "audio_input_frames": {"clip1": 5}}
    prompt = TASKS.templates["audio_dialogue"].render(full, prompt_only=True)
    assert [m.role for m in prompt] == ["system", "user"]


def test_template_dialogue_names_audio_by_id():
    from espnet2.ualm.tokens.templates import template_dialogue

    t2a = get_task_template("text_to_audio")
    assert template_dialogue(t2a, {"caption": "a cat", "audio": "clip1"}) == [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Generate audio for this caption. a cat"}
            ],
        },
        {"role": "assistant", "content": [{"type": "audio", "audio": "clip1"}]},
    ]
    with pytest.raises(TemplateError, match="must be an audio id"):
        template_dialogue(t2a, {"caption": "a cat", "audio": torch.zeros(2, 3)})
    with pytest.raises(TemplateError, match="is a conversation already"):
        template_dialogue(get_task_template("reasoning"), {})
