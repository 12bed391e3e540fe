"""ETTA-style caption JSONL: captions of time spans of long recordings.

Items look like ``{"location": path, "start": s, "end": s, "captions": "..."}``
(``caption`` also accepted, a list of captions gives one utterance each). Many
spans share a recording, so ``wav.scp`` is keyed by recording and a
``segments`` file cuts the spans; stage 2 does the cutting.
"""

import math
import os
from typing import Any, Dict, List, Optional, Tuple

from espnet2.ualm.data.corpora.common import (
    BadItem,
    recording_name,
    require_dir,
    require_file,
    resolve_audio,
    safe_id,
)
from espnet2.ualm.data.corpora.readers import iter_json_items
from espnet2.ualm.data.corpora.writer import DataDirWriter
from espnet2.ualm.data.io import AudioReadError, audio_info
from espnet2.ualm.data.rejects import RejectLog

NAME = "etta"
_START_KEYS = ("start", "start_time")
_END_KEYS = ("end", "end_time")


def prepare_etta(
    out_dir: str,
    rejects: RejectLog,
    *,
    json: str,
    audio_dir: Optional[str] = None,
    id_prefix: str = NAME,
) -> int:
    """Writes ``wav.scp`` (by recording), ``segments`` and ``text``.

    Utterance ids are ``<recording id>_<start ms>_<end ms>`` (plus ``_c<n>``
    for the n-th of several captions), recording ids ``<id_prefix>_<path
    without extension>``. A missing start is 0 and a missing end is the file's
    duration, read from its header (the audio is not decoded).

    Args:
        json: ETTA-style JSONL (or JSON list) of location/start/end/caption(s).
        audio_dir: Folder relative locations start from (default: the JSON
            file's folder).
        id_prefix: Prefix of all ids.
    """
    require_file(json, "ETTA caption file")
    if audio_dir is None:
        audio_dir = os.path.dirname(os.path.abspath(json))
    require_dir(audio_dir, "audio folder")
    writer = DataDirWriter(rejects)
    durations: Dict[str, float] = {}
    for where, _, item in iter_json_items(json, rejects, id_prefix):
        location = item.get("location")
        if not isinstance(location, str) or not location.strip():
            rejects.add("?", where, "no 'location'")
            continue
        rec_id = safe_id(id_prefix, recording_name(location, audio_dir))
        path = resolve_audio(location, audio_dir)
        try:
            if not os.path.isfile(path):
                raise BadItem(f"missing audio file: {path}")
            start, end = _times(item, path, durations)
            captions = _captions(item)
        except BadItem as e:
            rejects.add(rec_id, where, str(e))
            continue
        base = f"{rec_id}_{round(start * 1000):08d}_{round(end * 1000):08d}"
        for n, caption in enumerate(captions, 1):
            utt_id = base if len(captions) == 1 else f"{base}_c{n}"
            if not caption:
                rejects.add(utt_id, where, "empty caption")
                continue
            writer.add(
                utt_id,
                where,
                audio={rec_id: path},
                segment=(rec_id, start, end),
                text=caption,
            )
    return writer.write(out_dir)


def _time(item: Dict[str, Any], keys: Tuple[str, ...]) -> Optional[float]:
    for key in keys:
        if item.get(key) is not None:
            try:
                value = float(item[key])
            except (TypeError, ValueError):
                value = math.nan
            if not math.isfinite(value) or value < 0:
                raise BadItem(f"bad time stamps: {key}={item[key]!r}")
            return value
    return None


def _times(
    item: Dict[str, Any], path: str, durations: Dict[str, float]
) -> Tuple[float, float]:
    start = _time(item, _START_KEYS)
    end = _time(item, _END_KEYS)
    if end is None:
        if path not in durations:
            try:
                durations[path] = audio_info(path).duration
            except AudioReadError as e:
                raise BadItem(
                    f"no end time and unreadable audio header: {e.detail}"
                ) from e
        end = durations[path]
    start = start or 0.0
    if end <= start:
        raise BadItem(f"bad time stamps: end {end} <= start {start}")
    return start, end


def _captions(item: Dict[str, Any]) -> List[str]:
    raw = item.get("captions", item.get("caption"))
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        raise BadItem("no 'captions' or 'caption'")
    if not all(isinstance(c, str) for c in raw):
        raise BadItem("a caption is not a string")
    return [" ".join(c.split()) for c in raw]
