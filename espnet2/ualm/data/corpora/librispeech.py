"""LibriSpeech: ``<root>/<split>/<spk>/<chapter>/<spk>-<chapter>.trans.txt`` + flac.

Transcripts are upper case without punctuation. An LLM trained on them learns
to answer in capitals, so the text can be kept as is (ASR scoring, ESPnet
convention) or lower-cased / sentence-cased for dialogue-style training.
Every flac without a transcript line and every line without a flac is
reported, so the split's counts can be checked against the official ones.
"""

import os
import re
from typing import Dict, Literal

from espnet2.ualm.data.corpora.common import require_dir, safe_id
from espnet2.ualm.data.corpora.readers import iter_text_lines
from espnet2.ualm.data.corpora.writer import DataDirWriter
from espnet2.ualm.data.rejects import RejectLog

NAME = "librispeech"
TextNorm = Literal["none", "lower", "sentence"]
_PRONOUN_I = re.compile(r"\bi\b")


def normalise(text: str, how: TextNorm) -> str:
    """``none``: as is; ``lower``; ``sentence``: lower, first letter and I upper.

    ``sentence`` is a heuristic (names stay lower case); it only makes the
    text look less like shouting to a chat model.
    """
    text = " ".join(text.split())
    if how == "none":
        return text
    text = text.lower()
    if how == "sentence":
        text = _PRONOUN_I.sub("I", text)
        text = text[:1].upper() + text[1:]
    return text


def prepare_librispeech(
    out_dir: str,
    rejects: RejectLog,
    *,
    root: str,
    split: str,
    text_norm: TextNorm = "none",
) -> int:
    """Writes ``wav.scp``, ``text``, ``utt2spk`` and ``spk2utt``.

    Ids are ``librispeech_<spk>-<chapter>-<n>``, speakers ``librispeech_<spk>``
    (utterance ids start with their speaker id, as Kaldi expects).

    Args:
        root: Folder holding the split folders (e.g. .../LibriSpeech).
        split: Split folder name, e.g. train-clean-100, dev-clean, test-other.
        text_norm: none: upper-case transcripts as given; lower: lower case;
            sentence: lower case with the first letter and "I" capitalised.
    """
    split_dir = require_dir(os.path.join(root, split), "LibriSpeech split folder")
    writer = DataDirWriter(rejects)
    for spk in sorted(os.listdir(split_dir)):
        spk_dir = os.path.join(split_dir, spk)
        if not os.path.isdir(spk_dir):
            continue
        for chapter in sorted(os.listdir(spk_dir)):
            chapter_dir = os.path.join(spk_dir, chapter)
            if os.path.isdir(chapter_dir):
                _prepare_chapter(writer, rejects, chapter_dir, spk, chapter, text_norm)
    return writer.write(out_dir)


def _prepare_chapter(
    writer: DataDirWriter,
    rejects: RejectLog,
    chapter_dir: str,
    spk: str,
    chapter: str,
    text_norm: TextNorm,
) -> None:
    flacs: Dict[str, str] = {
        name[: -len(".flac")]: os.path.abspath(os.path.join(chapter_dir, name))
        for name in os.listdir(chapter_dir)
        if name.endswith(".flac")
    }
    described = set()
    trans = os.path.join(chapter_dir, f"{spk}-{chapter}.trans.txt")
    if os.path.isfile(trans):

        def described_id(line: str) -> str:
            """The id of an undecodable line: its flac is accounted for."""
            raw_id = (line.split() or ["?"])[0]
            described.add(raw_id)
            return raw_id

        for lineno, line in iter_text_lines(trans, rejects, NAME, described_id):
            if not line.strip():
                continue
            where = f"{trans}:{lineno}"
            parts = line.split(maxsplit=1)
            raw_id = parts[0]
            utt_id = safe_id(NAME, raw_id)
            text = normalise(parts[1], text_norm) if len(parts) > 1 else ""
            path = flacs.get(raw_id)
            described.add(raw_id)
            if not raw_id.startswith(f"{spk}-{chapter}-"):
                rejects.add(utt_id, where, f"id does not belong to {spk}/{chapter}")
            elif not text:
                rejects.add(utt_id, where, "empty transcript")
            elif path is None:
                flac = os.path.join(chapter_dir, raw_id + ".flac")
                rejects.add(utt_id, where, f"missing audio file: {flac}")
            else:
                speaker = safe_id(NAME, spk)
                writer.add(
                    utt_id, where, audio={utt_id: path}, text=text, speaker=speaker
                )
    for raw_id, path in sorted(flacs.items()):
        if raw_id in described:
            continue
        reason = "no transcript line" if os.path.isfile(trans) else "no transcript file"
        rejects.add(safe_id(NAME, raw_id), path, f"{reason} in {trans}")
