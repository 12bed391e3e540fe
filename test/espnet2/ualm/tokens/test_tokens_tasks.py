"""The task registry: built-in tasks are consistent, declarations are checked."""

import pytest

from espnet2.ualm.tokens.tasks import (
    SCORING_KINDS,
    TASKS,
    TaskError,
    TaskRegistry,
    TaskSpec,
    load_tasks,
)
from espnet2.ualm.tokens.templates import TemplateError

DESCRIBE = {
    "messages": [
        {"role": "user", "content": [{"audio_input": "{audio}"}, {"text": "Say."}]},
        {"role": "assistant", "content": [{"text": "{caption}"}]},
    ],
    "files": ["wav", "text"],
    "fields": {"caption": "text"},
    "group": "understanding",
    "scoring": "captioning",
}


def test_builtin_tasks():
    assert TASKS.get("chat") is TASKS.get("audio_dialogue")
    assert TASKS.template_of("audio_qa").name == "audio_dialogue"
    assert TASKS.get("tts").key_metrics == SCORING_KINDS["speech"]
    assert TASKS.get("audio_caption").key_metrics == SCORING_KINDS["captioning"]
    assert TASKS.get("rich_text_to_audio").prompt_file == "rich_text"
    assert TASKS.get("text_to_audio").reply == ("audio",)
    assert TASKS.get("reasoning").reply is None
    assert TASKS.get("rich_text_to_audio").file_of("rich_caption") == "rich_text"
    # DPO pairs are training data: not scored
    unscored = {"audio_dialogue", "reasoning", "text_to_audio_preference"}
    assert set(TASKS.scored()) == set(TASKS) - unscored
    pairs = TASKS.get("text_to_audio_preference")
    assert pairs.preference and pairs.template == "text_to_audio"
    assert not TASKS.get("text_to_audio").preference
    with pytest.raises(TaskError, match="unknown task 'karaoke'"):
        TASKS.get("karaoke")


def test_a_preference_task_reads_its_rejected_replies():
    conf = {
        "template": "text_to_audio",
        "files": ["text", "codes"],
        "fields": {"caption": "text"},
        "group": "generation",
        "preference": True,
    }
    with pytest.raises(TaskError, match="rejected_codes"):
        load_tasks({"tasks": {"pairs": conf}})
    tasks = load_tasks(
        {"tasks": {"pairs": {**conf, "files": ["text", "codes", "rejected_codes"]}}}
    )
    assert tasks.get("pairs").preference
    with pytest.raises(TaskError, match="do not match"):  # not a preference task
        load_tasks(
            {
                "tasks": {
                    "p2": {
                        **conf,
                        "preference": False,
                        "files": ["text", "codes", "rejected_codes"],
                    }
                }
            }
        )


def test_a_task_from_yaml_with_its_template_inline():
    tasks = load_tasks({"tasks": {"describe": {**DESCRIBE, "aliases": ["say"]}}})
    spec = tasks.get("say")
    assert spec.name == "describe" and spec.template == "describe"
    assert spec.reply == ("text",)  # from the template's answer
    assert spec.key_metrics == SCORING_KINDS["captioning"]
    assert tasks.template_of("describe").fields() == ("audio", "caption")
    assert "describe" not in TASKS  # the built-in registry is unchanged
    reuse = {
        "template": "audio_caption",
        **{k: DESCRIBE[k] for k in ("files", "fields", "group")},
    }
    assert load_tasks({"tasks": {"cap2": reuse}}).template_of("cap2").name == (
        "audio_caption"
    )


def _spec(**changes):
    conf = dict(
        name="t",
        template="audio_caption",
        files=("wav", "text"),
        group="understanding",
        reply=("text",),
        scoring="captioning",
        fields={"caption": "text"},
    )
    return TaskSpec(**{**conf, **changes})


