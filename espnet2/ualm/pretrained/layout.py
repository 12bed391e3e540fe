"""The layout of a packed UALM model: one self-contained directory.

A recipe's trained model is spread over the experiment tree (training
``config.yaml`` and checkpoint, ``vocabulary.json``, the stage-3 text
tokenizer, the codec config and fitted weights, the enhancer's experiment);
:func:`write_pretrained_dir` gathers them into::

    ualm.yaml                 index: what is where (this module's format)
    README.md                 model card
    model/config.yaml         how to build the model, without any other file
    model/model.safetensors   weights (safetensors: no pickle is ever loaded)
    model/vocabulary.json     the token layout (espnet2.ualm.tokens.vocabulary)
    text_tokenizer/           the stage-3 tokenizer (sentencepiece or HF files)
    codec/codec.yaml          {codec: name, codec_conf: {...}}
    codec/model/              the codec's own checkpoint directory, if any
    enhancer/enhancer.yaml    {enhancer: name, enhancer_conf: {...}} (optional)
    enhancer/model.safetensors
    decode.yaml               the recipe's decoding settings (optional)
    task_templates.yaml       the model's own templates and tasks (optional:
                              an import's, ``speechlm.py``)

``ualm.yaml`` records the sha256 of every file but itself, the model card and
the YAML settings (``sha256:``, path -> hex digest), and loading checks them
(:func:`verify_digests`), so a corrupted or swapped weight, codec or
tokenizer file is refused by name.

The same directory is what ``pack.py`` archives with ESPnet's ``pack`` and
what ``hub.py`` uploads to the Hugging Face hub; :func:`read_index` is how
every loader finds its files. A backbone or encoder that was initialised from
a pretrained checkpoint is written as its HF config (``config:``), so loading
never needs the original Qwen2.5 / Whisper directories.
"""

import dataclasses
import logging
import os
import shutil
from typing import Any, Dict, List, Optional

import torch
import yaml

from espnet2.ualm.data.safe_io import FileFormatError, is_within, read_yaml, sha256_of

INDEX_FILE = "ualm.yaml"
FORMAT = "ualm-pretrained/1"
CARD_FILE = "README.md"
# not digested: plain settings (read with safe_load, may be edited), the
# model card (results are added after packing), hidden files (the hub's
# .gitattributes)
UNDIGESTED_SUFFIXES = (".yaml", ".yml")


class PretrainedFormatError(FileFormatError):
    """A directory or archive is not a packed UALM model; names the file."""


@dataclasses.dataclass(frozen=True)
class PretrainedFiles:
    """Absolute paths of one packed model's parts (from its ``ualm.yaml``)."""

    root: str
    model_config: str
    model_weights: str
    vocabulary: str
    text_tokenizer: str
    codec_config: str
    codec_model_dir: Optional[str]
    enhancer_config: Optional[str]
    enhancer_weights: Optional[str]
    decode_config: Optional[str]
    # the model's own task file (``tokens/tasks.py`` format; an import's
    # templates and tasks), added to the registry the model is used with
    task_templates: Optional[str] = None
    # relative path -> sha256; None: packed before digests were recorded
    sha256: Optional[Dict[str, str]] = None


def read_index(root: str) -> PretrainedFiles:
    """The parts of the packed model in directory ``root``; checks they exist."""
    path = os.path.join(root, INDEX_FILE)
    if not os.path.isfile(path):
        raise PretrainedFormatError(
            f"{root}: no {INDEX_FILE}; not a packed UALM model (make one with "
            "espnet2.bin.ualm_pack)"
        )
    index = read_yaml(path) or {}
    if not isinstance(index, dict):
        raise PretrainedFormatError(f"{path}: not a mapping")
    if index.get("format") != FORMAT:
        raise PretrainedFormatError(
            f"{path}: format {index.get('format')!r}, this version reads {FORMAT!r}"
        )
    digests = index.get("sha256")
    if digests is not None and not isinstance(digests, dict):
        raise PretrainedFormatError(f"{path}: sha256 is not a mapping path -> digest")

    def part(*keys: str, required: bool = True) -> Optional[str]:
        value: Any = index
        for key in keys:
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            if required:
                raise PretrainedFormatError(f"{path}: no entry {'.'.join(keys)}")
            return None
        full = os.path.join(root, str(value))
        if not is_within(full, root):
            raise PretrainedFormatError(
                f"{path}: {'.'.join(keys)} = {value} lies outside {root}"
            )
        if not os.path.exists(full):
            raise PretrainedFormatError(f"{path}: {'.'.join(keys)} = {full} is missing")
        return full

    return PretrainedFiles(
        root=os.path.abspath(root),
        model_config=part("model", "config"),
        model_weights=part("model", "weights"),
        vocabulary=part("model", "vocabulary"),
        text_tokenizer=part("text_tokenizer"),
        codec_config=part("codec", "config"),
        codec_model_dir=part("codec", "model_dir", required=False),
        enhancer_config=part("enhancer", "config", required=False),
        enhancer_weights=part("enhancer", "weights", required=False),
        decode_config=part("decode", required=False),
        task_templates=part("task_templates", required=False),
        sha256=digests,
    )


def digested_files(root: str) -> List[str]:
    """Relative paths (``/``-separated, sorted) of the files whose sha256 the
    index records: all but the index, the card, YAML settings, hidden files."""
    out = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in names:
            rel = os.path.relpath(os.path.join(folder, name), root)
            if (
                name.startswith(".")
                or rel in (INDEX_FILE, CARD_FILE)
                or name.endswith(UNDIGESTED_SUFFIXES)
            ):
                continue
            out.append(rel.replace(os.sep, "/"))
    return sorted(out)


