"""Stages 3 and 5: text tokenizer training and manifests with length statistics."""

import json

import kaldiio
import numpy as np
import pytest
import yaml

from espnet2.bin.ualm_make_manifests import main as manifests_main
from espnet2.bin.ualm_text_tokenizer import main as tokenizer_main
from espnet2.ualm.data.codes_io import flatten_codes, write_geometry
from espnet2.ualm.data.kaldi_dir import read_kv, write_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.model.audio_encoder import encoder_geometry
from espnet2.ualm.testing.tiny_model import tiny_whisper_config
from espnet2.ualm.text.tokenizer import load_text_tokenizer

GEOMETRY = {"sample_rate": 16000, "frame_rate": 50.0, "n_codebooks": 4,
            "codebook_size": 16, "codec": "test"}  # fmt: skip
TINY_ENCODER = encoder_geometry({"config": tiny_whisper_config()})
CAPTIONS = ["a high beep then a low tone", "two clicks on the left", "a rising chirp"]


def _dialogue(conv_id, audio_id):
    content = [{"type": "text", "text": "how many beeps are there?"}]
    if audio_id:
        content.insert(0, {"type": "audio", "audio": audio_id})
    return {
        "id": conv_id,
        "messages": [
            {"role": "user", "content": content},
            {"role": "assistant", "content": [{"type": "text", "text": "three."}]},
        ],
    }


@pytest.fixture
def recipe(tmp_path):
    """dump/audio and dump/codec for one sound and one text dataset, one split."""
    audio = tmp_path / "dump/audio/snd_train"
    write_kv(str(audio / "text"), [(f"s{i}", c) for i, c in enumerate(CAPTIONS)])
    write_kv(str(audio / "wav.scp"), [(f"s{i}", f"/x/s{i}.flac") for i in range(3)])
    write_kv(
        str(audio / "utt2num_samples"), [("s0", 16000), ("s1", 8000), ("s2", 32000)]
    )
    with open(audio / "dialogue.jsonl", "w") as f:
        f.write(json.dumps(_dialogue("q0", "s0")) + "\n")
        f.write(json.dumps(_dialogue("q1", "gone")) + "\n")
    text = tmp_path / "dump/audio/txt_train"
    text.mkdir(parents=True)
    (text / "dialogue.jsonl").write_text(json.dumps(_dialogue("t0", None)) + "\n")
    codes = tmp_path / "dump/codec/snd_train"
    codes.mkdir(parents=True)
    write_geometry(str(codes), GEOMETRY)
    frames = {"s0": 50, "s2": 100}  # s1's codes are missing
    with kaldiio.WriteHelper(f"ark,scp:{codes}/codes.ark,{codes}/codes.scp") as w:
        for k, n in frames.items():
            w(k, flatten_codes(np.zeros((n, 4), dtype=np.int64)))
    write_kv(str(codes / "utt2num_frames"), frames.items())
    conf = {
        "splits": ["train"],
        "datasets": [
            {"data": "snd", "task": "text_to_audio"},
            {"data": "snd", "task": "audio_caption"},
            {"data": "snd", "task": "audio_qa"},
            {"data": "txt", "task": "text_dialogue"},
        ],
    }
    (tmp_path / "datasets.yaml").write_text(yaml.safe_dump(conf))
    tokenizer_main(
        [
            "--data_dir",
            str(audio),
            "--data_dir",
            str(text),
            "--vocab_size",
            "60",
            "--output_dir",
            str(tmp_path / "tok"),
        ]
    )
    return tmp_path


def test_sentencepiece_tokenizer_round_trip(recipe):
    tok = load_text_tokenizer(str(recipe / "tok"))
    assert 30 < tok.vocab_size <= 60
    ids = tok.encode(CAPTIONS[0])
    assert tok.decode(ids) == CAPTIONS[0]


def _make(recipe):
    manifests_main(
        ["--datasets", str(recipe / "datasets.yaml"),
         "--audio_root", str(recipe / "dump/audio"),
         "--codes_root", str(recipe / "dump/codec"),
         "--text_tokenizer", str(recipe / "tok"),
         "--out_dir", str(recipe / "manifests"),
         "--audio_input_frame_rate", f"{TINY_ENCODER.frame_rate:g}"]
    )  # fmt: skip
    return recipe / "manifests/train"


