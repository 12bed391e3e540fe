import json
import os

from espnet2.ualm.data.corpora import prepare_corpus

ITEMS = [
    {"id": "a1", "instruction": "Add the numbers.", "input": "2 and 3", "output": "5"},
    {"instruction": "Say hi.", "input": "", "output": "Hi!", "system": "Be brief."},
    {
        "id": "c1",
        "messages": [
            {"role": "user", "content": "What is 2+2?"},
            {"role": "assistant", "content": [{"type": "text", "text": "4"}]},
        ],
    },
    {
        "id": "s1",
        "conversations": [
            {"from": "human", "value": "Hello"},
            {"from": "gpt", "value": "Hello to you."},
        ],
    },
    {"id": "bad1", "prompt": "?", "completion": "!"},
    {
        "id": "bad2",
        "messages": [
            {"role": "user", "content": "x"},
            {"role": "tool", "content": "y"},
        ],
    },
    {"id": "bad3", "messages": [{"role": "user", "content": "no answer"}]},
    {
        "id": "bad4",
        "messages": [
            {"role": "user", "content": [{"type": "image", "image": "x.png"}]},
            {"role": "assistant", "content": "?"},
        ],
    },
    {"id": "a1", "instruction": "Again", "output": "dup"},
    {"id": "bad5", "instruction": "Empty answer", "output": ""},
]


def test_dialogues(tmp_path, rejected):
    path = tmp_path / "mix.jsonl"
    lines = [json.dumps(item) for item in ITEMS] + ['{"id": "bad6", "messages": [']
    path.write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "data")
    kept, _ = prepare_corpus("text_instruct", out, json=str(path), id_prefix="mix")

    assert kept == 4
    assert not os.path.exists(os.path.join(out, "wav.scp"))
    with open(os.path.join(out, "dialogue.jsonl"), encoding="utf-8") as f:
        dialogues = {d["id"]: d["messages"] for d in map(json.loads, f)}
    assert sorted(dialogues) == ["mix_00000001", "mix_a1", "mix_c1", "mix_s1"]
    assert dialogues["mix_a1"] == [
        {
            "role": "user",
            "content": [{"type": "text", "text": "Add the numbers.\n\n2 and 3"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "5"}]},
    ]
    assert [m["role"] for m in dialogues["mix_00000001"]] == [
        "system",
        "user",
        "assistant",
    ]
    assert dialogues["mix_c1"][1]["content"] == [{"type": "text", "text": "4"}]
    assert dialogues["mix_s1"][0]["role"] == "user"

    bad = rejected(out)
    assert bad["mix_bad1"][0] == (f"{path}:5", bad["mix_bad1"][0][1])
    assert bad["mix_bad1"][0][1].startswith("unknown item shape")
    assert bad["mix_bad2"][0][1] == "turn 1: unsupported role 'tool'"
    assert bad["mix_bad3"][0][1].startswith("no assistant message")
    assert (
        bad["mix_bad4"][0][1]
        == "turn 0: non-text content (image) in a text-only corpus"
    )
    assert bad["mix_a1"] == [(f"{path}:9", "duplicate id (first occurrence kept)")]
    assert bad["mix_bad5"][0][1] == "message 1 (assistant) is empty"
    assert bad["mix_bad6"][0][0] == f"{path}:11"
    assert len(bad) == 7


def test_alpaca_json_list(tmp_path):
    path = tmp_path / "alpaca_data.json"
    items = [{"instruction": f"Q{i}", "input": "", "output": f"A{i}"} for i in range(3)]
    path.write_text(json.dumps(items, indent=2))
    out = str(tmp_path / "data")
    kept, rejects = prepare_corpus("text_instruct", out, json=str(path))
    assert kept == 3 and len(rejects) == 0
    with open(os.path.join(out, "dialogue.jsonl"), encoding="utf-8") as f:
        assert [json.loads(line)["id"] for line in f] == [
            "text_00000000",
            "text_00000001",
            "text_00000002",
        ]