def verify_digests(files: PretrainedFiles) -> None:
    """Checks every file against its sha256 in the index (an error names the
    file); files without a digest (a directory packed before digests were
    recorded, or added after packing) are loaded with a warning naming them."""
    root, index = files.root, os.path.join(files.root, INDEX_FILE)
    digests = files.sha256 or {}
    for rel, expected in sorted(digests.items()):
        path = os.path.join(root, rel)
        if not is_within(path, root):
            raise PretrainedFormatError(f"{index}: sha256 entry {rel} lies outside")
        if not os.path.isfile(path):
            raise PretrainedFormatError(f"{index}: {rel} has a sha256 but is missing")
        if sha256_of(path) != expected:
            raise PretrainedFormatError(
                f"{path}: sha256 differs from the one in {index}: the file is "
                "corrupted or was replaced after packing"
            )
    unverified = [rel for rel in digested_files(root) if rel not in digests]
    if unverified:
        why = "has no sha256 digests" if not digests else "has no sha256 for"
        logging.warning(
            f"{index} {why} (packed by an older version or edited): not verified: "
            f"{', '.join(unverified)}"
        )


def portable_model_config(train_config: Dict[str, Any], model) -> Dict[str, Any]:
    """The model-building keys of a training config, with every
    ``pretrained_dir`` replaced by the built module's config (the weights
    come from the packed state dict)."""
    from espnet2.ualm.model.factory import model_config_of

    conf = model_config_of(train_config)
    backbone = dict(conf.get("backbone_conf") or {})
    if backbone.pop("pretrained_dir", None) is not None:
        hf = model.backbone.config.to_dict()
        for key in ("architectures", "transformers_version", "_name_or_path"):
            hf.pop(key, None)
        backbone["config"] = hf
    backbone.pop("gradient_checkpointing", None)  # a training-time setting
    conf["backbone_conf"] = backbone
    encoder_conf = dict(conf.get("audio_encoder_conf") or {})
    if encoder_conf.pop("pretrained_dir", None) is not None:
        encoder = model.audio_encoder
        whisper = encoder.encoder.config.to_dict()
        for key in ("architectures", "transformers_version", "_name_or_path"):
            whisper.pop(key, None)
        encoder_conf.update(
            config=whisper,
            sample_rate=encoder.sample_rate,
            hop_length=encoder.hop_length,
            n_fft=encoder.n_fft,
        )
    conf["audio_encoder_conf"] = encoder_conf or None
    return conf


def save_weights(module: torch.nn.Module, path: str) -> None:
    """``module``'s state in safetensors (shared tensors, e.g. tied
    embeddings, stored once)."""
    from safetensors.torch import save_model

    save_model(module, path)


def load_weights(module: torch.nn.Module, path: str) -> None:
    """Loads safetensors weights into ``module``; every key must match."""
    from safetensors import SafetensorError
    from safetensors.torch import load_model

    try:
        missing, unexpected = load_model(module, path, strict=False)
    except (SafetensorError, OSError) as e:
        raise PretrainedFormatError(
            f"{path}: not a readable safetensors file: {e}"
        ) from e
    if missing or unexpected:
        raise PretrainedFormatError(
            f"{path}: weights do not fit the model built from its config "
            f"(missing {sorted(missing)[:5]}, unexpected {sorted(unexpected)[:5]})"
        )


def copy_text_tokenizer(src: str, dst: str) -> None:
    """The stage-3 tokenizer into ``dst``; an HF pointer becomes the HF files."""
    from espnet2.ualm.text.tokenizer import CONFIG_NAME

    config = os.path.join(src, CONFIG_NAME)
    conf = {}
    if os.path.isfile(config):
        with open(config, encoding="utf-8") as f:
            conf = yaml.safe_load(f) or {}
    if conf.get("type") == "hf":
        src = conf["dir"]
    elif not os.path.isdir(src):
        raise FileNotFoundError(f"text tokenizer directory {src} not found")
    shutil.copytree(
        src,
        dst,
        ignore=shutil.ignore_patterns("train_text.txt", "*.safetensors", "*.bin"),
        dirs_exist_ok=True,
    )
    if conf.get("type") == "hf":  # the copied files are read directly
        stale = os.path.join(dst, CONFIG_NAME)
        if os.path.exists(stale):
            os.remove(stale)


def write_index(
    root: str,
    codec_model_dir: bool,
    enhancer: bool,
    decode: bool,
    extra: Optional[Dict[str, Any]] = None,
) -> str:
    """Writes ``ualm.yaml`` for the parts present under ``root``, with the
    sha256 of every file :func:`digested_files` lists (write it last)."""
    index: Dict[str, Any] = {
        "format": FORMAT,
        "model": {
            "config": "model/config.yaml",
            "weights": "model/model.safetensors",
            "vocabulary": "model/vocabulary.json",
        },
        "text_tokenizer": "text_tokenizer",
        "codec": {"config": "codec/codec.yaml"},
    }
    if codec_model_dir:
        index["codec"]["model_dir"] = "codec/model"
    if enhancer:
        index["enhancer"] = {
            "config": "enhancer/enhancer.yaml",
            "weights": "enhancer/model.safetensors",
        }
    if decode:
        index["decode"] = "decode.yaml"
    index.update(extra or {})
    index["sha256"] = {
        rel: sha256_of(os.path.join(root, rel)) for rel in digested_files(root)
    }
    path = os.path.join(root, INDEX_FILE)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(index, f, sort_keys=False)
    return path
