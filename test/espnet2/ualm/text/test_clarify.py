"""Clarifying dialogues' messages, the clarify.jsonl reader's errors and the
simulated user."""

import json

import pytest

from espnet2.ualm.text.clarify import (
    FALLBACK_ANSWER,
    Clarification,
    ClarifyError,
    ClipClarifications,
    SimulatedUser,
    dialogue_messages,
    read_clarifications,
)
from espnet2.ualm.tokens.conversation import (
    AudioSegment,
    TextSegment,
    conversation_from_dialogue,
)
from espnet2.ualm.tokens.tasks import DIALOGUE_PROMPT, DIALOGUE_TEMPLATE, TASKS

CLIP = ClipClarifications(
    "c1",
    "Some beeps.",
    (
        Clarification("count", "How many beeps do you want?", "Three."),
        Clarification(
            "pitch", "Should the beeps be low, medium or high pitched?", "High."
        ),
    ),  # fmt: skip
    1,
)


def test_dialogue_messages_are_the_templates_conversation():
    rich = "Keywords: beep. Layout: three beeps. Description: the beeps are loud."
    messages = dialogue_messages(CLIP.prompt, CLIP.turns(), rich, "c1")
    assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
    assert messages[0]["content"][0]["text"] == DIALOGUE_PROMPT.format(
        caption="Some beeps."
    )
    template = TASKS.templates[DIALOGUE_TEMPLATE]
    rendered = template.render({"messages": messages, "audio_codes": {"c1": [[0, 1]]}})
    direct = conversation_from_dialogue(messages, {"c1": [[0, 1]]})
    assert [m.role for m in rendered] == [m.role for m in direct]
    assert [m.role for m in rendered] == [m["role"] for m in messages]
    last = rendered[-1].segments
    assert isinstance(last[0], TextSegment) and isinstance(last[1], AudioSegment)
    assert len(template.render({"messages": messages[:3]}, prompt_only=True)) == 3


def _write(path, rows):
    path.write_text("".join(r + "\n" for r in rows))
    return str(path)


def test_reader_round_trip_and_errors(tmp_path):
    good = json.dumps(CLIP.to_json())
    assert read_clarifications(_write(tmp_path / "a.jsonl", [good, ""])) == {"c1": CLIP}
    bad = {**CLIP.to_json(), "asked": 5}
    for rows, message in (
        ([good, "{"], r"b.jsonl:2: JSONDecodeError"),
        ([json.dumps({"id": "x"})], r"b.jsonl:1: KeyError: 'prompt'"),
        ([json.dumps(bad)], r"b.jsonl:1: asked 5 of 2 questions"),
        ([good, good], r"b.jsonl:2: id 'c1' repeats"),
    ):
        with pytest.raises(ClarifyError, match=message):
            read_clarifications(_write(tmp_path / "b.jsonl", rows))


def test_the_simulated_user_answers_from_the_clips_questions():
    user = SimulatedUser({"c1": CLIP})
    assert user.answer("c1", "  how many BEEPS do you want? ") == "Three."
    assert user.answer("c1", "What colour?") == FALLBACK_ANSWER
    with pytest.raises(KeyError, match="no clarifications for item 'c2'"):
        user.answer("c2", "How many beeps do you want?")
