"""Codec configuration files: ``{codec: <name>, codec_conf: {...}}`` YAML.

Recipes keep one such file (``conf/codec.yaml``); every stage builds the codec
from it, so the geometry (sample rate, frame rate, codebooks) is read from the
codec object and never repeated in scripts.
"""

from typing import Optional

import yaml

from espnet2.ualm.codec.abs_codec import AbsCodec


def load_codec_config(path: str) -> dict:
    with open(path, encoding="utf-8") as f:
        conf = yaml.safe_load(f) or {}
    if "codec" not in conf:
        raise ValueError(f"{path}: no 'codec:' entry (the codec's registered name)")
    conf.setdefault("codec_conf", {})
    return conf


def codec_from_config(path: str, model_dir: Optional[str] = None) -> AbsCodec:
    """Builds the codec of a config file; ``model_dir`` overrides the config's."""
    from espnet2.ualm.codec import build_codec

    conf = load_codec_config(path)
    codec_conf = dict(conf["codec_conf"])
    if model_dir is not None:
        codec_conf["model_dir"] = model_dir
    return build_codec(conf["codec"], codec_conf)
