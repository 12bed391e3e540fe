"""Small helpers every corpus converter shares: ids, paths, fatal errors.

Kept separate from the readers and the writer so that a new converter can see
in one place the rules all converters follow: ids are ASCII, white-space free
and prefixed with the corpus name; audio paths are absolute and checked to
exist; a missing corpus root is fatal (``CorpusError``), a bad item is not.
"""

import os
import re
import unicodedata
from typing import Any, Mapping, Optional

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


class CorpusError(Exception):
    """A problem with the corpus as a whole (missing root, wrong CSV header).

    Bad *items* go to the ``RejectLog`` instead; this error stops the run.
    """


class BadItem(ValueError):
    """One item cannot be converted; the message becomes its reject reason."""


def require_file(path: str, what: str) -> str:
    """Returns ``path`` or raises ``CorpusError`` naming it and what it is."""
    if not os.path.isfile(path):
        raise CorpusError(f"{what} does not exist or is not a file: {path}")
    return path


def require_dir(path: str, what: str) -> str:
    """Returns ``path`` or raises ``CorpusError`` naming it and what it is."""
    if not os.path.isdir(path):
        raise CorpusError(f"{what} does not exist or is not a directory: {path}")
    return path


def safe_id(prefix: str, *parts: str) -> str:
    """Builds ``<prefix>_<part>_<part>...`` from raw names.

    Accents are folded to ASCII and every run of characters outside
    ``[A-Za-z0-9._-]`` becomes one ``_``, so ids sort the same in Python and in
    ``LC_ALL=C sort`` and never hold white space. Two raw names may map to the
    same id; the writer reports the second one as a duplicate.
    """
    cleaned = []
    for part in parts:
        ascii_part = (
            unicodedata.normalize("NFKD", str(part))
            .encode("ascii", "ignore")
            .decode("ascii")
        )
        cleaned.append(_UNSAFE.sub("_", ascii_part).strip("_") or "x")
    return "_".join([prefix, *cleaned])


def item_id(prefix: str, item: Mapping[str, Any], index: int) -> str:
    """Id of a JSON item: its own ``id`` field, else its position in the file."""
    raw = item.get("id")
    if raw is None or not str(raw).strip():
        raw = f"{index:08d}"
    return safe_id(prefix, str(raw))


def resolve_audio(path: str, audio_dir: Optional[str]) -> str:
    """Absolute path of ``path``, relative paths taken from ``audio_dir``."""
    if not os.path.isabs(path) and audio_dir:
        path = os.path.join(audio_dir, path)
    return os.path.abspath(path)


def recording_name(path: str, audio_dir: Optional[str]) -> str:
    """The part of an audio path that names the recording (for its id).

    The path relative to ``audio_dir`` without extension when it lies below
    it, otherwise the whole path: base names alone collide across sub-folders.
    """
    full = resolve_audio(path, audio_dir)
    if audio_dir:
        rel = os.path.relpath(full, os.path.abspath(audio_dir))
        if not rel.startswith(os.pardir):
            full = rel
    return os.path.splitext(full)[0]
