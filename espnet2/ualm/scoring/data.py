"""Reading hypothesis and reference directories for scoring.

A hypothesis directory holds what inference wrote for one task and test set:
``wav.scp`` (generated audio, ``<id> <path>``) and/or ``text`` (``<id> <reply>``),
with the ids of the reference items (clip ids; dialogue ids for QA and text
tasks). References are the data directories of ``doc/data_layout.md``.
"""

import json
import os
from typing import Any, Dict, List, Optional

from espnet2.ualm.data.io import read_jsonl
from espnet2.ualm.data.kaldi_dir import read_kv


def read_text_file(path: str) -> Dict[str, str]:
    """Kaldi ``<id> <text>`` file; an id alone means an empty reply."""
    return read_kv(path, allow_empty_value=True)


def resolve_path(path: str, data_dir: str) -> str:
    """Paths in a scp are relative to the directory the recipe runs from: the
    current directory, else the setup directory two levels above ``data_dir``."""
    if os.path.isabs(path) or os.path.exists(path):
        return path
    setup = os.path.dirname(os.path.dirname(os.path.abspath(data_dir)))
    guess = os.path.join(setup, path)
    return guess if os.path.exists(guess) else path


def read_wav_scp(data_dir: str, name: str = "wav.scp") -> Dict[str, str]:
    """``{id: resolved audio path}`` of ``data_dir/name``."""
    items = read_kv(os.path.join(data_dir, name))
    return {k: resolve_path(v, data_dir) for k, v in items.items()}


def read_meta(data_dir: str) -> Dict[str, Dict[str, Any]]:
    """``meta.jsonl`` by id, or empty when the directory has none."""
    path = os.path.join(data_dir, "meta.jsonl")
    if not os.path.exists(path):
        return {}
    return {r["id"]: r for r in read_jsonl(path)}


def _texts(message: Dict[str, Any]) -> str:
    return " ".join(
        seg["text"] for seg in message["content"] if seg.get("type") == "text"
    ).strip()


def read_dialogues(data_dir: str) -> Dict[str, Dict[str, Any]]:
    """``dialogue.jsonl`` as ``{id: {question, reference, audio}}``: the last
    user message's text, the last assistant message's text (the answer to
    score) and the audio ids the user message refers to."""
    out: Dict[str, Dict[str, Any]] = {}
    for row in read_jsonl(os.path.join(data_dir, "dialogue.jsonl")):
        users = [m for m in row["messages"] if m["role"] == "user"]
        answers = [m for m in row["messages"] if m["role"] == "assistant"]
        if not users or not answers:
            continue
        out[row["id"]] = {
            "question": _texts(users[-1]),
            "reference": _texts(answers[-1]),
            "audio": [
                s["audio"]
                for s in users[-1]["content"]
                if s.get("type") in ("audio", "audio_input")
            ],
        }
    return out


def caption_references(data_dir: str) -> Dict[str, List[str]]:
    """Reference captions per clip: ``text`` plus, for the mini corpus, every
    phrasing stored in ``meta.jsonl`` (``captions``), without duplicates."""
    refs = {k: [v] for k, v in read_text_file(os.path.join(data_dir, "text")).items()}
    for uid, meta in read_meta(data_dir).items():
        for caption in (meta.get("captions") or {}).values():
            if uid in refs and caption not in refs[uid]:
                refs[uid].append(caption)
    return refs


def qa_kinds(data_dir: str) -> Dict[str, str]:
    """Question kind per dialogue id from ``meta.jsonl`` (mini corpus), if any."""
    kinds = {}
    for meta in read_meta(data_dir).values():
        for qa in meta.get("qa", []):
            kinds[qa["id"]] = qa["kind"]
    return kinds


def load_answer_words(path: Optional[str]) -> Dict[str, List[str]]:
    """Answer vocabulary per question kind: a JSON file holding either the
    mapping itself or a ``corpus_info.json`` with an ``answer_words`` key."""
    if not path:
        return {}
    with open(path, encoding="utf-8") as f:
        data = json.load(f)
    words = data.get("answer_words", data)
    return {str(k): [str(x) for x in v] for k, v in words.items()}


def infer_kind(reference: str, vocabularies: Dict[str, List[str]]) -> str:
    """The first vocabulary holding ``reference``, else ``other``."""
    for kind, words in vocabularies.items():
        if reference in words:
            return kind
    return "other"


def probe_labels(data_dir: str) -> Dict[str, str]:
    """Class label per clip for fitting the probe tagger: ``utt2label`` if the
    directory has one, else the mini corpus's ordered event types
    (``meta.jsonl`` ``order``, e.g. ``beep+chirp``)."""
    path = os.path.join(data_dir, "utt2label")
    if os.path.exists(path):
        return read_kv(path)
    meta = read_meta(data_dir)
    if not meta:
        raise FileNotFoundError(
            f"{data_dir} has neither utt2label nor meta.jsonl to fit a probe tagger"
        )
    return {k: "+".join(m["order"]) for k, m in meta.items()}
