"""Done markers that remember what a shard was made from.

A sharded stage (tokenization, inference) marks a finished shard with a
``.done`` file. A marker alone would make a re-run skip the shard after its
inputs changed (new audio, another codec, a retrained model, other decoding
settings, another number of jobs), so the marker holds a digest of those
inputs and a shard is skipped only when the digest of the current inputs is
the same. Files are identified by path, size and modification time (hashing
model weights on every run would cost minutes); small config files by their
content.
"""

import hashlib
import json
import os
from typing import Any, Dict, List, Optional


def file_stamp(path: str) -> Dict[str, Any]:
    """Path, size and modification time of a file (or that it is missing)."""
    try:
        st = os.stat(path)
    except OSError:
        return {"path": os.path.abspath(path), "missing": True}
    return {"path": os.path.abspath(path), "size": st.st_size, "mtime": st.st_mtime_ns}


def tree_stamp(path: str) -> List[Dict[str, Any]]:
    """``file_stamp`` of a file, or of every file below a directory."""
    if not os.path.isdir(path):
        return [file_stamp(path)]
    return [
        file_stamp(os.path.join(root, name))
        for root, dirs, files in sorted(os.walk(path))
        for name in sorted(files)
    ]


def content_digest(path: str) -> str:
    """SHA-256 of a (small) file's bytes, or ``missing``."""
    try:
        with open(path, "rb") as f:
            return hashlib.sha256(f.read()).hexdigest()
    except OSError:
        return "missing"


def digest(inputs: Any) -> str:
    """SHA-256 of a JSON-able description of a shard's inputs."""
    text = json.dumps(inputs, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def write_done(path: str, fingerprint: str, **info: Any) -> None:
    """Marks a shard done, with the fingerprint of its inputs (and ``info``
    such as the number of jobs, for the merge to check)."""
    tmp = f"{path}.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump({"fingerprint": fingerprint, **info}, f, sort_keys=True)
    os.replace(tmp, path)  # a kill leaves the old marker or the new one


def read_done(path: str) -> Optional[Dict[str, Any]]:
    """The marker of a shard (``{}`` for one of an older version without a
    fingerprint), or ``None`` when the shard is not done."""
    if not os.path.exists(path):
        return None
    try:
        with open(path, encoding="utf-8") as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return {}
    return marker if isinstance(marker, dict) else {}


def is_done(path: str, fingerprint: str) -> bool:
    """Whether the shard of marker ``path`` is done with these very inputs."""
    marker = read_done(path)
    return marker is not None and marker.get("fingerprint") == fingerprint
