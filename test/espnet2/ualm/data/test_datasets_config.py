"""The datasets config: directories per split, with and without ``dirs``, and
the sets ualm.sh decodes."""

import os

import pytest
import yaml

from espnet2.ualm.data.datasets_config import (
    dataset_dirs,
    decode_sets,
    load_datasets_config,
    manifest_dirs,
    split_dirs,
)

ROOT = os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
)
CONF = {
    "splits": ["train", "valid", "test"],
    "datasets": [
        {"data": "snd", "task": "text_to_audio"},
        {"data": "snd", "task": "audio_caption"},
        {
            "data": "ls",
            "task": "asr",
            "dirs": {"train": ["ls_100", "ls_360"], "valid": "ls_dev", "test": "ls_t"},
        },
        {"data": "af3", "task": "audio_qa", "dirs": {"train": "af3_skills"}},
    ],
}


@pytest.fixture
def conf(tmp_path):
    path = tmp_path / "datasets.yaml"
    path.write_text(yaml.safe_dump(CONF))
    return load_datasets_config(str(path))


def test_directories_per_split(conf):
    snd, _, ls, af3 = conf["datasets"]
    assert dataset_dirs(snd, "valid") == ["snd_valid"]
    assert dataset_dirs(ls, "train") == ["ls_100", "ls_360"]
    assert dataset_dirs(af3, "valid") == []
    assert manifest_dirs(ls, "train") == [
        ("ls_100", "ls_asr-ls_100"),
        ("ls_360", "ls_asr-ls_360"),
    ]
    assert manifest_dirs(ls, "valid") == [("ls_dev", "ls_asr")]
    assert split_dirs(conf, "train") == ["af3_skills", "ls_100", "ls_360", "snd_train"]
    assert split_dirs(conf, "valid") == ["ls_dev", "snd_valid"]


def test_decode_sets(conf):
    assert decode_sets(conf) == [
        ("snd_test", "text_to_audio"),
        ("snd_test", "audio_caption"),
        ("ls_t", "asr"),
    ]
    assert decode_sets(conf, tasks=["asr"]) == [("ls_t", "asr")]
    # --test_sets: a set goes with the entries it belongs to, in any split
    assert decode_sets(conf, sets=["snd_valid", "ls_dev", "af3_skills"]) == [
        ("snd_valid", "text_to_audio"),
        ("snd_valid", "audio_caption"),
        ("ls_dev", "asr"),
        ("af3_skills", "audio_qa"),
    ]


def test_the_mini_config_decodes_its_test_sets():
    conf = load_datasets_config(
        os.path.join(ROOT, "egs2", "ualm", "mini", "conf", "datasets.yaml")
    )
    pairs = decode_sets(conf)
    assert len(pairs) == len(conf["datasets"])
    assert all(dset.endswith("_test") for dset, _ in pairs)
    assert split_dirs(conf, "train") == [
        "mini_sound_train",
        "mini_speech_train",
        "mini_text_train",
    ]


def test_decode_sets_refuse_names_the_config_lacks(conf):
    """An unknown task or set would decode nothing and look like success."""
    with pytest.raises(ValueError, match="task 'foo' is in no entry"):
        decode_sets(conf, tasks=["foo"])
    with pytest.raises(ValueError, match="set 'nope_test' is in no entry"):
        decode_sets(conf, sets=["nope_test"])
