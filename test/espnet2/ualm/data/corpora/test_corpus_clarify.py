"""The clarifying-dialogue converter: one conversation per clip of a data
dir's clarify.jsonl, laid out as UALM.dialogue decodes it; clips without a
rich caption or audio are listed in rejected.tsv."""

import json

import pytest
import torch

from espnet2.ualm.data.corpora import prepare_corpus
from espnet2.ualm.data.io import read_jsonl
from espnet2.ualm.tokens.conversation import conversation_from_dialogue
from espnet2.ualm.tokens.tasks import DIALOGUE_PROMPT, DIALOGUE_TEMPLATE, TASKS

PLAN = (
    "Keywords: beep. Layout: three beeps. "
    "Description: the beeps are high-pitched and loud."
)


def _clip(uid, asked):
    questions = [
        {"kind": "count", "question": "How many beeps?", "answer": "Three."},
        {"kind": "pitch", "question": "How high?", "answer": "High."},
    ]
    return {"id": uid, "prompt": "Some beeps.", "asked": asked, "questions": questions}


def _data_dir(tmp_path, write_audio):
    d = tmp_path / "src"
    for uid in ("a", "b", "c"):
        write_audio(str(d / f"{uid}.wav"))
    lines = [
        json.dumps(_clip(u, n)) for u, n in (("a", 2), ("b", 0), ("c", 1), ("d", 1))
    ]
    (d / "clarify.jsonl").write_text("\n".join(lines) + "\n")
    (d / "rich_text").write_text(
        f"a {PLAN}\nb {PLAN}\nc {PLAN.replace('beeps', 'cats', 1)}\nd {PLAN}\n"
    )
    (d / "wav.scp").write_text("".join(f"{u} {d}/{u}.wav\n" for u in "abc"))
    return str(d)


def test_clarifying_dialogues(tmp_path, write_audio, table, rejected):
    src = _data_dir(tmp_path, write_audio)
    out = str(tmp_path / "out")
    kept, _ = prepare_corpus("clarify", out, data_dir=src)
    assert kept == 2
    assert sorted(table(out, "wav.scp")) == ["a", "b"]  # the clips, their ids
    dialogues = {d["id"]: d["messages"] for d in read_jsonl(f"{out}/dialogue.jsonl")}
    a = dialogues["a_clarify"]
    assert [m["role"] for m in a] == ["user"] + ["assistant", "user"] * 2 + [
        "assistant"
    ]
    assert a[0]["content"][0]["text"] == DIALOGUE_PROMPT.format(caption="Some beeps.")
    assert a[1]["content"][0]["text"] == "How many beeps?"
    assert a[4]["content"][0]["text"] == "High."
    assert a[-1]["content"] == [
        {"type": "text", "text": PLAN},
        {"type": "audio", "audio": "a"},
    ]
    assert len(dialogues["b_clarify"]) == 2  # no question asked: caption, audio
    bad = rejected(out)
    assert "is not a Keyword" in bad["c_clarify"][0][1]
    assert bad["d_clarify"][0][1] == "clip d: no wav.scp entry"
    # training reads it as the clarifying_dialogue template's conversation
    task = TASKS.get(DIALOGUE_TEMPLATE)
    assert task.files == ("dialogue", "codes")
    codes = torch.zeros(4, 2, dtype=torch.long)
    turns = conversation_from_dialogue(a, {"a": codes}, {})
    assert [t.role for t in turns] == [m["role"] for m in a]
    assert torch.equal(turns[-1].segments[-1].codes, codes)


def test_a_missing_clarify_file_is_an_error(tmp_path):
    (tmp_path / "src").mkdir()
    with pytest.raises(Exception, match="clarify file"):
        prepare_corpus("clarify", str(tmp_path / "out"), data_dir=str(tmp_path / "src"))
