"""Loading a packed UALM model from a directory, an archive or the hub.

Only safetensors weights and YAML/JSON configs are read: no pickle, no remote
code (``trust_remote_code`` is never set), so a downloaded model cannot run
code on the user's machine.
"""

import dataclasses
import hashlib
import logging
import os
from typing import Any, Dict, Optional

import torch
import yaml

from espnet2.ualm.pretrained.layout import (
    INDEX_FILE,
    PretrainedFiles,
    PretrainedFormatError,
    load_weights,
    read_index,
)

ARCHIVE_SUFFIXES = (".zip", ".tar", ".tar.gz", ".tgz")
DEFAULT_CACHE = os.path.join(
    os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "ualm"
)


def is_hub_id(source: str) -> bool:
    """``owner/name`` (optionally ``@revision``) that is not a local path."""
    name = source.split("@", 1)[0]
    parts = name.split("/")
    return (
        len(parts) == 2
        and all(parts)
        and not os.path.exists(source)
        and not name.startswith((".", "/", "~"))
    )


def resolve_source(
    source: str,
    cache_dir: Optional[str] = None,
    local_files_only: bool = False,
) -> str:
    """The packed-model directory of ``source``: a directory, an archive
    (unpacked once into ``cache_dir``) or a hub id ``owner/name[@revision]``
    (downloaded with huggingface_hub)."""
    source = os.fspath(source)
    cache_dir = cache_dir or DEFAULT_CACHE
    if os.path.isdir(source):
        read_index(source)
        return source
    if os.path.isfile(source):
        if not source.endswith(ARCHIVE_SUFFIXES):
            raise PretrainedFormatError(
                f"{source}: not a packed model (expected a directory or an archive "
                f"ending in {ARCHIVE_SUFFIXES})"
            )
        return unpack_archive(source, cache_dir)
    if is_hub_id(source):
        from espnet2.ualm.pretrained.hub import download

        return download(source, cache_dir=cache_dir, local_files_only=local_files_only)
    raise FileNotFoundError(
        f"{source}: no such directory or archive, and not a hub id (owner/name)"
    )


def unpack_archive(archive: str, cache_dir: str) -> str:
    """Unpacks an archive of ``espnet2.bin.ualm_pack`` (ESPnet's ``unpack``)
    into a cache directory keyed by its size and modification time."""
    from espnet2.main_funcs.pack_funcs import unpack

    stat = os.stat(archive)
    key = hashlib.sha1(
        f"{os.path.abspath(archive)}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    ).hexdigest()[:16]
    out = os.path.join(cache_dir, "unpacked", key)
    try:
        files = unpack(archive, out)
    except (RuntimeError, OSError, KeyError) as e:
        raise PretrainedFormatError(f"{archive}: cannot unpack: {e}") from e
    if "ualm_index" not in files:
        raise PretrainedFormatError(f"{archive}: no ualm_index in its meta.yaml")
    root = os.path.dirname(files["ualm_index"])
    if os.path.basename(files["ualm_index"]) != INDEX_FILE:
        raise PretrainedFormatError(f"{archive}: ualm_index is not {INDEX_FILE}")
    return root


@dataclasses.dataclass
class PretrainedParts:
    """Everything inference needs, built from a packed model."""

    files: PretrainedFiles
    model: Any  # UALMModel
    tokenizer: Any  # TextTokenizer
    codec: Any  # AbsCodec
    enhancer: Optional[Any]  # AbsEnhancer
    decode: Dict[str, Any]


def build_model(files: PretrainedFiles, device: str = "cpu"):
    """The UALM model of a packed directory, weights loaded, in eval mode.

    Built by ``build_model_from_config``, as in training, so a bad config is
    refused with training's message, prefixed with the file's path.
    """
    from espnet2.ualm.model.factory import build_model_from_config
    from espnet2.ualm.tokens.vocabulary import UALMVocabulary

    with open(files.model_config, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    vocab = UALMVocabulary.load(files.vocabulary)
    with torch.device("cpu"):
        try:
            model = build_model_from_config(conf, vocab)
        except ValueError as e:
            raise PretrainedFormatError(f"{files.model_config}: {e}") from e
    load_weights(model, files.model_weights)
    return model.to(device).eval()


def build_enhancer(files: PretrainedFiles, device: str = "cpu"):
    from espnet2.ualm.enhancer import enhancer_choices

    with open(files.enhancer_config, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    enhancer = enhancer_choices.get_class(conf["enhancer"])(
        **(conf.get("enhancer_conf") or {})
    )
    if files.enhancer_weights:
        load_weights(enhancer, files.enhancer_weights)
    return enhancer.to(device).eval()


def load_parts(
    source: str,
    device: str = "cpu",
    cache_dir: Optional[str] = None,
    local_files_only: bool = False,
    with_enhancer: bool = True,
) -> PretrainedParts:
    """Model, tokenizer, codec, enhancer and decoding settings of ``source``."""
    from espnet2.ualm.codec.config import codec_from_config
    from espnet2.ualm.text.tokenizer import load_text_tokenizer

    root = resolve_source(source, cache_dir, local_files_only)
    files = read_index(root)
    logging.info(f"loading UALM from {root}")
    model = build_model(files, device)
    tokenizer = load_text_tokenizer(files.text_tokenizer)
    codec = codec_from_config(files.codec_config, files.codec_model_dir).eval()
    codec.to(device)
    enhancer = None
    if with_enhancer and files.enhancer_config:
        enhancer = build_enhancer(files, device)
    decode: Dict[str, Any] = {}
    if files.decode_config:
        with open(files.decode_config, encoding="utf-8") as f:
            decode = yaml.safe_load(f) or {}
    return PretrainedParts(files, model, tokenizer, codec, enhancer, decode)
