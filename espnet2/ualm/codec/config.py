"""Codec configuration files: ``{codec: <name>, codec_conf: {...}}`` YAML.

Recipes keep one such file (``conf/codec.yaml``); every stage builds the codec
from it, so the geometry (sample rate, frame rate, codebooks) is read from the
codec object and never repeated in scripts.
"""

from typing import Optional

from espnet2.ualm.codec.abs_codec import AbsCodec
from espnet2.ualm.data.safe_io import read_yaml


def load_codec_config(path: str) -> dict:
    conf = read_yaml(path) or {}
    if not isinstance(conf, dict) or "codec" not in conf:
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
