"""Packed UALM models: gather a recipe's parts, archive, load, upload.

``write_pretrained_dir`` makes the self-contained directory (``layout.py``),
``pack_pretrained_dir`` archives it with ESPnet's ``pack``, ``load_parts``
builds everything back from a directory, an archive or a hub id, and
``upload`` sends a directory to the Hugging Face hub.
"""

from espnet2.ualm.pretrained.build import write_pretrained_dir
from espnet2.ualm.pretrained.hub import HubTokenError, download, upload
from espnet2.ualm.pretrained.layout import (
    INDEX_FILE,
    PretrainedFiles,
    PretrainedFormatError,
    read_index,
)
from espnet2.ualm.pretrained.load import PretrainedParts, load_parts, resolve_source
from espnet2.ualm.pretrained.pack import pack_pretrained_dir

__all__ = [
    "INDEX_FILE",
    "HubTokenError",
    "PretrainedFiles",
    "PretrainedFormatError",
    "PretrainedParts",
    "download",
    "load_parts",
    "pack_pretrained_dir",
    "read_index",
    "resolve_source",
    "upload",
    "write_pretrained_dir",
]
