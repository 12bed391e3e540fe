"""UALMDataset + UALMCollateFn on a tiny corpus in the real stage 2-5 formats."""

import json
import os
import shutil

import numpy as np
import pytest
import soundfile
import torch

from espnet2.iterators.sequence_iter_factory import SequenceIterFactory
from espnet2.ualm.data.kaldi_dir import read_kv, write_kv
from espnet2.ualm.model.audio_encoder import WhisperAudioEncoder
from espnet2.ualm.model.factory import build_ualm_model
from espnet2.ualm.testing.tiny_corpus import write_tiny_corpus, write_tiny_pairs
from espnet2.ualm.testing.tiny_model import tiny_qwen2_config, tiny_whisper_config
from espnet2.ualm.text.tokenizer import load_text_tokenizer
from espnet2.ualm.tokens.sequence import SequenceBuilder
from espnet2.ualm.tokens.tasks import TASKS
from espnet2.ualm.tokens.vocabulary import UALMVocabulary
from espnet2.ualm.train.blend import Blend, BlendSource
from espnet2.ualm.train.dataset import (
    AudioInputGeometry,
    UALMCollateFn,
    UALMDataError,
    UALMDataset,
    manifest_paths,
    read_manifest,
    sources_of_batch,
)
from espnet2.ualm.train.sampler import ROW_SEP, PackedBatchSampler

GEOMETRY = AudioInputGeometry(sample_rate=16000, samples_per_frame=640)
UNDERSTANDING = ("audio_caption", "asr", "audio_qa")
GENERATION = ("text_to_audio", "rich_text_to_audio", "tts")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tiny_corpus(str(tmp_path_factory.mktemp("corpus")))


@pytest.fixture(scope="module")
def manifests(corpus):
    paths = manifest_paths(corpus["manifests_train"])
    return {name: read_manifest(path) for name, path in paths.items()}


@pytest.fixture(scope="module")
def builder(corpus):
    tokenizer = load_text_tokenizer(corpus["text_tokenizer"])
    vocab = UALMVocabulary(tokenizer.vocab_size, n_codebooks=3, codebook_size=16)
    return SequenceBuilder(vocab, tokenizer)


@pytest.fixture(scope="module")
def dataset(manifests, builder):
    return UALMDataset(list(manifests.values()), builder, GEOMETRY).preload()


def _first_key(manifest) -> str:
    first = sorted(read_kv(manifest["shape_file"]))[0]
    return f"{manifest['name']}/{first}"


def test_every_manifest_task_builds_and_collates(manifests, dataset, builder):
    vocab = builder.vocab
    # every task but the two conversation tasks without tiny data, the
    # preference pairs (their own corpus: test_preference_pairs_*) and
    # self-reflection (decoded by UALM.reflect; no training data yet)
    no_tiny_data = {
        "audio_dialogue",
        "reasoning",
        "text_to_audio_preference",
        "self_reflection",
        # the reasoning flows' data (vague_text, clarify.jsonl) is the mini
        # corpus's; the tiny corpus has none
        "enrichment",
        "clarifying_dialogue",
        "vague_text_to_audio",
    }
    assert {m["task"] for m in manifests.values()} == set(TASKS) - no_tiny_data
    collate = UALMCollateFn()
    for manifest in manifests.values():
        key = _first_key(manifest)
        row_key, row = dataset[key]
        assert row_key == key and len(row.examples) == 1
        keys, batch = collate([(row_key, row)])
        assert keys == [key]
        seq = row.examples[0]
        assert batch["ids"].shape == (1, len(seq), vocab.n_codebooks)
        assert batch["loss_mask"][0, :, 0].any(), manifest["task"]
        assert int(batch["ids_lengths"][0]) == len(seq)
        placeholders = int((batch["ids"][..., 0] == vocab.audio_placeholder_id).sum())
        if manifest["task"] in UNDERSTANDING:
            assert set(batch) >= {"audio_input", "audio_input_spans"}
            _, _, frames = batch["audio_input_spans"][0].tolist()
            n = int(batch["audio_input_lengths"][0])
            assert frames == placeholders == GEOMETRY.num_frames(n)
            (wave_key,) = row.waveforms
            assert wave_key.startswith(f"{manifest['name']}/")
        else:
            assert "audio_input" not in batch and placeholders == 0
        audio_targets = batch["loss_mask"][0, :, 1:].any()
        assert bool(audio_targets) == (manifest["task"] in GENERATION)
        if manifest["task"] in GENERATION:  # CFG may drop the condition
            assert batch["condition_mask"].any()


