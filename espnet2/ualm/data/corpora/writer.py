"""Collecting one data directory's entries and writing them in the layout.

Converters hand every good item to ``DataDirWriter.add``; it refuses (and
reports) an item whose id is already taken or whose audio id already stands
for another file, adds nothing of a refused item, and writes the files of
doc/data_layout.md sorted by id.
"""

import json
import os
from typing import Any, Dict, List, Mapping, Optional, Tuple

from espnet2.ualm.data.kaldi_dir import write_kv
from espnet2.ualm.data.rejects import RejectLog

# Files a converter may write; ``write`` removes those a rerun no longer makes.
LAYOUT_FILES = (
    "wav.scp",
    "segments",
    "text",
    "rich_text",
    "utt2spk",
    "spk2utt",
    "dialogue.jsonl",
)


class DataDirWriter:
    """Entries of one Kaldi-style data directory, checked as they come."""

    def __init__(self, rejects: RejectLog):
        self.rejects = rejects
        self.wav: Dict[str, str] = {}
        self.segments: Dict[str, Tuple[str, float, float]] = {}
        self.text: Dict[str, str] = {}
        self.rich_text: Dict[str, str] = {}
        self.utt2spk: Dict[str, str] = {}
        self.dialogues: Dict[str, List[Dict[str, Any]]] = {}
        self._ids: set = set()

    def __len__(self) -> int:
        return len(self._ids)

    def add(
        self,
        item_id: str,
        where: str,
        *,
        audio: Optional[Mapping[str, str]] = None,
        text: Optional[str] = None,
        rich_text: Optional[str] = None,
        speaker: Optional[str] = None,
        segment: Optional[Tuple[str, float, float]] = None,
        messages: Optional[List[Dict[str, Any]]] = None,
    ) -> bool:
        """Adds one item (utterance or dialogue) or reports why not.

        ``audio`` maps the ``wav.scp`` ids this item needs to absolute paths:
        ``{utt_id: path}`` for plain utterances, ``{rec_id: path}`` with a
        ``segment`` ``(rec_id, start, end)``, ``{audio_id: path}`` for the
        audio segments of a dialogue. Several items may share a recording.
        """
        audio = dict(audio or {})
        if item_id in self._ids:
            return self._reject(item_id, where, "duplicate id (first occurrence kept)")
        for audio_id, path in audio.items():
            if " ".join(path.split()) != path:
                return self._reject(
                    item_id,
                    where,
                    f"audio path has white space wav.scp cannot keep: {path!r}",
                )
            known = self.wav.get(audio_id)
            if known is not None and known != path:
                return self._reject(
                    item_id, where, f"audio id {audio_id} already names {known}"
                )
        self._ids.add(item_id)
        self.wav.update(audio)
        if text is not None:
            self.text[item_id] = text
        if rich_text is not None:
            self.rich_text[item_id] = rich_text
        if speaker is not None:
            self.utt2spk[item_id] = speaker
        if segment is not None:
            self.segments[item_id] = segment
        if messages is not None:
            self.dialogues[item_id] = messages
        return True

    def _reject(self, item_id: str, where: str, reason: str) -> bool:
        self.rejects.add(item_id, where, reason)
        return False

    def write(self, out_dir: str) -> int:
        """Writes the non-empty files to ``out_dir``; returns the item count."""
        os.makedirs(out_dir, exist_ok=True)
        for name in LAYOUT_FILES:
            path = os.path.join(out_dir, name)
            if os.path.exists(path):
                os.remove(path)
        spk2utt: Dict[str, List[str]] = {}
        for utt, spk in sorted(self.utt2spk.items()):
            spk2utt.setdefault(spk, []).append(utt)
        tables = {
            "wav.scp": self.wav,
            "segments": {
                utt: f"{rec} {start:.3f} {end:.3f}"
                for utt, (rec, start, end) in self.segments.items()
            },
            "text": self.text,
            "rich_text": self.rich_text,
            "utt2spk": self.utt2spk,
            "spk2utt": {spk: " ".join(utts) for spk, utts in spk2utt.items()},
        }
        for name, table in tables.items():
            if table:
                write_kv(os.path.join(out_dir, name), table.items())
        if self.dialogues:
            with open(
                os.path.join(out_dir, "dialogue.jsonl"), "w", encoding="utf-8"
            ) as f:
                for item_id in sorted(self.dialogues):
                    line = {"id": item_id, "messages": self.dialogues[item_id]}
                    f.write(json.dumps(line, ensure_ascii=False) + "\n")
        return len(self)
