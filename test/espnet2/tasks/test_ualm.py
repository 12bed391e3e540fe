"""UALMTask: model from a tiny config, options, and short trainings through
ESPnet's Trainer (checkpoints, plots, loss, curriculum with --init_param)."""

import argparse
import glob
import json
import os
import shutil

import pytest
import torch
import yaml

from espnet2.tasks.ualm import (
    UALMTask,
    audio_input_geometry,
    loss_as_sum,
    report_loss_per_dataset,
    valid_blend_conf,
)
from espnet2.torch_utils.load_pretrained_model import load_pretrained_model
from espnet2.torch_utils.set_all_random_seed import set_all_random_seed
from espnet2.train.distributed_utils import DistributedOption
from espnet2.train.reporter import Reporter
from espnet2.ualm.model.ualm_model import UALMModel
from espnet2.ualm.testing.tiny_corpus import (
    tiny_train_args,
    tiny_train_config,
    write_tiny_corpus,
)
from espnet2.ualm.text.tokenizer import load_text_tokenizer
from espnet2.ualm.tokens.vocabulary import UALMVocabulary
from espnet2.ualm.train.dataset import AudioInputGeometry, sources_of_batch
from espnet2.ualm.train.sampler import ROW_SEP
from espnet2.ualm.train.threads import ThreadCountFromFile


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tiny_corpus(str(tmp_path_factory.mktemp("corpus")))


def _config(tmp_path, name="train.yaml", **overrides) -> str:
    path = str(tmp_path / name)
    with open(path, "w") as f:
        yaml.safe_dump(tiny_train_config(**overrides), f)
    return path


def _args(corpus, tmp_path, *extra, **overrides):
    cmd = tiny_train_args(corpus, _config(tmp_path, **overrides), str(tmp_path / "exp"))
    args = UALMTask.get_parser().parse_args(cmd + list(extra))
    UALMTask.check_required_command_args(args)
    return args


def _reporter(output_dir) -> Reporter:
    states = torch.load(
        os.path.join(output_dir, "checkpoint.pth"),
        map_location="cpu",
        weights_only=False,
    )
    reporter = Reporter()
    reporter.load_state_dict(states["reporter"])
    return reporter


def test_build_model_from_a_tiny_config(corpus, tmp_path):
    args = _args(corpus, tmp_path)
    model = UALMTask.build_model(args)
    assert isinstance(model, UALMModel)
    vocab = UALMVocabulary.load(str(tmp_path / "exp" / "vocabulary.json"))
    assert vocab == model.vocabulary
    tokenizer = load_text_tokenizer(corpus["text_tokenizer"])
    assert (vocab.text_vocab_size, vocab.n_codebooks, vocab.codebook_size) == (
        tokenizer.vocab_size,
        3,  # from dump/codec/*/codec.json: no codec is built
        16,
    )
    assert model.backbone.get_input_embeddings().weight.shape[0] == vocab.size
    encoder = model.audio_encoder
    assert audio_input_geometry(args) == AudioInputGeometry(
        encoder.sample_rate, encoder.samples_per_frame
    )
    assert all(not p.requires_grad for p in encoder.parameters())
    assert model.cfg_dropout_prob == 0.05


def test_preference_conf_attaches_dpo_against_the_reference_file(corpus, tmp_path):
    start = UALMTask.build_model(_args(corpus, tmp_path))
    with torch.no_grad():
        start.stream_embeddings.add_(1.0)  # the reference differs from a new model
    path = str(tmp_path / "reference.pth")
    torch.save(start.state_dict(), path)
    conf = ["--preference_conf", f"reference={path}", "--preference_conf", "beta=0.3"]
    conf += ["--preference_conf", "ce_weight=0.5"]
    model = UALMTask.build_model(_args(corpus, tmp_path, *conf))
    objective = model.preference
    assert (objective.beta, objective.ce_weight) == (0.3, 0.5)
    assert torch.equal(objective.reference.stream_embeddings, start.stream_embeddings)
    assert not torch.equal(model.stream_embeddings, start.stream_embeddings)
    assert set(model.state_dict()) == set(start.state_dict())
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        UALMTask.build_model(
            _args(corpus, tmp_path, "--preference_conf", "reference=missing.pth")
        )
    with pytest.raises(ValueError, match="unknown keys \\['bta'\\]"):
        UALMTask.build_model(
            _args(corpus, tmp_path, *conf[:2], "--preference_conf", "bta=1")
        )