def test_preference_pairs_share_a_row_and_collate_with_their_roles(
    corpus, manifests, builder
):
    root = os.path.dirname(os.path.dirname(os.path.dirname(corpus["manifests_train"])))
    pairs = write_tiny_pairs(root)
    (path,) = manifest_paths(pairs["manifests_train"]).values()
    manifest = read_manifest(path)
    assert manifest["task"] == "text_to_audio_preference"
    data = UALMDataset([manifest, *manifests.values()], builder, GEOMETRY)
    shape = read_kv(manifest["shape_file"])
    first, second = sorted(shape)[:2]
    key = f"{manifest['name']}/{first}"
    row_key = ROW_SEP.join([key, f"{manifest['name']}/{second}"])
    _, row = data[row_key]
    assert row.chosen == [True, False, True, False]
    chosen, rejected = row.examples[:2]
    # the manifest's length counts both replies; same prompt, other reply
    assert int(shape[first]) == len(chosen) + len(rejected)
    alone, _ = data.example(f"tiny_sound_text_to_audio/{first}")
    assert torch.equal(chosen.ids, alone.ids)
    prompt = int(chosen.loss_mask[:, 0].nonzero()[0])
    assert torch.equal(chosen.ids[:prompt], rejected.ids[:prompt])
    assert not torch.equal(chosen.ids, rejected.ids)
    _, batch = UALMCollateFn()([(row_key, row)])
    assert batch["pair_index"].tolist() == [0, 0, 1, 1]
    assert batch["chosen"].tolist() == [True, False, True, False]
    # a row or batch may not mix pairs and plain examples
    with pytest.raises(UALMDataError, match="mixes preference pairs"):
        data[ROW_SEP.join([key, f"tiny_sound_text_to_audio/{first}"])]
    plain = data[f"tiny_sound_text_to_audio/{first}"]
    with pytest.raises(UALMDataError, match="mixes preference pairs"):
        UALMCollateFn()([(row_key, row), plain])


def test_a_batch_of_every_task_goes_through_the_model(manifests, dataset, builder):
    torch.manual_seed(0)
    model = build_ualm_model(
        builder.vocab,
        backbone={"config": tiny_qwen2_config()},
        audio_encoder={"config": tiny_whisper_config()},
        adapter={"type": "mlp"},
    )
    rows = [dataset[_first_key(m)] for m in manifests.values()]
    keys, batch = UALMCollateFn()(rows)
    documented = {
        "ids",
        "ids_lengths",
        "loss_mask",
        "position_ids",
        "condition_mask",
        "audio_input",
        "audio_input_lengths",
        "audio_input_spans",
    }
    assert set(batch) == documented  # ualm_model.py's batch keys
    loss, stats, weight = model(**batch, utt_id=keys)
    assert torch.isfinite(loss).all()
    assert int(weight) == int(batch["loss_mask"][:, 1:, 0].sum())


def test_audio_qa_reads_the_dialogue_and_its_audio(manifests, dataset, builder):
    manifest = manifests["tiny_sound_audio_qa"]
    key = _first_key(manifest)
    _, row = dataset[key]
    utt = key.split("/")[1].rsplit("_qa", 1)[0]
    assert list(row.waveforms) == [f"tiny_sound_audio_qa/{utt}"]
    wav, rate = soundfile.read(read_kv(manifest["files"]["wav"])[utt])
    assert rate == GEOMETRY.sample_rate
    np.testing.assert_allclose(
        row.waveforms[f"tiny_sound_audio_qa/{utt}"], wav, atol=1e-4
    )
    turns = [(t.role, t.modality) for t in row.examples[0].turns]
    assert turns == [
        ("system", "text"),
        ("user", "audio_input"),
        ("user", "text"),
        ("assistant", "text"),
    ]
    answer_turn = row.examples[0].turns[-1]
    ids = row.examples[0].ids[answer_turn.start + 2 : answer_turn.end - 1, 0]
    answer = builder.tokenizer.decode([i - builder.vocab.text_offset for i in ids])
    with open(manifest["files"]["dialogue"], encoding="utf-8") as f:
        dialogues = {d["id"]: d for d in map(json.loads, f)}
    expected = dialogues[key.split("/")[1]]["messages"][-1]["content"][0]["text"]
    assert answer == expected


def test_packed_row_holds_its_examples_in_order(manifests, dataset):
    keys = [_first_key(m) for m in manifests.values()]
    row_key = ROW_SEP.join(keys)
    _, row = dataset[row_key]
    lengths = [len(dataset.example(k)[0]) for k in keys]
    assert [len(s) for s in row.examples] == lengths
    _, batch = UALMCollateFn(pad_to_multiple_of=64)(
        [dataset[row_key], dataset[keys[0]]]
    )
    assert batch["ids"].shape[1] % 64 == 0
    assert batch["ids_lengths"].tolist() == [sum(lengths), lengths[0]]
    starts = (batch["position_ids"][0, : sum(lengths)] == 0).nonzero().flatten()
    assert starts.tolist() == np.cumsum([0] + lengths[:-1]).tolist()
    assert sources_of_batch([row_key]) == [k.split("/")[0] for k in keys]


