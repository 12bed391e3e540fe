"""The training configs of egs2/ualm/*/conf parse, pair up, and build their model.

GPU configs name local Qwen2.5 / Whisper checkpoints and flash-attention-2;
here their backbone and encoder are tiny stand-ins saved in the same format
(same loading code, every other option kept) and attention is sdpa (no
flash-attn on a CPU). The DeepSpeed JSONs are checked for what ESPnet's
DeepSpeedTrainer reads (``json.load``, the dtype from ``bf16``) and what
DeepSpeed needs when ESPnet passes no optimizer (``optimizer``, batch sizes).
"""

import glob
import json
import os

import pytest
import torch
import yaml

from espnet2.tasks.ualm import UALMTask
from espnet2.train.deepspeed_trainer import DeepSpeedTrainer
from espnet2.train.distributed_utils import DistributedOption
from espnet2.ualm.model.factory import MODEL_CONFIG_KEYS, with_model_of
from espnet2.ualm.testing.tiny_corpus import tiny_train_args, write_tiny_corpus
from espnet2.ualm.testing.tiny_model import save_tiny_qwen2, save_tiny_whisper

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))
ALL_CONFIGS = sorted(
    glob.glob(os.path.join(ROOT, "egs2", "ualm", "*", "conf", "train_*.yaml"))
)
# post-training configs (stages 15-16, 19, 21) hold training keys only: ualm.sh
# completes them with stage 7's model part (factory.with_model_of)
POST = (
    "train_winners.yaml",
    "train_dpo.yaml",
    "train_dpo_ce2.yaml",
    "train_reason.yaml",
    "train_reflect.yaml",
)
POST_CONFIGS = [c for c in ALL_CONFIGS if os.path.basename(c) in POST]
CONFIGS = [c for c in ALL_CONFIGS if c not in POST_CONFIGS]
GPU_CONFIGS = [c for c in CONFIGS if "/ualm1/" in c]
DEEPSPEED = sorted(glob.glob(os.path.join(ROOT, "egs2", "ualm", "*", "conf", "*.json")))


def _name(path: str) -> str:
    return os.path.relpath(path, os.path.join(ROOT, "egs2", "ualm"))


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_tiny_corpus(str(tmp_path_factory.mktemp("corpus")))


@pytest.fixture(scope="module")
def stand_ins(tmp_path_factory):
    """Tiny checkpoints in the released formats (untied and tied heads)."""
    root = tmp_path_factory.mktemp("stand_ins")
    rows = 128  # at least the tiny corpus tokenizer's 120 ids
    return {
        "untied": save_tiny_qwen2(str(root / "qwen_untied"), vocab_size=rows),
        "tied": save_tiny_qwen2(
            str(root / "qwen_tied"), vocab_size=rows, tie_word_embeddings=True
        ),
        "whisper": save_tiny_whisper(str(root / "whisper")),
    }


@pytest.fixture
def completed(request, tmp_path):
    """A post-training config completed as ualm.sh does, with the model part
    of its setup's unified config."""
    config = request.param
    conf_dir = os.path.dirname(config)
    unified = sorted(glob.glob(os.path.join(conf_dir, "train_unified*.yaml")))
    unified = [u for u in unified if "_fast" not in u][0]
    with open(config) as f, open(unified) as g:
        merged = with_model_of(yaml.safe_load(f), yaml.safe_load(g))
    path = tmp_path / os.path.basename(config)
    path.write_text(yaml.safe_dump(merged))
    return str(path), config


def _parse(config, corpus, tmp_path, *extra):
    cmd = tiny_train_args(corpus, config, str(tmp_path / "exp")) + list(extra)
    args = UALMTask.get_parser().parse_args(cmd)
    # the recipes' datasets are not in the tiny corpus: use all of its manifests
    args.blend = {k: v for k, v in args.blend.items() if k == "epoch_tokens"}
    args.valid_blend = {}
    return args


def test_there_are_configs():
    names = {_name(c) for c in CONFIGS}
    for stage in ("align", "unified"):
        assert f"mini/conf/train_{stage}.yaml" in names
        assert f"mini/conf/train_{stage}_fast.yaml" in names
        for size in ("1.5b", "7b"):
            assert f"ualm1/conf/train_{stage}_qwen2.5_{size}.yaml" in names
    assert {os.path.basename(d) for d in DEEPSPEED} >= {
        f"deepspeed_zero{s}.json" for s in (1, 2, 3)
    }


@pytest.mark.parametrize("config", CONFIGS, ids=_name)
def test_config_parses_and_passes_the_task_checks(config, corpus, tmp_path):
    cmd = tiny_train_args(corpus, config, str(tmp_path / "exp"))
    args = UALMTask.get_parser().parse_args(cmd)
    UALMTask.check_required_command_args(args)
    assert args.freeze_for_alignment == ("train_align" in config)
    if config in GPU_CONFIGS:
        conf = args.backbone_conf
        assert conf["attn_implementation"] == "flash_attention_2"
        assert conf["dtype"] == "bfloat16" and conf["gradient_checkpointing"]
        assert "pretrained_dir" in conf and "pretrained_dir" in args.audio_encoder_conf
        assert args.model_conf["cfg_dropout_prob"] == 0.05
        if "unified" in config:  # release hyper-parameters (ESPnet's Trainer)
            assert args.optim_conf["lr"] == 1e-4
            assert args.optim_conf["betas"] == [0.9, 0.95]
            assert args.optim_conf["weight_decay"] == 3e-7
            assert args.grad_clip == 1.0


