"""ualm_inference over data directories: shards, merge into ESPnet's layout,
resume after an interruption, per-item errors listed in errors.tsv."""

import json
import os
import shutil

import pytest
import soundfile

from espnet2.bin.ualm_inference import RESULTS, main, shard_dir
from espnet2.ualm.data.codes_io import CodesReader
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog


def _run(packed_dir, task, data_dir, out, num_jobs=2, decode_config=None):
    for job in range(1, num_jobs + 1):
        cmd = ["--model", packed_dir, "--task", task, "--data_dir", data_dir]
        cmd += ["--output_dir", out, "--job", str(job), "--num_jobs", str(num_jobs)]
        if decode_config:
            cmd += ["--decode_config", decode_config]
        main(cmd)
    main(["--merge", "--output_dir", out, "--num_jobs", str(num_jobs)])


@pytest.fixture(scope="module")
def audio_root(experiment):
    return os.path.join(experiment["corpus_root"], "dump", "audio")


def test_generation_layout(packed_dir, audio_root, tmp_path):
    data = os.path.join(audio_root, "tiny_sound_test")
    out = str(tmp_path / "t2a")
    _run(packed_dir, "text_to_audio", data, out)
    ids = sorted(read_kv(os.path.join(data, "text")))
    wavs = read_kv(os.path.join(out, "wav.scp"))
    assert sorted(wavs) == ids
    info = soundfile.info(wavs[ids[0]])
    assert info.samplerate == 16000 and info.channels == 1
    tokens = CodesReader(out)
    assert sorted(tokens.keys()) == ids and tokens[ids[0]].shape[1] == 3
    assert RejectLog.read(os.path.join(out, "errors.tsv")) == []
    assert not os.path.exists(os.path.join(out, "text"))  # no text reply


LENGTH_JUDGE = """
import numpy as np
SAMPLE_RATE = 16000
def expected_from_prompt(text):
    return [text]
def judge_audio(items):
    # the 'overall' score of a clip: its length in seconds
    return {uid: {"scores": {"overall": len(mono) / SAMPLE_RATE}}
            for uid, mono, stereo, expected in items}, {}
def judge_data_dir(hyp_wavs, ref_dir):
    raise NotImplementedError
"""


def test_best_of_n_keeps_the_best_candidate_and_lists_the_scores(
    packed_dir, audio_root, tmp_path
):
    judge = tmp_path / "length_judge.py"
    judge.write_text(LENGTH_JUDGE)
    decode = tmp_path / "best_of.yaml"
    decode.write_text(
        "best_of: 3\naudio_sampling: {temperature: 1.5}\n"
        f"best_of_scorer: {{name: judge, judge: {judge}}}\n"
    )
    data = os.path.join(audio_root, "tiny_sound_test")
    out = str(tmp_path / "best")
    _run(packed_dir, "text_to_audio", data, out, decode_config=str(decode))
    best = read_kv(os.path.join(out, "best_of.tsv"))
    wavs = read_kv(os.path.join(out, "wav.scp"))
    assert sorted(best) == sorted(wavs) == sorted(read_kv(os.path.join(data, "text")))
    for utt, line in best.items():
        chosen, *scores = line.split()
        scores = [float(x) for x in scores]
        assert len(scores) == 3 and int(chosen) == scores.index(max(scores))
        info = soundfile.info(wavs[utt])  # the kept clip is the longest candidate
        assert info.frames / info.samplerate == pytest.approx(max(scores), abs=1e-3)
    timing = json.load(open(os.path.join(out, "timing.json")))
    assert timing["wall_seconds"] > 0 and len(timing["shards"]) == 2


