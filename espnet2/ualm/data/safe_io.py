"""Reading configs, weights and checkpoints without running code.

YAML is read with ``safe_load`` (no Python objects), weights from safetensors,
torch checkpoints with ``weights_only=True`` (tensors and plain containers,
never an arbitrary pickled object). A file that cannot be read raises
:class:`FileFormatError` whose message starts with the file's path, so a
broken file among many is found from the message alone.
"""

import hashlib
import json
import os
import pickle
from typing import Any, Dict, Iterable

import torch
import yaml


class FileFormatError(ValueError):
    """A file is not what it should be; the message starts with its path."""


def read_yaml(path: str) -> Any:
    """The content of a YAML file (``safe_load``); ``None`` for an empty one."""
    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise FileFormatError(f"{path}: not valid YAML: {e}") from e


def read_json(path: str) -> Any:
    """The content of a JSON file."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise FileFormatError(f"{path}: not valid JSON: {e}") from e


def read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    """Every tensor of a safetensors file (on the CPU)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(path)
    except (SafetensorError, OSError, RuntimeError) as e:
        raise FileFormatError(f"{path}: not a readable safetensors file: {e}") from e


def plain_value_globals() -> list:
    """What ESPnet's reporter statistics need from ``weights_only`` loading:
    numpy scalars (constructor and dtypes) and ``datetime.timedelta``, which
    build values and run no code (torch's documented way to allow them)."""
    import datetime

    import numpy as np

    multiarray = getattr(np, "_core", None) or np.core
    dtypes = [type(np.dtype(t)) for t in (np.float64, np.float32, np.int64, np.bool_)]
    return [multiarray.multiarray.scalar, np.dtype, *dtypes, datetime.timedelta]


def read_checkpoint(path: str, safe_globals: Iterable[Any] = ()) -> Any:
    """A torch checkpoint loaded weights-only: a pickled object that would run
    code on load is refused. ``safe_globals``: extra classes to allow (see
    :func:`plain_value_globals`)."""
    try:
        with torch.serialization.safe_globals(list(safe_globals)):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise FileFormatError(
            f"{path}: refused: the checkpoint holds objects other than tensors and "
            f"plain containers, which could run code when loaded ({e})"
        ) from e
    except (RuntimeError, EOFError, OSError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise FileFormatError(f"{path}: not a readable torch checkpoint: {e}") from e


def sha256_of(path: str, chunk_size: int = 1 << 20) -> str:
    """Hex sha256 of a file's bytes, read in chunks (``hashlib.file_digest``
    is Python 3.11+, the plugin supports 3.10)."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk_size), b""):
            digest.update(block)
    return digest.hexdigest()


def is_within(path: str, root: str) -> bool:
    """Whether ``path`` lies inside directory ``root``, by its name (no
    ``..`` or absolute path leading out); links are not resolved, since a
    hub snapshot's files are links into the hub cache."""
    root = os.path.abspath(root)
    return os.path.commonpath([os.path.abspath(path), root]) == root


def local_dir(path: str, what: str) -> str:
    """``path`` if it is an existing directory, else an error naming it.

    Hugging Face loaders take a path that does not exist for a hub repo id:
    they go online, or fail with "Repo id must be in the form ...". Checking
    first keeps every loader local and its message about the directory.
    """
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} directory {path} does not exist")
    return path