def test_manifests_examples_lengths_and_rejects(recipe):
    out = _make(recipe)
    tok = load_text_tokenizer(str(recipe / "tok"))

    t2a = json.loads((out / "snd_text_to_audio.json").read_text())
    assert t2a["task"] == "text_to_audio" and t2a["num_examples"] == 2
    shape = {k: int(v) for k, v in read_kv(t2a["shape_file"]).items()}
    # caption tokens + frames + (K - 1) delay steps + template overhead
    assert shape["s2"] - shape["s0"] == (
        len(tok.encode(CAPTIONS[2])) - len(tok.encode(CAPTIONS[0])) + 50
    )
    rejected = RejectLog.read(str(out / "snd_text_to_audio.rejected.tsv"))
    assert [(r.utt_id, "codes.scp" in r.reason) for r in rejected] == [("s1", True)]

    caption = json.loads((out / "snd_audio_caption.json").read_text())
    assert caption["num_examples"] == 3  # understanding reads wav, not codes
    qa = json.loads((out / "snd_audio_qa.json").read_text())
    assert qa["num_examples"] == 1 and qa["num_rejected"] == 1
    text = json.loads((out / "txt_text_dialogue.json").read_text())
    assert text["num_examples"] == 1 and "dialogue" in text["files"]

    stats = json.loads((out / "stats.json").read_text())
    assert abs(sum(stats["share_by_task"].values()) - 1) < 1e-6
    assert (out / "lengths.png").stat().st_size > 0


def test_unknown_task_is_a_clear_error(recipe):
    conf = {"datasets": [{"data": "snd", "task": "text_to_smell"}]}
    (recipe / "datasets.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(SystemExit, match="unknown task 'text_to_smell'"):
        _make(recipe)


def test_dirs_name_each_splits_directories(recipe):
    """``dirs``: corpora whose directories are not ``<data>_<split>``; a list
    gives one manifest per directory, a split left out gives none."""
    import shutil

    audio, codes = recipe / "dump/audio", recipe / "dump/codec"
    for name in ("clips_a", "clips_b", "clips_dev"):
        shutil.copytree(audio / "snd_train", audio / name)
        shutil.copytree(codes / "snd_train", codes / name)
    conf = {
        "splits": ["train", "valid"],
        "datasets": [
            {
                "data": "clips",
                "task": "text_to_audio",
                "dirs": {"train": ["clips_a", "clips_b"], "valid": "clips_dev"},
            },
            {"data": "snd", "task": "audio_caption", "dirs": {"train": "snd_train"}},
        ],
    }
    (recipe / "datasets.yaml").write_text(yaml.safe_dump(conf))
    _make(recipe)
    train = json.loads((recipe / "manifests/train/stats.json").read_text())
    valid = json.loads((recipe / "manifests/valid/stats.json").read_text())
    assert train["manifests"] == [
        "clips_text_to_audio-clips_a",
        "clips_text_to_audio-clips_b",
        "snd_audio_caption",
    ]
    assert valid["manifests"] == ["clips_text_to_audio"]
    m = json.loads((recipe / "manifests/valid/clips_text_to_audio.json").read_text())
    assert m["num_examples"] == 2 and "clips_dev" in m["files"]["codes"]


@pytest.mark.parametrize(
    "dirs, message",
    [
        ({"test": "x"}, r"names splits \['test'\] not in \['train'\]"),
        ({"train": ""}, "must be a directory name or a list of them"),
        ({"train": []}, "must be a directory name or a list of them"),
        (["x"], "must map splits to directory names"),
    ],
)
def test_bad_dirs_are_clear_errors(recipe, dirs, message):
    conf = {
        "splits": ["train"],
        "datasets": [{"data": "snd", "task": "text_to_audio", "dirs": dirs}],
    }
    (recipe / "datasets.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(SystemExit, match=message):
        _make(recipe)
    conf["datasets"] = [{"data": "snd", "task": "asr"}, {"data": "snd", "task": "asr"}]
    (recipe / "datasets.yaml").write_text(yaml.safe_dump(conf))
    with pytest.raises(SystemExit, match=r"repeats manifests \['snd_asr'\]"):
        _make(recipe)