def test_understanding_tasks_write_text(packed_dir, audio_root, tmp_path):
    for task, data, ref in (
        ("asr", "tiny_speech_test", "text"),
        ("audio_caption", "tiny_sound_test", "text"),
        ("audio_qa", "tiny_sound_test", "dialogue.jsonl"),
        ("text_dialogue", "tiny_text_test", "dialogue.jsonl"),
    ):
        out = str(tmp_path / task)
        _run(packed_dir, task, os.path.join(audio_root, data), out, num_jobs=1)
        hyps = read_kv(os.path.join(out, "text"), allow_empty_value=True)
        ref_path = os.path.join(audio_root, data, ref)
        if ref.endswith(".jsonl"):
            ids = sorted(json.loads(line)["id"] for line in open(ref_path))
        else:
            ids = sorted(read_kv(ref_path))
        assert sorted(hyps) == ids, task


def test_replies_cut_at_their_length_bound_are_listed(packed_dir, audio_root, tmp_path):
    decode = tmp_path / "short.yaml"
    decode.write_text("min_text_tokens: 2\nmax_text_tokens: 2\nbeam_size: 1\n")
    data = os.path.join(audio_root, "tiny_sound_test")
    out = str(tmp_path / "cut")
    _run(packed_dir, "audio_caption", data, out, decode_config=str(decode))
    cut = read_kv(os.path.join(out, "truncated.tsv"))
    assert cut == {utt: "text" for utt in read_kv(os.path.join(data, "text"))}
    # a later run whose replies fit removes the stale list
    _run(packed_dir, "text_to_audio", data, out)
    assert not os.path.exists(os.path.join(out, "truncated.tsv"))


def test_resume_redoes_only_unfinished_items(packed_dir, audio_root, tmp_path):
    data = os.path.join(audio_root, "tiny_speech_test")
    out = str(tmp_path / "asr")
    _run(packed_dir, "asr", data, out, num_jobs=1)
    first = open(os.path.join(out, "text")).read()
    # Interrupt: the shard lost its done mark and its last results.
    shard = shard_dir(out, 1)
    os.remove(os.path.join(shard, ".done"))
    lines = open(os.path.join(shard, RESULTS)).readlines()
    with open(os.path.join(shard, RESULTS), "w") as f:
        f.writelines(lines[:2] + [lines[2][:10]])  # a line cut mid-write
    kept = {json.loads(line)["id"] for line in lines[:2]}
    calls = []
    from espnet2.ualm.inference import pipeline

    real = pipeline.UALM.run

    def spy(self, requests, progress=None, **kw):
        calls.extend(r.id for r in requests)
        return real(self, requests, progress, **kw)

    pipeline.UALM.run = spy
    try:
        _run(packed_dir, "asr", data, out, num_jobs=1)
    finally:
        pipeline.UALM.run = real
    assert calls and not kept & set(calls)
    assert len(calls) == len(lines) - 2
    assert open(os.path.join(out, "text")).read() == first