@pytest.mark.parametrize(
    "changes, message",
    [
        (dict(template="nope"), "task 't': unknown template 'nope'"),
        (dict(scoring="vibes"), "task 't': unknown scoring kind 'vibes'"),
        (dict(files=("wav",)), "task 't': files \\['wav'\\] do not match"),
        (dict(files=("wav", "text", "codes")), "do not match"),
        (dict(fields={}), "reads: \\['caption', 'wav'\\]"),
        (dict(reply=("audio",)), "differs from template 'audio_caption'"),
        (dict(reply=("image",)), "must be a non-empty list"),
        (dict(group=""), "needs a blend group"),
        (dict(name="a b"), "must be an identifier"),
        (
            dict(template="audio_dialogue", files=("text",), fields={}),
            "a conversation task",
        ),
        (dict(scoring=None, key_metrics=("x",)), "key metrics without"),
    ],
)
def test_bad_declarations_name_the_task(changes, message):
    with pytest.raises(TaskError, match=message):
        TaskRegistry([_spec(**changes)], TASKS.templates.values())


def test_duplicates_are_errors():
    templates = TASKS.templates.values()
    with pytest.raises(TaskError, match="task 't' is declared twice"):
        TaskRegistry([_spec(), _spec()], templates)
    with pytest.raises(TaskError, match="name 't' is already task 't'"):
        TaskRegistry([_spec(), _spec(name="u", aliases=("t",))], templates)
    with pytest.raises(TaskError, match="'asr' is already defined"):
        load_tasks({"tasks": {"asr": DESCRIBE}})
    with pytest.raises(TemplateError, match="'tts' is already defined"):
        load_tasks({"templates": {"tts": {"messages": DESCRIBE["messages"]}}})


def test_the_same_task_file_twice_is_no_change():
    """A packed model's own task file, also given as --task_templates."""
    once = load_tasks({"tasks": {"describe_audio": DESCRIBE}})
    twice = once.extended({"tasks": {"describe_audio": DESCRIBE}})
    assert twice.get("describe_audio") == once.get("describe_audio")
    assert sorted(twice.templates) == sorted(once.templates)
    changed = {**DESCRIBE, "group": "generation"}
    with pytest.raises(TaskError, match="'describe_audio' is already defined"):
        once.extended({"tasks": {"describe_audio": changed}})


@pytest.mark.parametrize(
    "conf, message",
    [
        ({"group": "g", "files": ["wav"]}, "needs 'template'"),
        ({**DESCRIBE, "template": "asr"}, "not both"),
        ({**DESCRIBE, "prompt": "x"}, "unknown keys \\['prompt'\\]"),
        ({k: v for k, v in DESCRIBE.items() if k != "group"}, "needs \\['group'\\]"),
        ({**DESCRIBE, "fields": {}}, "task 'x': files"),
    ],
)
def test_bad_yaml_tasks_fail_with_a_clear_message(conf, message):
    with pytest.raises(TemplateError, match=message):
        load_tasks({"tasks": {"x": conf}})


def test_a_task_file_has_only_templates_and_tasks():
    with pytest.raises(TaskError, match="'templates' and/or 'tasks'"):
        load_tasks({"describe": DESCRIBE})


def test_enrichment_and_dialogue_tasks():
    """Enrichment is rich_text_to_audio's layout from the vague prompt; the
    clarifying dialogue is a conversation; both are judged against the rich
    caption (the hidden full parameters)."""
    enrich = TASKS.get("enrich")
    assert enrich.name == "enrichment" and enrich.template == "rich_text_to_audio"
    assert enrich.file_of("caption") == "vague_text"
    assert enrich.reply == ("text", "audio")
    dialogue = TASKS.get("dialogue")
    assert dialogue.name == "clarifying_dialogue" and dialogue.reply is None
    assert TASKS.template_of("dialogue").conversation
    assert TASKS.template_of("dialogue").cfg_dropout
    assert {enrich.prompt_file, dialogue.prompt_file} == {"rich_text"}