def test_linear_adapter_no_encoder_and_default_options(corpus, tmp_path):
    model = UALMTask.build_model(_args(corpus, tmp_path, "--audio_adapter", "linear"))
    assert isinstance(model.adapter.net, torch.nn.Linear)
    # what --print_config shows builds too
    args = _args(corpus, tmp_path)
    parser = UALMTask.get_parser()
    args.model_conf = parser.get_default("model_conf")
    args.audio_adapter_conf = {"type": "mlp", "hidden_size": None}
    assert UALMTask.build_model(args).cfg_dropout_prob == 0.0
    text_only = _args(corpus, tmp_path, "--audio_encoder", "none")
    model = UALMTask.build_model(text_only)
    assert model.audio_encoder is None and model.adapter is None


def test_alignment_trains_only_adapter_audio_rows_and_stream_embeddings(
    corpus, tmp_path
):
    model = UALMTask.build_model(
        _args(corpus, tmp_path, "--freeze_for_alignment", "true")
    )
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "stream_embeddings" in trainable
    assert any(n.startswith("adapter.") for n in trainable)
    assert not any(n.startswith("audio_encoder.") for n in trainable)
    assert not any(".layers." in n or n.endswith("norm.weight") for n in trainable)
    tables = {"backbone.model.embed_tokens.weight", "backbone.lm_head.weight"}
    assert tables <= trainable  # their text rows get zero gradient (model hook)
    assert all(
        n in tables or n == "stream_embeddings" or n.startswith("adapter.")
        for n in trainable
    )


def test_iterators_pack_bucket_and_single_dataset_validation(corpus, tmp_path):
    args = _args(corpus, tmp_path, "--valid_blend", "{epoch_tokens: 1500}")
    UALMTask.build_vocabulary(args)
    single = DistributedOption()
    valid = UALMTask.build_iter_factory(args, single, "valid")
    batches = [keys for keys, _ in valid.build_iter(1)]
    assert batches == [keys for keys, _ in valid.build_iter(2)]  # fixed
    assert all(len(sources_of_batch(keys)) == 1 for keys in batches)
    assert len({sources_of_batch(keys)[0] for keys in batches}) == 7

    train = UALMTask.build_iter_factory(args, single, "train")
    for keys, batch in train.build_iter(1):
        assert len(keys) <= 2 and batch["ids"].shape[0] == len(keys)

    args = _args(corpus, tmp_path, "--batch_mode", "bucket", "--batch_tokens", "400")
    train = UALMTask.build_iter_factory(args, single, "train")
    seen = []
    for keys, batch in train.build_iter(1):
        assert not any(ROW_SEP in k for k in keys)  # one example per row
        assert batch["ids"].shape[0] == len(keys)
        seen += keys
    manifests = glob.glob(os.path.join(corpus["manifests_train"], "tiny_*.json"))
    assert len(seen) == sum(json.load(open(m))["num_examples"] for m in manifests)


def test_train_iterator_takes_the_threads_the_file_names(corpus, tmp_path):
    threads_file = tmp_path / "lm_num_threads"
    args = _args(corpus, tmp_path, "--num_threads_file", str(threads_file))
    UALMTask.build_vocabulary(args)
    single = DistributedOption()
    assert not isinstance(
        UALMTask.build_iter_factory(args, single, "valid"), ThreadCountFromFile
    )
    train = UALMTask.build_iter_factory(args, single, "train")
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        next(iter(train.build_iter(1)))  # no file yet: unchanged
        assert torch.get_num_threads() == 1
        threads_file.write_text("2\n")
        keys, batch = next(iter(train.build_iter(2)))
        assert torch.get_num_threads() == 2 and batch["ids"].shape[0] == len(keys)
    finally:
        torch.set_num_threads(before)