def test_bad_items_are_listed(packed_dir, audio_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(os.path.join(audio_root, "tiny_speech_test"), data)
    scp = read_kv(str(data / "wav.scp"))
    first = sorted(scp)[0]
    (tmp_path / "bad.wav").write_bytes(b"nope")
    scp[first] = str(tmp_path / "bad.wav")
    with open(data / "wav.scp", "w") as f:
        f.writelines(f"{k} {v}\n" for k, v in sorted(scp.items()))
    out = str(tmp_path / "asr")
    _run(packed_dir, "asr", str(data), out)
    errors = RejectLog.read(os.path.join(out, "errors.tsv"))
    assert [e.utt_id for e in errors] == [first]
    assert "bad.wav unreadable" in errors[0].reason
    assert (
        len(read_kv(os.path.join(out, "text"), allow_empty_value=True)) == len(scp) - 1
    )


def test_merge_refuses_unfinished_shards(tmp_path):
    os.makedirs(shard_dir(str(tmp_path), 1))
    with pytest.raises(SystemExit, match="not finished"):
        main(["--merge", "--output_dir", str(tmp_path), "--num_jobs", "1"])


@pytest.fixture
def decoded_ids(monkeypatch):
    """The ids each ``UALM.run`` call is given (what a run really decodes)."""
    from espnet2.ualm.inference import pipeline

    calls = []
    real = pipeline.UALM.run

    def spy(self, requests, progress=None, **kw):
        calls.extend(r.id for r in requests)
        return real(self, requests, progress, **kw)

    monkeypatch.setattr(pipeline.UALM, "run", spy)
    return calls


def test_a_shard_is_redone_when_its_inputs_change(
    packed_dir, audio_root, tmp_path, decoded_ids
):
    data = str(tmp_path / "data")
    shutil.copytree(os.path.join(audio_root, "tiny_speech_test"), data)
    model = str(tmp_path / "model")
    shutil.copytree(packed_dir, model)
    decode = tmp_path / "decode.yaml"
    decode.write_text("max_text_tokens: 12\n")
    out = str(tmp_path / "asr")
    ids = sorted(read_kv(os.path.join(data, "wav.scp")))

    def rerun():
        decoded_ids.clear()
        _run(model, "asr", data, out, num_jobs=1, decode_config=str(decode))
        return sorted(decoded_ids)

    assert rerun() == ids
    assert rerun() == []  # unchanged: skipped
    decode.write_text("max_text_tokens: 6\n")  # other decoding settings
    assert rerun() == ids
    assert rerun() == []
    weights = max(
        (os.path.join(d, f) for d, _, fs in os.walk(model) for f in fs),
        key=os.path.getsize,
    )
    st = os.stat(weights)  # the model retrained: a newer weights file
    os.utime(weights, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert rerun() == ids
    scp = read_kv(os.path.join(data, "wav.scp"))  # the data changed
    with open(os.path.join(data, "wav.scp"), "w") as f:
        f.writelines(f"{k} {v}\n" for k, v in sorted(scp.items())[1:])
    assert rerun() == ids[1:]
    assert sorted(read_kv(os.path.join(out, "text"), allow_empty_value=True)) == ids[1:]


def test_another_number_of_jobs_redoes_the_shards(packed_dir, audio_root, tmp_path):
    data = os.path.join(audio_root, "tiny_speech_test")
    out = str(tmp_path / "asr")
    ids = sorted(read_kv(os.path.join(data, "wav.scp")))
    _run(packed_dir, "asr", data, out, num_jobs=2)
    with pytest.raises(SystemExit, match="another --num_jobs than 1"):
        main(["--merge", "--output_dir", out, "--num_jobs", "1"])
    _run(packed_dir, "asr", data, out, num_jobs=1)
    assert sorted(read_kv(os.path.join(out, "text"), allow_empty_value=True)) == ids
    _run(packed_dir, "asr", data, out, num_jobs=3)
    assert sorted(read_kv(os.path.join(out, "text"), allow_empty_value=True)) == ids


@pytest.mark.parametrize(
    "args",
    [
        ["--merge", "--num_jobs", "0"],
        ["--num_jobs", "0", "--job", "1"],
        ["--num_jobs", "2", "--job", "3"],
        ["--num_jobs", "2", "--job", "0"],
        ["--batch_size", "-1"],
    ],
)
def test_job_options_out_of_range_are_refused(tmp_path, args):
    out = str(tmp_path / "out")
    cmd = ["--model", "m", "--task", "asr", "--data_dir", str(tmp_path)]
    with pytest.raises(SystemExit) as e:
        main(cmd + ["--output_dir", out] + args)
    assert e.value.code not in (0, None)
    assert not os.path.exists(out)


def test_a_kill_between_codes_and_record_leaves_no_duplicates(
    packed_dir, audio_root, tmp_path, monkeypatch
):
    import kaldiio

    data = os.path.join(audio_root, "tiny_sound_test")
    whole, killed = str(tmp_path / "whole"), str(tmp_path / "killed")
    cmd = ["--model", packed_dir, "--task", "text_to_audio", "--data_dir", data]
    cmd += ["--batch_size", "2"]
    main(cmd + ["--output_dir", whole])
    main(["--merge", "--output_dir", whole])

    real, calls = kaldiio.save_ark, []

    def save_then_die(*args, **kwargs):
        real(*args, **kwargs)
        calls.append(1)
        if len(calls) == 2:  # the second batch's codes are written, then a kill
            raise KeyboardInterrupt

    monkeypatch.setattr(kaldiio, "save_ark", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        main(cmd + ["--output_dir", killed])
    monkeypatch.setattr(kaldiio, "save_ark", real)
    main(cmd + ["--output_dir", killed])
    main(["--merge", "--output_dir", killed])

    for path in (
        os.path.join(killed, "codes.scp"),
        os.path.join(shard_dir(killed, 1), "codes.scp"),
    ):
        keys = [line.split()[0] for line in open(path)]
        assert len(keys) == len(set(keys)), path
    a, b = CodesReader(whole), CodesReader(killed)
    assert sorted(a.keys()) == sorted(b.keys())
    for k in a.keys():
        assert (a[k] == b[k]).all(), k
    assert sorted(read_kv(os.path.join(killed, "wav.scp"))) == sorted(a.keys())


def test_an_empty_caption_is_rejected_alone(packed_dir, audio_root, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(os.path.join(audio_root, "tiny_sound_test"), data)
    captions = read_kv(str(data / "text"))
    empty, *rest = sorted(captions)
    with open(data / "text", "w") as f:
        f.write(f"{empty}   \n")
        f.writelines(f"{k} {captions[k]}\n" for k in rest)
    out = str(tmp_path / "t2a")
    _run(packed_dir, "text_to_audio", str(data), out)
    errors = RejectLog.read(os.path.join(out, "errors.tsv"))
    assert [(e.utt_id, e.reason) for e in errors] == [(empty, "empty value")]
    assert sorted(read_kv(os.path.join(out, "wav.scp"))) == rest


def test_dialogues_with_string_content_and_malformed_ones(
    packed_dir, audio_root, tmp_path
):
    data = tmp_path / "data"
    shutil.copytree(os.path.join(audio_root, "tiny_text_test"), data)
    rows = [json.loads(line) for line in open(data / "dialogue.jsonl")]
    plain, bad = rows[0], rows[1]
    for msg in plain["messages"]:
        msg["content"] = " ".join(p["text"] for p in msg["content"])
    bad["messages"][1]["content"] = 5
    with open(data / "dialogue.jsonl", "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    out = str(tmp_path / "chat")
    _run(packed_dir, "text_dialogue", str(data), out, num_jobs=1)
    errors = RejectLog.read(os.path.join(out, "errors.tsv"))
    assert [e.utt_id for e in errors] == [bad["id"]]
    assert "content must be a string or a list of parts" in errors[0].reason
    hyps = read_kv(os.path.join(out, "text"), allow_empty_value=True)
    assert sorted(hyps) == sorted(r["id"] for r in rows if r is not bad)


def test_self_reflection_saves_every_intermediate(packed_dir, audio_root, tmp_path):
    """The final clip in the usual layout; the plan, each attempt (a
    directory the scorer reads), its caption and critique under reflection/."""
    from espnet2.ualm.scoring.data import read_text_file, read_wav_scp
    from espnet2.ualm.scoring.tasks import GenerationModels, score_generation
    from espnet2.ualm.tokens.tasks import TASKS

    data = os.path.join(audio_root, "tiny_sound_test")
    out = str(tmp_path / "reflect")
    _run(packed_dir, "self_reflection", data, out)
    ids = sorted(read_kv(os.path.join(data, "text")))
    final = read_kv(os.path.join(out, "wav.scp"))
    assert sorted(final) == ids
    root = os.path.join(out, "reflection")
    assert sorted(read_text_file(os.path.join(root, "rich_text"))) == ids
    assert set(read_kv(os.path.join(root, "rounds")).values()) == {"1 no"}
    v1, v2 = (read_wav_scp(os.path.join(root, f"v{n}")) for n in (1, 2))
    assert sorted(v1) == sorted(v2) == ids
    for utt in ids:
        assert os.path.isfile(v1[utt]) and v1[utt] != v2[utt]
        assert (
            soundfile.read(v2[utt])[0].tolist()
            == soundfile.read(final[utt])[0].tolist()
        )
    for name in ("heard_text", "critique"):
        assert sorted(read_text_file(os.path.join(root, "v1", name))) == ids
        assert not os.path.exists(os.path.join(root, "v2", name))
    assert not os.path.exists(os.path.join(root, "v3"))
    assert RejectLog.read(os.path.join(out, "errors.tsv")) == []
    spec = TASKS.get("self_reflection")  # each attempt dir is scored as generation
    scored = score_generation(spec, os.path.join(root, "v1"), data, GenerationModels())
    assert scored.metrics["clips"] == len(ids) and not scored.notes


def test_an_item_stopped_early_delivers_its_last_attempt_in_later_rounds(tmp_path):
    from espnet2.bin.ualm_inference import _write_reflection

    def attempt(name, heard=None, critique=None):
        return {"wav": f"/w/{name}.wav", "heard_caption": heard, "critique": critique}

    rows = {
        "a": {
            "reflection": {
                "rich_caption": "plan a",
                "rounds": 1,
                "stopped_early": True,
                "attempts": [attempt("a1", "heard a", "Critique: no mismatch.")],
            }
        },
        "b": {
            "reflection": {
                "rich_caption": "plan b",
                "rounds": 1,
                "stopped_early": False,
                "attempts": [attempt("b1", "", "Critique: x."), attempt("b2")],
            }
        },
        "c": {"text": "no reflection"},
    }
    assert _write_reflection(str(tmp_path), rows) == 2
    root = tmp_path / "reflection"
    assert read_kv(str(root / "rounds")) == {"a": "1 yes", "b": "1 no"}
    assert read_kv(str(root / "v1" / "wav.scp")) == {"a": "/w/a1.wav", "b": "/w/b1.wav"}
    assert read_kv(str(root / "v2" / "wav.scp")) == {"a": "/w/a1.wav", "b": "/w/b2.wav"}
    assert read_kv(str(root / "v1" / "critique"))["a"] == "Critique: no mismatch."
    assert not (root / "v2" / "critique").exists()
    assert _write_reflection(str(tmp_path), {"c": rows["c"]}) == 0
    assert not root.exists()  # an earlier merge's reflection/ is removed


@pytest.fixture
def vague_dir(audio_root, tmp_path):
    """tiny_sound_test with the reasoning flows' files: vague_text and
    clarify.jsonl (one question per clip, as the mini corpus writes them)."""
    from espnet2.ualm.data.kaldi_dir import write_kv
    from espnet2.ualm.text.clarify import (
        CLARIFY_FILE,
        Clarification,
        ClipClarifications,
    )

    data = str(tmp_path / "vague")
    shutil.copytree(os.path.join(audio_root, "tiny_sound_test"), data)
    ids = sorted(read_kv(os.path.join(data, "text")))
    write_kv(os.path.join(data, "vague_text"), [(u, "some beeps") for u in ids])
    with open(os.path.join(data, CLARIFY_FILE), "w", encoding="utf-8") as f:
        for n, u in enumerate(ids):
            q = Clarification("count", "How many beeps do you want?", f"{n}.")
            clip = ClipClarifications(u, "some beeps", (q,), 1)
            f.write(json.dumps(clip.to_json()) + "\n")
    return data, ids


def _run_dialogue(packed_dir, data, out, *extra):
    main(["--model", packed_dir, "--task", "dialogue", "--data_dir", data,
          "--output_dir", out, *extra])  # fmt: skip
    main(["--merge", "--output_dir", out])


def _dialogues(out):
    from espnet2.ualm.tokens.conversation import conversation_from_dialogue

    with open(os.path.join(out, "dialogue", "dialogue.jsonl"), encoding="utf-8") as f:
        rows = [json.loads(line) for line in f]
    for row in rows:  # the training layout's conversation, its clip the output's
        conversation_from_dialogue(row["messages"], {row["id"]: [[0]]})
        assert row["messages"][-1]["content"][-1] == {
            "type": "audio",
            "audio": row["id"],
        }
    return {r["id"]: r["messages"] for r in rows}


def _answers(messages):
    users = [m for m in messages if m["role"] == "user"][1:]
    return [m["content"][0]["text"] for m in users]


def test_enrichment_reads_the_vague_prompts(packed_dir, vague_dir, tmp_path):
    data, ids = vague_dir
    out = str(tmp_path / "enrich")
    _run(packed_dir, "enrichment", data, out, num_jobs=1)
    assert sorted(read_kv(os.path.join(out, "wav.scp"))) == ids
    assert sorted(read_kv(os.path.join(out, "text"))) == ids


def test_dialogue_from_stdin_saves_every_intermediate(
    packed_dir, vague_dir, tmp_path, monkeypatch, capsys
):
    """The interactive dialogue: each question on stderr, its answer a line
    of stdin; the clip in the usual layout, the conversation under dialogue/."""
    import io

    data, ids = vague_dir
    out = str(tmp_path / "stdin")
    monkeypatch.setattr("sys.stdin", io.StringIO("Two.\n" * 100))
    _run_dialogue(packed_dir, data, out, "--max_turns", "2")
    assert sorted(read_kv(os.path.join(out, "wav.scp"))) == ids
    turns = read_kv(os.path.join(out, "dialogue", "turns"))
    assert sorted(turns) == ids and set(turns.values()) <= {"0", "1", "2"}
    conversations = _dialogues(out)
    asked = capsys.readouterr().err
    for u in ids:
        assert _answers(conversations[u]) == ["Two."] * int(turns[u])
        questions = [m for m in conversations[u] if m["role"] == "assistant"][:-1]
        for q in questions:
            assert f"[{u}] {q['content'][0]['text']}\n> " in asked
    assert sorted(read_kv(os.path.join(out, "dialogue", "rich_text"))) == ids
    assert RejectLog.read(os.path.join(out, "errors.tsv")) == []


def test_dialogue_from_an_answers_file_or_the_simulated_user(
    packed_dir, vague_dir, tmp_path
):
    from espnet2.ualm.text.clarify import FALLBACK_ANSWER

    data, ids = vague_dir
    answers = tmp_path / "answers.txt"
    answers.write_text("".join(f"{u} Answer {n} to {u}.\n" for u in ids
                               for n in range(2)))  # fmt: skip
    out = str(tmp_path / "file")
    _run_dialogue(packed_dir, data, out, "--max_turns", "2", "--answers_file",
                  str(answers))  # fmt: skip
    for u, messages in _dialogues(out).items():
        given = _answers(messages)
        assert given == [f"Answer {n} to {u}." for n in range(len(given))]
    out = str(tmp_path / "simulated")
    _run_dialogue(packed_dir, data, out, "--max_turns", "1", "--simulated_user")
    for n, u in enumerate(ids):
        assert set(_answers(_dialogues(out)[u])) <= {f"{n}.", FALLBACK_ANSWER}
    short = tmp_path / "short.txt"
    short.write_text(f"{ids[0]} Two.\n")
    out = str(tmp_path / "short")
    _run_dialogue(packed_dir, data, out, "--max_turns", "1", "--answers_file",
                  str(short))  # fmt: skip
    turns = read_kv(os.path.join(out, "dialogue", "turns"))
    errors = {
        r.utt_id: r.reason for r in RejectLog.read(os.path.join(out, "errors.tsv"))
    }
    for u in ids[1:]:  # no answers: an item that asks fails alone, naming the file
        assert (u in errors) != (u in turns)
        if u in errors:
            assert "short.txt has 0 answers for item" in errors[u]
    with pytest.raises(SystemExit):
        main(["--model", packed_dir, "--task", "dialogue", "--data_dir", data,
              "--output_dir", out, "--simulated_user", "--answers_file",
              str(short)])  # fmt: skip
