"""Audio <-> discrete codes.

``codec_choices`` lets a task pick a codec by name
(``--codec xcodec --codec_conf model_dir=...``); ``build_codec`` does the same
from Python. Every codec implements :class:`AbsCodec`, and its geometry
(sample rate, frame rate, codebooks) is read from it, never hard-coded.
"""

from typing import Any, Dict, Optional

from espnet2.train.class_choices import ClassChoices
from espnet2.ualm.codec.abs_codec import AbsCodec
from espnet2.ualm.codec.spec_rvq import SpecRVQCodec
from espnet2.ualm.codec.xcodec import XcodecCodec

codec_choices = ClassChoices(
    name="codec",
    classes=dict(xcodec=XcodecCodec, spec_rvq=SpecRVQCodec),
    type_check=AbsCodec,
    default="xcodec",
)


def build_codec(name: str, conf: Optional[Dict[str, Any]] = None) -> AbsCodec:
    """The codec registered as ``name``, built with keyword arguments ``conf``."""
    return codec_choices.get_class(name)(**(conf or {}))


__all__ = [
    "AbsCodec",
    "SpecRVQCodec",
    "XcodecCodec",
    "build_codec",
    "codec_choices",
]