def test_vocabulary_mismatch_on_resume_is_an_error(corpus, tmp_path):
    args = _args(corpus, tmp_path, "--resume", "true")
    os.makedirs(args.output_dir)
    stale = UALMVocabulary(text_vocab_size=120, n_codebooks=3, codebook_size=32)
    stale.save(os.path.join(args.output_dir, "vocabulary.json"))
    open(os.path.join(args.output_dir, "checkpoint.pth"), "w").close()
    with pytest.raises(ValueError, match="codebook_size: 32 != 16"):
        UALMTask.build_vocabulary(args)
    args.resume = False  # a fresh run replaces a stale file
    assert UALMTask.build_vocabulary(args).codebook_size == 16
    assert UALMVocabulary.load(args.output_dir).codebook_size == 16


def test_espnet_data_options_are_refused(corpus, tmp_path):
    cmd = tiny_train_args(corpus, _config(tmp_path), str(tmp_path / "exp"))
    with pytest.raises(SystemExit, match="give --train_manifest_dir"):
        UALMTask.main(cmd=cmd + ["--train_data_path_and_name_and_type", "a,b,c"])
    with pytest.raises(SystemExit, match="needs --rows_per_batch or --batch_tokens"):
        UALMTask.main(cmd=cmd + ["--rows_per_batch", "none"])


def test_two_epochs_write_checkpoints_and_the_loss_falls(corpus, tmp_path):
    # (plots: test_ualm_resume.py)
    config = _config(tmp_path, use_matplotlib=False)
    UALMTask.main(cmd=tiny_train_args(corpus, config, str(tmp_path / "exp")))
    out = tmp_path / "exp"
    for name in ("checkpoint.pth", "2epoch.pth", "valid.loss.best.pth", "config.yaml"):
        assert (out / name).exists(), name
    reporter = _reporter(out)
    assert reporter.get_epoch() == 2
    for phase in ("train", "valid"):
        first = reporter.get_value(phase, "loss", 1)
        last = reporter.get_value(phase, "loss", 2)
        assert last < first, (phase, first, last)
    # per-dataset validation loss (single-dataset validation batches)
    keys = set(reporter.get_keys2("valid"))
    assert {f"loss_tiny_sound_{t}" for t in ("text_to_audio", "audio_qa")} <= keys
    assert "loss_tiny_text_text_dialogue" in keys
    assert not any(k.startswith("loss_tiny") for k in reporter.get_keys2("train"))

    # the packed model builds without the training data (vocabulary.json)
    packed = tmp_path / "packed"
    packed.mkdir()
    with open(out / "config.yaml") as f:
        config = yaml.safe_load(f)
    config.update(train_manifest_dir="/gone", valid_manifest_dir="/gone")
    with open(packed / "config.yaml", "w") as f:
        yaml.safe_dump(config, f)
    shutil.copy(out / "vocabulary.json", packed)
    shutil.copy(out / "valid.loss.best.pth", packed / "model.pth")
    model, args = UALMTask.build_model_from_file(model_file=str(packed / "model.pth"))
    trained = torch.load(out / "valid.loss.best.pth", map_location="cpu")
    assert all(torch.equal(v, trained[k]) for k, v in model.state_dict().items())


