"""Packed models: the layout, safe weights, the archive (ESPnet pack) and
from_pretrained reproducing the training run's own model bit for bit."""

import os
import zipfile

import pytest
import torch
import yaml

from espnet2.tasks.ualm import UALMTask
from espnet2.ualm import UALM
from espnet2.ualm.inference.generate import UALMGenerator
from espnet2.ualm.pretrained import (
    PretrainedFormatError,
    pack_pretrained_dir,
    read_index,
    resolve_source,
)
from espnet2.ualm.pretrained.load import is_hub_id
from espnet2.ualm.pretrained.model_card import RESULTS_HEADING, add_results_to_card
from espnet2.ualm.text.tokenizer import load_text_tokenizer
from espnet2.ualm.tokens.sequence import SequenceBuilder

CAPTIONS = ["three high beeps", "one low beep"]


def test_layout_has_every_part_and_no_pickle(packed_dir):
    files = read_index(packed_dir)
    assert files.codec_model_dir and files.decode_config
    assert files.enhancer_config is None
    names = [n for _, _, fs in os.walk(packed_dir) for n in fs]
    assert not [n for n in names if n.endswith((".pth", ".pt", ".bin", ".pkl"))]
    conf = yaml.safe_load(open(files.model_config))
    assert "pretrained_dir" not in conf["backbone_conf"]
    card = open(os.path.join(packed_dir, "README.md")).read()
    assert card.startswith("---\n") and "library_name: espnet" in card
    assert "ualm-tiny" in card and "from_pretrained" in card


def test_weights_equal_the_checkpoint(packed_dir, experiment):
    trained, _ = UALMTask.build_model_from_file(
        experiment["train_config"], experiment["model_file"]
    )
    loaded = UALM.from_pretrained(packed_dir).model
    a, b = trained.state_dict(), loaded.state_dict()
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_from_pretrained_reproduces_the_trained_model(packed_dir, experiment):
    """Greedy replies of the packed model == those of the checkpoint."""
    model, _ = UALMTask.build_model_from_file(
        experiment["train_config"], experiment["model_file"]
    )
    tokenizer = load_text_tokenizer(experiment["text_tokenizer"])
    ualm = UALM.from_pretrained(packed_dir)
    builder = SequenceBuilder(model.vocabulary, tokenizer)
    prompts = [
        builder.build_example("text_to_audio", {"caption": c}, prompt_only=True)
        for c in CAPTIONS
    ]
    generator = UALMGenerator(model, tokenizer, ualm.codec.frame_rate)
    reference = generator.generate(prompts, ualm.settings, "audio")
    outputs = ualm.generate_audio(CAPTIONS)
    for ref, out in zip(reference, outputs):
        assert out.ok, out.error
        assert torch.equal(ref.segments[0].codes, out.codes)


def test_archive_round_trip_is_bit_identical(packed_dir, tmp_path):
    archive = pack_pretrained_dir(packed_dir, str(tmp_path / "ualm_tiny.zip"))
    with zipfile.ZipFile(archive) as z:
        names = z.namelist()
    assert "meta.yaml" in names and "ualm_tiny/ualm.yaml" in names
    from_dir = UALM.from_pretrained(packed_dir)
    from_file = UALM.from_pretrained(archive, cache_dir=str(tmp_path / "cache"))
    a, b = from_dir.generate_audio(CAPTIONS), from_file.generate_audio(CAPTIONS)
    for x, y in zip(a, b):
        assert torch.equal(x.codes, y.codes)
        assert (x.codec_audio == y.codec_audio).all()
    t1 = from_dir.speak(["hello world"])
    t2 = from_file.speak(["hello world"])
    assert torch.equal(t1[0].codes, t2[0].codes)


def test_results_go_into_the_model_card(packed_dir, tmp_path):
    results = tmp_path / "RESULTS.md"
    results.write_text("# RESULTS\n\n| task | WER |\n|---|---|\n| asr | 12.0 |\n")
    add_results_to_card(packed_dir, str(results))
    add_results_to_card(packed_dir, str(results))  # replaces, never duplicates
    card = open(os.path.join(packed_dir, "README.md")).read()
    assert card.count(RESULTS_HEADING) == 1
    assert "## RESULTS" in card and "| asr | 12.0 |" in card


def test_bad_sources_name_the_problem(tmp_path):
    with pytest.raises(PretrainedFormatError, match="no ualm.yaml"):
        resolve_source(str(tmp_path))
    bogus = tmp_path / "model.pth"
    bogus.write_bytes(b"x")
    with pytest.raises(PretrainedFormatError, match="not a packed model"):
        resolve_source(str(bogus))
    with pytest.raises(FileNotFoundError, match="not a hub id"):
        resolve_source(str(tmp_path / "missing" / "deeper" / "dir"))
    assert is_hub_id("espnet/ualm-mini") and is_hub_id("espnet/ualm-mini@v1")
    assert not is_hub_id("./exp/packed") and not is_hub_id("/abs/dir")


def test_incomplete_directory_is_refused(packed_dir, tmp_path):
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(packed_dir, broken)
    os.remove(broken / "model" / "model.safetensors")
    with pytest.raises(PretrainedFormatError, match="model.weights"):
        read_index(str(broken))