@pytest.mark.parametrize(
    "align", [c for c in CONFIGS if "train_align" in os.path.basename(c)], ids=_name
)
def test_alignment_and_unified_configs_share_the_model(align, corpus, tmp_path):
    """--init_param loads the alignment checkpoint into the unified model."""
    unified = align.replace("train_align", "train_unified")
    a = vars(_parse(align, corpus, tmp_path))
    u = vars(_parse(unified, corpus, tmp_path))
    # keys that change training, not the model the checkpoint holds
    training_only = {"audio_encoder_conf": "freeze", "model_conf": "cfg_dropout_prob"}
    for key in MODEL_CONFIG_KEYS:
        if key in training_only:
            drop = training_only[key]
            a[key] = {k: v for k, v in (a[key] or {}).items() if k != drop}
            u[key] = {k: v for k, v in (u[key] or {}).items() if k != drop}
        assert a[key] == u[key], key


@pytest.mark.parametrize("config", CONFIGS, ids=_name)
def test_config_builds_and_trains_with_tiny_stand_ins(
    config, corpus, stand_ins, tmp_path
):
    # one small batch: this is about the model, the batch options parse above
    small = ["--num_workers", "0", "--max_tokens_per_row", "256"]
    args = _parse(config, corpus, tmp_path, *small, "--rows_per_batch", "2")
    backbone = args.backbone_conf
    if "pretrained_dir" in backbone:
        tied = "1.5b" in config  # Qwen2.5-1.5B ties its head, 7B does not
        backbone["pretrained_dir"] = stand_ins["tied" if tied else "untied"]
        backbone["attn_implementation"] = "sdpa"
    encoder = args.audio_encoder_conf
    if "pretrained_dir" in encoder:
        encoder["pretrained_dir"] = stand_ins["whisper"]
    model = UALMTask.build_model(args)
    model.to(torch.float32)  # what ESPnet does (--train_dtype float32)
    lm = model.backbone
    assert lm.is_gradient_checkpointing == bool(backbone.get("gradient_checkpointing"))
    if config in GPU_CONFIGS:
        assert lm.config.tie_word_embeddings == ("1.5b" in config)

    factory = UALMTask.build_iter_factory(args, DistributedOption(), "train")
    keys, batch = next(iter(factory.build_iter(1)))
    model.train()
    loss, stats, weight = model(**batch, utt_id=keys)
    assert torch.isfinite(loss).all() and weight > 0
    loss.sum().backward()
    trained = {n for n, p in model.named_parameters() if p.grad is not None}
    # the encoder trains only where its config says so (the mini's random one)
    encoder_trains = not (encoder or {}).get("freeze", True)
    assert any(n.startswith("audio_encoder.") for n in trained) == encoder_trains
    layers = any(".layers." in n for n in trained)
    assert layers != args.freeze_for_alignment


@pytest.mark.parametrize("path", DEEPSPEED, ids=_name)
def test_deepspeed_config_is_what_espnet_and_deepspeed_read(path):
    with open(path) as f:
        conf = json.load(f)  # DeepSpeedTrainer reads it with json.load
    assert DeepSpeedTrainer.setup_data_dtype(conf) == torch.bfloat16
    assert conf["bf16"]["enabled"] is True and "fp16" not in conf
    assert conf["zero_optimization"]["stage"] in (1, 2, 3)
    # ESPnet feeds one of its batches per step and passes no optimizer
    assert conf["train_micro_batch_size_per_gpu"] == 1
    assert conf["gradient_accumulation_steps"] == 1
    assert conf["optimizer"]["type"] == "AdamW"
    assert conf["gradient_clipping"] == 1.0
    assert conf["scheduler"]["type"] == "WarmupCosineLR"
    params = conf["optimizer"]["params"]
    if "align" in os.path.basename(path):
        assert params["weight_decay"] == 0.0  # frozen text rows share the table
    else:
        assert params["lr"] == 1e-4 and params["betas"] == [0.9, 0.95]
        assert conf["scheduler"]["params"]["warmup_num_steps"] == 2000
        assert conf["scheduler"]["params"]["total_num_steps"] == 500000


def test_deepspeed_accepts_the_configs():
    """DeepSpeed's own parser, where DeepSpeed is installed (GPU extras)."""
    config_module = pytest.importorskip("deepspeed.runtime.config")
    for path in DEEPSPEED:
        with open(path) as f:
            config_module.DeepSpeedConfig(json.load(f), mpu=None)


@pytest.mark.parametrize("completed", POST_CONFIGS, ids=_name, indirect=True)
def test_post_training_configs_take_the_unified_model(completed, corpus, tmp_path):
    path, config = completed
    args = _parse(path, corpus, tmp_path, "--num_workers", "0")
    UALMTask.check_required_command_args(args)
    with open(config) as f:
        own = yaml.safe_load(f)
    assert not set(own) & set(MODEL_CONFIG_KEYS) - {"model_conf"}
    assert args.backbone == "hf_causal_lm" and args.backbone_conf
    assert bool(args.preference_conf) == ("train_dpo" in config)
    with pytest.raises(ValueError, match="backbone"):
        with_model_of({"backbone": "x"}, {})