def test_curriculum_alignment_then_unified_with_init_param(corpus, tmp_path):
    """Stage 6 trains only what alignment may; stage 7 starts from it."""
    align_conf = _config(
        tmp_path,
        "align.yaml",
        freeze_for_alignment=True,
        max_epoch=1,
        use_matplotlib=False,
    )
    align_cmd = tiny_train_args(corpus, align_conf, str(tmp_path / "align"))
    UALMTask.main(cmd=align_cmd)
    aligned = torch.load(tmp_path / "align" / "1epoch.pth", map_location="cpu")

    args = UALMTask.get_parser().parse_args(align_cmd)
    set_all_random_seed(args.seed)  # as ESPnet does before build_model
    initial = UALMTask.build_model(args).state_dict()
    vocab = UALMVocabulary.load(str(tmp_path / "align" / "vocabulary.json"))
    text = slice(vocab.text_offset, vocab.audio_offset)
    changed = {k for k in initial if not torch.equal(initial[k], aligned[k])}
    assert any(k.startswith("adapter.") for k in changed)
    assert "stream_embeddings" in changed
    assert not any(".layers." in k or k.startswith("audio_encoder.") for k in changed)
    for table in ("backbone.model.embed_tokens.weight", "backbone.lm_head.weight"):
        assert table in changed
        assert torch.equal(initial[table][text], aligned[table][text])

    # Stage 7 from the alignment checkpoint; lr 0 keeps what --init_param loaded
    unified_conf = _config(
        tmp_path,
        "unified.yaml",
        max_epoch=1,
        use_matplotlib=False,
        optim_conf={"lr": 0.0, "weight_decay": 0.0},
    )
    init = str(tmp_path / "align" / "1epoch.pth")
    UALMTask.main(
        cmd=tiny_train_args(corpus, unified_conf, str(tmp_path / "unified"))
        + ["--init_param", init]
    )
    unified = torch.load(tmp_path / "unified" / "1epoch.pth", map_location="cpu")
    assert all(torch.equal(unified[k], aligned[k]) for k in aligned)

    # a checkpoint of another vocabulary layout is refused
    model = UALMTask.build_model(UALMTask.get_parser().parse_args(align_cmd))
    aligned["vocabulary_fingerprint"] = torch.zeros_like(
        aligned["vocabulary_fingerprint"]
    )
    torch.save(aligned, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="another vocabulary layout"):
        load_pretrained_model(
            str(tmp_path / "other.pth"), model, ignore_init_mismatch=False
        )


def test_per_dataset_validation_loss_hook():
    """Single-dataset batches in evaluation get loss_<dataset>; others nothing."""
    module = torch.nn.Module()
    loss, weight = torch.tensor([2.0]), torch.tensor([5.0])
    out = (loss, {"loss": loss}, weight)
    one = {"utt_id": ["asr/u1 + asr/u2", "asr/u3"]}
    mixed = {"utt_id": ["asr/u1 + tts/u1"]}
    module.eval()
    _, stats, _ = report_loss_per_dataset(module, (), one, out)
    assert stats == {"loss": loss, "loss_asr": loss}
    assert report_loss_per_dataset(module, (), mixed, out) is None
    module.train()
    assert report_loss_per_dataset(module, (), one, out) is None


def test_deepspeed_gets_the_loss_summed_over_targets():
    """DeepSpeedTrainer divides by the all-reduced weight (ESPnet's Trainer
    multiplies by it first); the hook hands it the sum."""
    loss, weight = torch.tensor([2.0]), torch.tensor([5.0])
    summed, stats, w = loss_as_sum(None, (), {}, (loss, {"loss": loss}, weight))
    assert float(summed) == 10.0 and stats["loss"] is loss and w is weight


def _manifest(split_dir, name, dataset=None):
    """A stage-5 manifest file (only what the validation choice reads)."""
    os.makedirs(split_dir, exist_ok=True)
    m = {"name": name, "task": "asr", "data_dir": "d", "files": {}, "shape_file": "s"}
    if dataset is not None:
        m["dataset"] = dataset
    with open(os.path.join(split_dir, f"{name}.json"), "w") as f:
        json.dump(m, f)


def test_validation_takes_every_manifest_of_the_training_datasets(tmp_path, caplog):
    """ualm1's LibriSpeech: three training directories, one validation one
    (and the reverse for another corpus): matched by datasets-config entry,
    not by manifest name."""
    train, valid = str(tmp_path / "train"), str(tmp_path / "valid")
    for d in ("train_clean_100", "train_clean_360"):
        _manifest(train, f"ls_asr-{d}", "ls_asr")
    _manifest(valid, "ls_asr", "ls_asr")
    _manifest(train, "caps_tta", "caps_tta")
    for d in ("val_a", "val_b"):
        _manifest(valid, f"caps_tta-{d}", "caps_tta")
    _manifest(train, "only_train", "only_train")
    _manifest(valid, "not_trained", "not_trained")
    _manifest(train, "old_style")  # written before manifests named their dataset
    _manifest(valid, "old_style")
    args = argparse.Namespace(
        blend=None, valid_blend=None, train_manifest_dir=train, valid_manifest_dir=valid
    )
    conf = valid_blend_conf(args)
    assert [e["name"] for e in conf["datasets"]] == [
        "caps_tta-val_a",
        "caps_tta-val_b",
        "ls_asr",
        "old_style",
    ]
    assert "no validation manifests for ['only_train']" in caplog.text
