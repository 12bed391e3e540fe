"""Stage-5 lengths equal the lengths of the sequences the dataset builds."""

import os

import numpy as np
import pytest
import torch
import yaml

from espnet2.ualm.data.io import resample
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.manifest import LengthModel, example_length
from espnet2.ualm.testing.tiny_corpus import TINY_DATASETS, write_tiny_corpus
from espnet2.ualm.text.tokenizer import load_text_tokenizer
from espnet2.ualm.tokens.sequence import SequenceBuilder
from espnet2.ualm.tokens.tasks import TASKS
from espnet2.ualm.tokens.vocabulary import UALMVocabulary
from espnet2.ualm.train.dataset import (
    AudioInputGeometry,
    UALMDataset,
    manifest_paths,
    read_manifest,
)

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 4))
MINI_DATASETS = os.path.join(REPO, "egs2", "ualm", "mini", "conf", "datasets.yaml")
GEOMETRY = AudioInputGeometry(sample_rate=16000, samples_per_frame=640)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tiny_corpus(str(tmp_path_factory.mktemp("corpus")))


@pytest.mark.parametrize("split", ["train", "valid"])
def test_shape_is_the_built_length_for_every_mini_task(corpus, split):
    """Exact, for every example of every task of the mini recipe."""
    with open(MINI_DATASETS, encoding="utf-8") as f:
        mini_tasks = {d["task"] for d in yaml.safe_load(f)["datasets"]}
    assert mini_tasks <= {task for _, task in TINY_DATASETS}
    tokenizer = load_text_tokenizer(corpus["text_tokenizer"])
    vocab = UALMVocabulary(tokenizer.vocab_size, n_codebooks=3, codebook_size=16)
    builder = SequenceBuilder(vocab, tokenizer)
    manifests = [
        read_manifest(p) for p in manifest_paths(corpus[f"manifests_{split}"]).values()
    ]
    dataset = UALMDataset(manifests, builder, GEOMETRY).preload()
    checked = set()
    for manifest in manifests:
        shape = read_kv(manifest["shape_file"])
        assert shape, manifest["name"]
        for utt, n in shape.items():
            seq, _ = dataset.example(f"{manifest['name']}/{utt}")
            assert int(n) == len(seq), (manifest["name"], utt)
        checked.add(manifest["task"])
    assert checked >= mini_tasks


def _lengths(tokenizer_len, **kwargs):
    conf = dict(
        count_text_tokens=tokenizer_len,
        codec_frame_rate=50.0,
        n_codebooks=8,
        audio_input_frame_rate=25.0,
        sample_rate=16000,
    )
    return LengthModel(**{**conf, **kwargs})


def test_encoder_frames_match_the_dataset_at_boundaries_and_after_resampling():
    lengths = _lengths(len)
    for n in (1, 639, 640, 641, 16000, 16001, 160000, 10 * 640 * 3 + 1):
        assert lengths.wav(n) == GEOMETRY.num_frames(n)
    other = _lengths(len, sample_rate=22050, audio_input_sample_rate=16000)
    for n in (1, 2205, 22050, 22051, 220499, 220500):
        resampled = resample(np.zeros(n), 22050, 16000)  # what the dataset does
        assert other.wav(n) == GEOMETRY.num_frames(len(resampled)), n
    # 44.1 -> 16 kHz: 180697 samples give 65560 (torch's float32 ceil: 65559)
    other = _lengths(len, sample_rate=44100, audio_input_sample_rate=16000)
    for n in (180697, 441 * 3000, 441 * 3000 + 1):
        resampled = resample(np.zeros(n), 44100, 16000)
        assert len(resampled) == -(-n * 160 // 441)
        assert other.wav(n) == GEOMETRY.num_frames(len(resampled)), n


def test_prompt_text_is_counted_with_the_example_text():
    words = lambda text: len(text.split())  # noqa: E731
    lengths = _lengths(words)
    t2a = "text_to_audio"
    item = {"text": "a dog barks", "codes": 500}
    # <bos>; user: role, modality, "Generate audio for this caption." (5 words)
    # + caption (3), <eos>; assistant: role, modality, 500 frames + closing
    # frame + 7 delay steps
    assert example_length(t2a, item, lengths) == 1 + (3 + 5 + 3) + (2 + 500 + 8)
    rich = "rich_text_to_audio"
    item = {"text": "a dog", "rich_text": "a big dog barks twice", "codes": 10}
    assert example_length(rich, item, lengths) == 1 + (3 + 7) + (3 + 5) + (2 + 18)
    caption = "audio_caption"
    item = {"wav": 16000, "text": "a beep"}
    # audio input turn: 25 placeholders + 3; prompt turn: 5 words + 3; answer
    assert example_length(caption, item, lengths) == 1 + 28 + 8 + 5
    with pytest.raises(ValueError, match="reads 'codes'"):
        example_length(t2a, {"text": "x"}, lengths)


def test_every_manifest_task_has_a_template():
    for task in TASKS:
        template = TASKS.template_of(task)
        assert template.conversation == ("dialogue" in TASKS.get(task).files), task
    assert all(TASKS.get(t).template in TASKS.templates for t in TASKS)


def test_audio_qa_dialogue_builds_as_the_one_turn_audio_qa_template(corpus):
    """A one-turn QA dialogue through ``audio_dialogue`` (training) gives the
    sequence the ``audio_qa`` template gives for the same fields (inference)."""
    tokenizer = load_text_tokenizer(corpus["text_tokenizer"])
    vocab = UALMVocabulary(tokenizer.vocab_size, n_codebooks=3, codebook_size=16)
    builder = SequenceBuilder(vocab, tokenizer)
    messages = [
        {"role": "user", "content": [
            {"type": "audio", "audio": "clip"},
            {"type": "text", "text": "How many beeps?"},
        ]},
        {"role": "assistant", "content": [{"type": "text", "text": "Two."}]},
    ]  # fmt: skip
    dialogue = builder.build_example(
        TASKS.template_of("audio_qa"),
        {"messages": messages, "audio_input_frames": {"clip": 7}},
    )
    from espnet2.ualm.tokens.conversation import AudioInputSegment

    one_turn = builder.build_example(
        "audio_qa",
        {
            "audio": AudioInputSegment("clip", 7),
            "question": "How many beeps?",
            "answer": "Two.",
        },
    )
    for field in ("ids", "loss_mask", "condition_mask"):
        assert torch.equal(getattr(dialogue, field), getattr(one_turn, field))
    assert dialogue.audio_inputs == one_turn.audio_inputs
    assert np.array_equal(
        [t.start for t in dialogue.turns], [t.start for t in one_turn.turns]
    )


def test_self_reflection_is_not_built_from_a_data_dir(tmp_path):
    from espnet2.ualm.data.manifest import build_manifest

    with pytest.raises(ValueError, match="decoded by UALM.reflect"):
        build_manifest(
            "x", "self_reflection", "train", str(tmp_path), str(tmp_path),
            None, str(tmp_path),
        )  # fmt: skip