def test_encoder_frames_match_the_placeholders():
    encoder = WhisperAudioEncoder.from_config(tiny_whisper_config())
    geometry = AudioInputGeometry(encoder.sample_rate, encoder.samples_per_frame)
    assert geometry == GEOMETRY
    for n in (1, 639, 640, 641, 7680, 20000):
        assert geometry.num_frames(n) == encoder.num_frames(n)


def test_sequence_iter_factory_with_the_sampler(manifests, dataset):
    """ESPnet's SequenceIterFactory, given the sampler: every epoch re-draws."""
    sources = [
        BlendSource.from_manifest(
            os.path.join(os.path.dirname(m["shape_file"]), f"{m['name']}.json")
        )
        for m in manifests.values()
    ]
    sampler = PackedBatchSampler(
        Blend(sources), max_tokens_per_row=200, rows_per_batch=2
    )
    factory = SequenceIterFactory(
        dataset, sampler, seed=0, shuffle=True, collate_fn=UALMCollateFn()
    )
    epochs = []
    for epoch in (1, 2):
        seen = []
        for keys, batch in factory.build_iter(epoch):
            assert batch["ids"].shape[0] == len(keys) <= 2
            assert batch["ids"].dtype == torch.long
            seen += keys
        epochs.append(seen)
    assert epochs[0] != epochs[1]
    examples = sorted(k for row in epochs[0] for k in row.split(ROW_SEP))
    assert examples == sorted(f"{s.name}/{i}" for s in sources for i in s.ids)


def _with_files(manifest, **files):
    """A copy of ``manifest`` naming other files."""
    out = json.loads(json.dumps(manifest))
    for what, path in files.items():
        out["files"][what] = path
    return out


def test_missing_codes_name_the_key_and_the_file(manifests, builder, tmp_path):
    manifest = manifests["tiny_sound_text_to_audio"]
    codes_dir = tmp_path / "codec"
    shutil.copytree(os.path.dirname(manifest["files"]["codes"]), codes_dir)
    scp = read_kv(str(codes_dir / "codes.scp"))
    victim = sorted(scp)[0]
    del scp[victim]
    write_kv(str(codes_dir / "codes.scp"), scp.items())
    broken = _with_files(manifest, codes=str(codes_dir / "codes.scp"))
    dataset = UALMDataset([broken], builder, GEOMETRY)
    with pytest.raises(UALMDataError) as err:
        dataset[f"{manifest['name']}/{victim}"]
    assert f"{manifest['name']}/{victim}" in str(err.value)
    assert str(codes_dir / "codes.scp") in str(err.value)


def test_missing_text_and_audio_name_the_file(manifests, builder, tmp_path):
    manifest = manifests["tiny_sound_audio_caption"]
    text = read_kv(manifest["files"]["text"])
    victim = sorted(text)[0]
    del text[victim]
    write_kv(str(tmp_path / "text"), text.items())
    wavs = read_kv(manifest["files"]["wav"])
    wavs[sorted(wavs)[1]] = str(tmp_path / "gone.flac")
    write_kv(str(tmp_path / "wav.scp"), wavs.items())
    broken = _with_files(
        manifest, text=str(tmp_path / "text"), wav=str(tmp_path / "wav.scp")
    )
    dataset = UALMDataset([broken], builder, GEOMETRY)
    with pytest.raises(UALMDataError, match=f"{victim}.*{tmp_path / 'text'}"):
        dataset[f"{manifest['name']}/{victim}"]
    with pytest.raises(UALMDataError, match="gone.flac"):
        dataset[f"{manifest['name']}/{sorted(wavs)[1]}"]


def test_audio_at_another_rate_is_resampled(manifests, builder, tmp_path):
    manifest = manifests["tiny_speech_asr"]
    wavs = read_kv(manifest["files"]["wav"])
    utt = sorted(wavs)[0]
    wav, rate = soundfile.read(wavs[utt], dtype="float32")
    soundfile.write(str(tmp_path / "a.flac"), wav[::2], rate // 2)
    write_kv(str(tmp_path / "wav.scp"), [(utt, str(tmp_path / "a.flac"))])
    dataset = UALMDataset(
        [_with_files(manifest, wav=str(tmp_path / "wav.scp"))],
        builder,
        GEOMETRY,
    )
    _, row = dataset[f"{manifest['name']}/{utt}"]
    (resampled,) = row.waveforms.values()
    assert abs(len(resampled) - 2 * len(wav[::2])) <= 2


def test_unknown_task_and_missing_encoder_are_errors(manifests, builder):
    odd = dict(manifests["tiny_speech_asr"], task="lip_reading")
    with pytest.raises(ValueError, match="unknown task 'lip_reading'"):
        UALMDataset([odd], builder, GEOMETRY)
    no_encoder = UALMDataset([manifests["tiny_speech_asr"]], builder, None)
    with pytest.raises(UALMDataError, match="no audio encoder"):
        no_encoder[_first_key(manifests["tiny_speech_asr"])]
