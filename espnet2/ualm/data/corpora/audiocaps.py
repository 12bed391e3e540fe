"""AudioCaps: one utterance per caption row of ``{train,val,test}.csv``.

AudioCaps ships captions only; users download the YouTube clips themselves and
name the files after the YouTube id or the AudioCaps id, so the file name is a
list of patterns tried in order, and every caption whose clip was not found is
reported (a few percent of YouTube videos are gone).
"""

import os
from typing import Dict, List, Sequence

from espnet2.ualm.data.corpora.common import (
    CorpusError,
    require_dir,
    require_file,
    safe_id,
)
from espnet2.ualm.data.corpora.readers import iter_csv_rows
from espnet2.ualm.data.corpora.writer import DataDirWriter
from espnet2.ualm.data.rejects import RejectLog

NAME = "audiocaps"
COLUMNS = ("audiocap_id", "youtube_id", "start_time", "caption")
CLIP_SECONDS = 10.0
DEFAULT_PATTERNS = ("{youtube_id}.wav", "Y{youtube_id}.wav", "{audiocap_id}.wav")


def _check_patterns(patterns: Sequence[str]) -> List[str]:
    fields = {"audiocap_id": "1", "youtube_id": "x", "start_time": "0"}
    for pattern in patterns:
        try:
            pattern.format(start=0.0, end=CLIP_SECONDS, **fields)
        except (KeyError, IndexError, ValueError) as e:
            raise CorpusError(
                f"audio_pattern {pattern!r} is not usable ({e!r}); it may use "
                "{audiocap_id}, {youtube_id}, {start_time}, {start}, {end}"
            ) from e
    if not patterns:
        raise CorpusError("audio_pattern: give at least one file name pattern")
    return list(patterns)


def prepare_audiocaps(
    out_dir: str,
    rejects: RejectLog,
    *,
    csv: str,
    audio_dir: str,
    audio_pattern: Sequence[str] = DEFAULT_PATTERNS,
) -> int:
    """Writes ``wav.scp`` and ``text`` keyed ``audiocaps_<audiocap_id>``.

    Args:
        csv: AudioCaps caption file (audiocap_id,youtube_id,start_time,caption).
        audio_dir: Folder with the downloaded 10 s clips of this split.
        audio_pattern: Clip file names below audio_dir, tried in order; fields
            {audiocap_id}, {youtube_id}, {start_time} (as in the CSV), {start}
            and {end} (seconds, floats: e.g. Y{youtube_id}_{start:.3f}_{end:.3f}.wav).
    """
    require_file(csv, "AudioCaps CSV")
    require_dir(audio_dir, "AudioCaps audio folder")
    patterns = _check_patterns(audio_pattern)
    writer = DataDirWriter(rejects)
    for where, row in iter_csv_rows(csv, rejects, NAME, COLUMNS):
        fields: Dict[str, str] = {c: row[c].strip() for c in COLUMNS}
        utt_id = safe_id(NAME, fields["audiocap_id"] or "?")
        if not fields["audiocap_id"] or not fields["youtube_id"]:
            rejects.add(utt_id, where, "malformed row: empty audiocap_id/youtube_id")
            continue
        try:
            start = float(fields["start_time"])
        except ValueError:
            start = -1.0
        if not start >= 0.0:
            rejects.add(utt_id, where, f"bad start_time {fields['start_time']!r}")
            continue
        caption = " ".join(fields["caption"].split())
        if not caption:
            rejects.add(utt_id, where, "empty caption")
            continue
        names = [
            p.format(start=start, end=start + CLIP_SECONDS, **fields) for p in patterns
        ]
        paths = [os.path.abspath(os.path.join(audio_dir, n)) for n in names]
        found = next((p for p in paths if os.path.isfile(p)), None)
        if found is None:
            tried = ", ".join(names)
            rejects.add(
                utt_id, where, f"missing audio file (tried {tried} in {audio_dir})"
            )
            continue
        writer.add(utt_id, where, audio={utt_id: found}, text=caption)
    return writer.write(out_dir)
