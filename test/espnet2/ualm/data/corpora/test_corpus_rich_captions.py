"""The rich-caption and self-reflection converters: good items in the data
dir, each bad one in rejected.tsv with its file:line and reason; the
reflection dialogues are the self_reflection template's layout."""

import json

import torch

from espnet2.ualm.data.corpora import prepare_corpus
from espnet2.ualm.data.io import read_jsonl
from espnet2.ualm.tokens.conversation import conversation_from_dialogue
from espnet2.ualm.tokens.tasks import REFLECTION_LISTEN, TASKS

PLAN = (
    "Keywords: dog bark, siren. Layout: two dog barks, then one siren. "
    "Description: the dog barks are loud; the siren is high-pitched and on the right."
)
HEARD = PLAN.replace("two dog barks", "three dog barks")


def _write(tmp_path, write_audio):
    for name in ("a", "b", "c", "a_v1", "a_v2", "b_v1"):
        write_audio(str(tmp_path / "clips" / f"{name}.wav"))
    good = {"id": "a", "audio": "clips/a.wav", "caption": "dogs, then a siren"}
    items = [
        {
            **good,
            "rich_caption": PLAN,
            "attempts": [
                {"audio": "clips/a_v1.wav", "rich_caption": HEARD},
                {
                    "audio": "clips/a_v2.wav",
                    "rich_caption": PLAN,
                    "critique": "Critique: no mismatch.",
                },
                {"audio": "clips/gone.wav", "rich_caption": PLAN},
            ],
        },
        {
            "id": "b",
            "audio": "clips/b.wav",
            "caption": "a siren",
            "rich_caption": PLAN,
            "attempts": [
                {"audio": "clips/b_v1.wav", "rich_caption": PLAN, "critique": "bad"}
            ],
        },
        {**good, "id": "c", "audio": "clips/c.wav", "rich_caption": PLAN},
        {**good, "id": "d", "rich_caption": PLAN.replace("two dog", "two cat")},
        {**good, "id": "e", "audio": "clips/nope.wav", "rich_caption": PLAN},
        {**good, "id": "f", "caption": " ", "rich_caption": PLAN},
        {**good, "rich_caption": PLAN},  # duplicate of a
    ]
    lines = [json.dumps(x) for x in items]
    lines.insert(3, '{"id": "g", "audio": ')  # line 4
    path = tmp_path / "rich.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_rich_captions(tmp_path, write_audio, table, rejected):
    path = _write(tmp_path, write_audio)
    out = str(tmp_path / "data")
    kept, _ = prepare_corpus("rich_captions", out, json=path)
    assert kept == 3
    assert sorted(table(out, "wav.scp")) == [
        "rich_captions_a",
        "rich_captions_b",
        "rich_captions_c",
    ]
    assert table(out, "rich_text")["rich_captions_a"] == PLAN
    assert table(out, "text")["rich_captions_c"] == "dogs, then a siren"
    bad = rejected(out)
    where = {source: reason for items in bad.values() for source, reason in items}
    assert where[f"{path}:4"].startswith("malformed JSON line")
    assert where[f"{path}:5"].startswith(
        "the clip's: rich caption: Layout, event 1: 'cat barks' is not a Keyword"
    )
    assert where[f"{path}:6"].startswith("missing the clip's audio file")
    assert where[f"{path}:7"] == "no caption ('caption')"
    assert bad["rich_captions_a"] == [
        (f"{path}:8", "duplicate id (first occurrence kept)")
    ]
    assert len(where) == 5


def test_reflection_dialogues_are_the_templates_layout(
    tmp_path, write_audio, table, rejected
):
    path = _write(tmp_path, write_audio)
    out = str(tmp_path / "reflect")
    kept, _ = prepare_corpus("reflection", out, json=path)
    assert kept == 2  # a's first two attempts
    wavs = table(out, "wav.scp")
    assert sorted(wavs) == [
        "rich_captions_a",
        "rich_captions_a_v1",
        "rich_captions_a_v2",
    ]
    dialogues = {d["id"]: d["messages"] for d in read_jsonl(f"{out}/dialogue.jsonl")}
    first = dialogues["rich_captions_a_r1"]
    assert first[0]["content"][0]["text"].endswith("dogs, then a siren")
    parts = first[1]["content"]
    assert [p["type"] for p in parts] == [
        "text",
        "audio",
        "audio_input",
        "text",
        "text",
        "audio",
    ]
    assert parts[1]["audio"] == parts[2]["audio"] == "rich_captions_a_v1"
    assert parts[3]["text"] == HEARD
    assert parts[4]["text"] == "Critique: count (dog bark): planned two, heard three."
    assert dialogues["rich_captions_a_r2"][1]["content"][4]["text"] == (
        "Critique: no mismatch."
    )
    bad = rejected(out)
    assert bad["rich_captions_a_r3"][0][1].startswith("missing attempt 3's audio")
    assert bad["rich_captions_b_r1"][0][1].startswith("attempt 1: critique: expected")
    assert "not a self-reflection item" in bad["rich_captions_c"][0][1]
    # the conversation training reads is what the template lays out
    template = TASKS.templates["self_reflection"]
    codes = {k: torch.full((3, 2), i) for i, k in enumerate(sorted(wavs))}
    frames = {"rich_captions_a_v1": 5}
    from_dialogue = conversation_from_dialogue(first, codes, frames)
    from_template = template.render(
        {
            "caption": "dogs, then a siren",
            "rich_caption": PLAN,
            "attempt": codes["rich_captions_a_v1"],
            REFLECTION_LISTEN: "rich_captions_a_v1",
            "audio_input_frames": frames,
            "heard_caption": HEARD,
            "critique": parts[4]["text"],
            "audio": codes["rich_captions_a"],
        }
    )
    assert len(from_dialogue) == len(from_template)
    for a, b in zip(from_dialogue, from_template):
        assert a.role == b.role and len(a.segments) == len(b.segments)
        for x, y in zip(a.segments, b.segments):
            assert type(x) is type(y)
            if hasattr(x, "codes"):
                assert torch.equal(x.codes, y.codes)
            else:
                assert x == y
