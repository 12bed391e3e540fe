"""Reading and writing Kaldi-style ``key value`` files with checked input.

ESPnet's own readers (``espnet2.fileio.read_text``) stop at the first bad
line; data preparation must instead keep the good lines and report each bad
one (line number, file, reason), so this module reads the files itself.
"""

import os
from typing import Dict, Iterable, Optional, Tuple

from espnet2.ualm.data.rejects import RejectLog


def read_kv(
    path: str, rejects: Optional[RejectLog] = None, allow_empty_value: bool = False
) -> Dict[str, str]:
    """Reads ``<key> <value>`` lines in file order.

    Non-UTF-8 lines, lines without a value and duplicate keys are reported to
    ``rejects`` (or raised as ``ValueError`` when no log is given) with the file
    name and line number; for a duplicate key the first occurrence is kept.
    """
    out: Dict[str, str] = {}
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            where = f"{path}:{lineno}"
            try:
                line = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as e:
                key = (
                    raw.split(maxsplit=1)[0].decode("utf-8", "replace")
                    if raw.strip()
                    else "?"
                )
                _bad(
                    rejects,
                    key,
                    where,
                    f"non-UTF-8 text ({e.reason} at byte {e.start})",
                )
                continue
            if not line.strip():
                continue
            parts = line.split(maxsplit=1)
            key = parts[0]
            value = parts[1].strip() if len(parts) > 1 else ""
            if not value and not allow_empty_value:
                _bad(rejects, key, where, "empty value")
                continue
            if key in out:
                _bad(rejects, key, where, "duplicate id (first occurrence kept)")
                continue
            out[key] = value
    return out


def _bad(rejects: Optional[RejectLog], key: str, where: str, reason: str) -> None:
    if rejects is None:
        raise ValueError(f"{where}: {key}: {reason}")
    rejects.add(key, where, reason)


# The longest file name most file systems take (POSIX NAME_MAX), in bytes.
NAME_MAX = 255


def file_name_problem(utt_id: str, suffix: str = ".flac") -> Optional[str]:
    """Why ``<utt_id><suffix>`` cannot be a file of its own in one directory
    (stages write one file per id), or ``None`` when it can."""
    if not utt_id:
        return "empty id"
    if utt_id in (".", ".."):
        return f"id {utt_id!r} names a directory"
    seps = {os.sep, os.altsep} - {None}
    bad = sorted({c for c in utt_id if c in seps or not c.isprintable()})
    if bad:
        return f"id contains {', '.join(repr(c) for c in bad)}"
    size = len((utt_id + suffix).encode("utf-8", "surrogateescape"))
    if size > NAME_MAX:
        return f"id too long for a file name ({size} bytes > {NAME_MAX})"
    return None


def write_kv(path: str, items: Iterable[Tuple[str, str]]) -> None:
    """Writes ``<key> <value>`` lines sorted by key (Kaldi's convention)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for key, value in sorted(items):
            if any(c.isspace() for c in key):
                raise ValueError(f"{path}: id {key!r} contains white space")
            value = " ".join(str(value).split())
            f.write(f"{key} {value}\n")
