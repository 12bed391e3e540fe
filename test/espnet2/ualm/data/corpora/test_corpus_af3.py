import json
import os

import pytest

from espnet2.ualm.data.corpora import CorpusError, prepare_corpus


def _turns(question, answer):
    return [{"from": "human", "value": question}, {"from": "gpt", "value": answer}]


ITEMS = [
    {
        "id": "q1",
        "sound": "clips/a.wav",
        "conversations": _turns("<sound>\nHow many beeps?", "Three."),
    },
    {
        "id": "q2",
        "sound": "clips/a.wav",
        "conversations": _turns("What is it?\n<sound>", "A bell."),
    },
    {
        "id": "q3",
        "sound": ["clips/a.wav", "clips/b.flac"],
        "conversations": _turns(
            "Compare <sound> with <sound>.", "The second is louder."
        ),
    },
    {
        "id": "q4",
        "sound": "clips/b.flac",
        "conversations": _turns("Describe it.", "Rain."),
    },
    {"id": "q5", "sound": "clips/gone.wav", "conversations": _turns("<sound>Q", "A")},
    {
        "id": "q6",
        "sound": "clips/a.wav",
        "conversations": _turns("<sound><sound>Q", "A"),
    },
    {
        "id": "q7",
        "sound": "clips/a.wav",
        "conversations": [{"from": "bot", "value": "x"}],
    },
    {"id": "q1", "sound": "clips/b.flac", "conversations": _turns("<sound>Q", "A")},
    {
        "id": "q8",
        "sound": "clips/a.wav",
        "conversations": [{"from": "human", "value": "<sound>Q"}],
    },
    {"sound": "clips/b.flac", "conversations": _turns("<sound>\nWhat?", "Rain.")},
]


@pytest.fixture
def corpus(tmp_path, write_audio):
    write_audio(str(tmp_path / "clips" / "a.wav"))
    write_audio(str(tmp_path / "clips" / "b.flac"))
    path = tmp_path / "audioskills.json"
    # One item per line, so that item n starts on line n + 2.
    lines = ",\n".join(json.dumps(item) for item in ITEMS)
    path.write_text("[\n" + lines + "\n]\n")
    return str(path)


def _dialogues(out):
    with open(os.path.join(out, "dialogue.jsonl"), encoding="utf-8") as f:
        return {d["id"]: d["messages"] for d in map(json.loads, f)}


def test_conversations(corpus, tmp_path, table, rejected):
    out = str(tmp_path / "data")
    kept, _ = prepare_corpus("af3", out, json=corpus)

    dialogues = _dialogues(out)
    assert kept == 5
    assert sorted(dialogues) == ["af3_00000009", "af3_q1", "af3_q2", "af3_q3", "af3_q4"]
    wav = table(out, "wav.scp")
    clips = os.path.join(os.path.dirname(corpus), "clips")
    assert wav == {
        "af3_clips_a": os.path.join(clips, "a.wav"),
        "af3_clips_b": os.path.join(clips, "b.flac"),
    }
    assert dialogues["af3_q1"] == [
        {
            "role": "user",
            "content": [
                {"type": "audio", "audio": "af3_clips_a"},
                {"type": "text", "text": "How many beeps?"},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "Three."}]},
    ]
    assert [
        p.get("audio", p.get("text")) for p in dialogues["af3_q2"][0]["content"]
    ] == [
        "What is it?",
        "af3_clips_a",
    ]
    assert [
        p.get("audio", p.get("text")) for p in dialogues["af3_q3"][0]["content"]
    ] == [
        "Compare",
        "af3_clips_a",
        "with",
        "af3_clips_b",
        ".",
    ]
    # No tag: the audio goes in front of the first user message.
    assert dialogues["af3_q4"][0]["content"][0] == {
        "type": "audio",
        "audio": "af3_clips_b",
    }

    bad = rejected(out)
    assert bad["af3_q5"][0][0] == f"{corpus}:6"
    assert bad["af3_q5"][0][1].startswith("missing audio file")
    assert bad["af3_q6"] == [(f"{corpus}:7", "2 <sound> tag(s) but 1 audio file(s)")]
    assert bad["af3_q7"] == [(f"{corpus}:8", "turn 0: unknown role 'bot'")]
    assert bad["af3_q1"] == [(f"{corpus}:9", "duplicate id (first occurrence kept)")]
    assert bad["af3_q8"][0][1].startswith("no assistant message")
    assert len(bad) == 5


def test_jsonl_with_broken_lines(tmp_path, write_audio, rejected):
    write_audio(str(tmp_path / "audio" / "x.wav"))
    path = tmp_path / "qa.jsonl"
    good = {"id": "ok", "sound": "x.wav", "conversations": _turns("<sound>Q", "A")}
    path.write_bytes(
        (json.dumps(good) + "\n").encode()
        + b'{"id": "broken", "sound": \n'
        + b"[1, 2]\n"
        + b'{"id": "latin", "conversations": "caf\xe9"}\n'
    )
    out = str(tmp_path / "data")
    kept, _ = prepare_corpus(
        "af3", out, json=str(path), audio_dir=str(tmp_path / "audio"), id_prefix="qa"
    )
    assert kept == 1
    bad = rejected(out)
    assert bad["qa_broken"][0][0] == f"{path}:2"
    assert bad["qa_broken"][0][1].startswith("malformed JSON line")
    assert bad["?"] == [(f"{path}:3", "not a JSON object: list")]
    assert bad["qa_latin"][0][0] == f"{path}:4"
    assert bad["qa_latin"][0][1].startswith("non-UTF-8")


def test_broken_json_list_is_fatal(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text('[\n{"id": "a"},\n{"id": \n]\n')
    with pytest.raises(CorpusError, match=r"bad.json:4: malformed JSON list"):
        prepare_corpus("af3", str(tmp_path / "data"), json=str(path))
