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
