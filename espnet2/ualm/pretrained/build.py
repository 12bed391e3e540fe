"""Gathers a recipe's trained parts into the packed layout (``layout.py``)."""

import logging
import os
import shutil
from typing import Any, Dict, Optional

import yaml

from espnet2.ualm.pretrained.layout import (
    copy_text_tokenizer,
    portable_model_config,
    save_weights,
    write_index,
)
from espnet2.ualm.pretrained.model_card import write_model_card


def write_pretrained_dir(
    out_dir: str,
    train_config: str,
    model_file: str,
    text_tokenizer: str,
    codec_config: str,
    codec_model_dir: Optional[str] = None,
    enhancer_exp: Optional[str] = None,
    enhancer_checkpoint: Optional[str] = None,
    decode_config: Optional[str] = None,
    results: Optional[str] = None,
    model_name: str = "ualm",
) -> str:
    """Writes the packed layout of one trained model into ``out_dir``.

    ``train_config`` / ``model_file``: the UALM training run's
    ``config.yaml`` and checkpoint (``valid.loss.best.pth``), whose
    ``vocabulary.json`` lies beside the config. ``codec_model_dir``: the
    fitted codec (a trainable codec's ``exp/codec``), else the config's own
    ``model_dir`` is copied if it has one. ``enhancer_exp``: a trained
    enhancer's experiment dir (optional). ``results``: a RESULTS.md whose
    tables go into the model card. Returns ``out_dir``.
    """
    from espnet2.tasks.ualm import UALMTask

    if os.path.exists(out_dir):
        shutil.rmtree(out_dir)
    os.makedirs(os.path.join(out_dir, "model"))
    logging.info(f"building the model of {train_config} with {model_file}")
    model, args = UALMTask.build_model_from_file(train_config, model_file)
    with open(train_config, encoding="utf-8") as f:
        train_conf = yaml.safe_load(f)
    model_conf = portable_model_config(train_conf, model)
    with open(os.path.join(out_dir, "model", "config.yaml"), "w") as f:
        yaml.safe_dump(model_conf, f, sort_keys=False)
    model.vocabulary.save(os.path.join(out_dir, "model", "vocabulary.json"))
    save_weights(model, os.path.join(out_dir, "model", "model.safetensors"))

    copy_text_tokenizer(text_tokenizer, os.path.join(out_dir, "text_tokenizer"))
    has_codec_dir = _copy_codec(codec_config, codec_model_dir, out_dir)
    has_enhancer = False
    if enhancer_exp:
        _write_enhancer(enhancer_exp, enhancer_checkpoint, out_dir)
        has_enhancer = True
    if decode_config:
        shutil.copy(decode_config, os.path.join(out_dir, "decode.yaml"))
    write_index(out_dir, has_codec_dir, has_enhancer, bool(decode_config))
    write_model_card(
        out_dir,
        model_name=model_name,
        model=model,
        train_config=train_conf,
        results=results,
        enhancer=has_enhancer,
    )
    return out_dir


def _copy_codec(codec_config: str, model_dir: Optional[str], out_dir: str) -> bool:
    with open(codec_config, encoding="utf-8") as f:
        conf: Dict[str, Any] = yaml.safe_load(f) or {}
    codec_conf = dict(conf.get("codec_conf") or {})
    model_dir = model_dir or codec_conf.pop("model_dir", None)
    codec_conf.pop("model_dir", None)
    os.makedirs(os.path.join(out_dir, "codec"))
    with open(os.path.join(out_dir, "codec", "codec.yaml"), "w") as f:
        yaml.safe_dump({"codec": conf["codec"], "codec_conf": codec_conf}, f)
    if model_dir is None:
        return False
    if not os.path.isdir(model_dir):
        raise FileNotFoundError(f"codec model directory {model_dir} not found")
    shutil.copytree(
        model_dir,
        os.path.join(out_dir, "codec", "model"),
        ignore=shutil.ignore_patterns("log", "*.log", "images"),
    )
    return True


def _write_enhancer(exp_dir: str, checkpoint: Optional[str], out_dir: str) -> None:
    """The enhancer's generator only (name, config, safetensors weights)."""
    from espnet2.tasks.ualm_enhancer import load_enhancer

    enhancer = load_enhancer(exp_dir, checkpoint)
    with open(os.path.join(exp_dir, "config.yaml"), encoding="utf-8") as f:
        conf = yaml.safe_load(f)
    os.makedirs(os.path.join(out_dir, "enhancer"))
    with open(os.path.join(out_dir, "enhancer", "enhancer.yaml"), "w") as f:
        yaml.safe_dump(
            {"enhancer": conf["enhancer"], "enhancer_conf": conf["enhancer_conf"]}, f
        )
    save_weights(enhancer, os.path.join(out_dir, "enhancer", "model.safetensors"))
