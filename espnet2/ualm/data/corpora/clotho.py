"""Clotho: captions from ``clotho_captions_<split>.csv``, audio from ``<split>/``.

Each Clotho clip has five captions. For captioning/generation training one
usually wants one utterance per caption (``mode=caption``); evaluation and
single-reference uses want one utterance per file with a chosen caption
(``mode=file``). Clotho file names contain spaces, so ids are made safe.
"""

import os
import re
from typing import Dict, List, Literal

from espnet2.ualm.data.corpora.common import (
    CorpusError,
    require_dir,
    require_file,
    safe_id,
)
from espnet2.ualm.data.corpora.readers import iter_csv_rows
from espnet2.ualm.data.corpora.writer import DataDirWriter
from espnet2.ualm.data.rejects import RejectLog

NAME = "clotho"
_CAPTION_COLUMN = re.compile(r"caption_(\d+)$")


def _caption_columns(csv: str, header: List[str]) -> List[str]:
    columns = [c for c in header if _CAPTION_COLUMN.match(c)]
    if not columns:
        raise CorpusError(f"{csv}: no caption_<n> columns in header {header}")
    return sorted(columns, key=lambda c: int(_CAPTION_COLUMN.match(c).group(1)))


def _utt_id(file_id: str, column: str, mode: str) -> str:
    """``clotho_<file>_c<n>`` per caption, ``clotho_<file>`` per file."""
    if mode == "file":
        return file_id
    return f"{file_id}_c{_CAPTION_COLUMN.match(column).group(1)}"


def prepare_clotho(
    out_dir: str,
    rejects: RejectLog,
    *,
    csv: str,
    audio_dir: str,
    mode: Literal["caption", "file"] = "caption",
    caption_index: int = 1,
) -> int:
    """Writes ``wav.scp`` and ``text``.

    Args:
        csv: Clotho caption file (file_name,caption_1,...,caption_5).
        audio_dir: Folder with this split's audio files (e.g. development/).
        mode: caption: one utterance per caption, ids clotho_<file>_c<n>;
            file: one utterance per audio file, ids clotho_<file>, with the
            caption of column caption_<caption_index>.
        caption_index: Which caption a file keeps in mode=file (1-based).
    """
    require_file(csv, "Clotho caption CSV")
    require_dir(audio_dir, "Clotho audio folder")
    required = ["file_name"] + ([f"caption_{caption_index}"] if mode == "file" else [])
    writer = DataDirWriter(rejects)
    columns: List[str] = []
    first_row: Dict[str, str] = {}  # file id -> where its row is
    for where, row in iter_csv_rows(csv, rejects, NAME, required):
        if not columns:  # the caption columns this mode turns into utterances
            columns = (
                _caption_columns(csv, list(row))
                if mode == "caption"
                else [f"caption_{caption_index}"]
            )
        file_name = row["file_name"].strip()
        file_id = safe_id(NAME, os.path.splitext(file_name)[0])
        wanted = [(_utt_id(file_id, c, mode), c) for c in columns]
        problem = None
        if not file_name:
            problem = "malformed row: empty file_name"
        elif file_id in first_row:
            problem = f"duplicate file (row at {first_row[file_id]} kept)"
        if problem:
            for utt_id, _ in wanted:
                rejects.add(utt_id, where, problem)
            continue
        first_row[file_id] = where
        path = os.path.abspath(os.path.join(audio_dir, file_name))
        found = os.path.isfile(path)
        for utt_id, column in wanted:
            caption = " ".join(row[column].split())
            if not found:
                rejects.add(utt_id, where, f"missing audio file: {path}")
            elif not caption:
                rejects.add(utt_id, where, f"empty caption ({column})")
            else:
                writer.add(utt_id, where, audio={utt_id: path}, text=caption)
    return writer.write(out_dir)
