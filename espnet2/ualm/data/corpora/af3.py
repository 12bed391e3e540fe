"""Audio Flamingo 3 / AudioSkills-style audio QA conversations.

Items look like ``{"id": ..., "sound": "rel/path.wav" (or a list),
"conversations": [{"from": "human", "value": "<sound>\\nQuestion"},
{"from": "gpt", "value": "Answer"}]}`` in a JSON list or JSONL file. Each
becomes one ``dialogue.jsonl`` line whose user message carries an audio
segment where the ``<sound>`` tag was; the audio files go to ``wav.scp`` once
each, however many questions share them.
"""

import os
from typing import Any, Dict, List, Optional, Tuple

from espnet2.ualm.data.corpora.common import (
    BadItem,
    item_id,
    recording_name,
    require_dir,
    require_file,
    resolve_audio,
    safe_id,
)
from espnet2.ualm.data.corpora.dialogue import (
    Message,
    audio_part,
    dialogue_problem,
    map_role,
    message,
    text_part,
)
from espnet2.ualm.data.corpora.readers import iter_json_items
from espnet2.ualm.data.corpora.writer import DataDirWriter
from espnet2.ualm.data.rejects import RejectLog

NAME = "af3"


def prepare_af3(
    out_dir: str,
    rejects: RejectLog,
    *,
    json: str,
    audio_dir: Optional[str] = None,
    id_prefix: str = NAME,
    audio_key: str = "sound",
    sound_tag: str = "<sound>",
) -> int:
    """Writes ``dialogue.jsonl`` and ``wav.scp``.

    Dialogue ids are ``<id_prefix>_<item id>`` (``<id_prefix>_<index>`` when
    an item has none), audio ids ``<id_prefix>_<audio path without
    extension>``. A conversation without any tag gets its audio in front of
    the first user message (the LLaVA convention).

    Args:
        json: AF3/AudioSkills file: a JSON list or JSONL of conversations.
        audio_dir: Folder the relative sound paths start from (default: the
            JSON file's folder).
        id_prefix: Prefix of all ids; give each subset its own when several
            are used together.
        audio_key: Item key holding the audio path or list of paths.
        sound_tag: The placeholder marking where the audio goes.
    """
    require_file(json, "AF3 conversation file")
    if audio_dir is None:
        audio_dir = os.path.dirname(os.path.abspath(json))
    require_dir(audio_dir, "audio folder")
    writer = DataDirWriter(rejects)
    for where, index, item in iter_json_items(json, rejects, id_prefix):
        dialogue_id = item_id(id_prefix, item, index)
        try:
            audio = _audio_of(item, audio_key, audio_dir, id_prefix)
            messages = _messages_of(item, [a for a, _ in audio], sound_tag)
        except BadItem as e:
            rejects.add(dialogue_id, where, str(e))
            continue
        writer.add(dialogue_id, where, audio=dict(audio), messages=messages)
    return writer.write(out_dir)


def _audio_of(
    item: Dict[str, Any], audio_key: str, audio_dir: str, id_prefix: str
) -> List[Tuple[str, str]]:
    """``(audio_id, absolute path)`` in tag order; a missing file fails the item."""
    sounds = item.get(audio_key)
    if sounds is None:
        return {}
    if isinstance(sounds, str):
        sounds = [sounds]
    if not isinstance(sounds, list) or not all(
        isinstance(s, str) and s.strip() for s in sounds
    ):
        raise BadItem(f"{audio_key!r} is neither a path nor a list of paths")
    audio = []
    for sound in sounds:
        path = resolve_audio(sound, audio_dir)
        if not os.path.isfile(path):
            raise BadItem(f"missing audio file: {path}")
        audio.append((safe_id(id_prefix, recording_name(sound, audio_dir)), path))
    return audio


def _messages_of(
    item: Dict[str, Any], audio_ids: List[str], sound_tag: str
) -> List[Message]:
    turns = item.get("conversations")
    if not isinstance(turns, list):
        raise BadItem("no 'conversations' list")
    messages: List[Message] = []
    pending = list(audio_ids)
    n_tags = 0
    for i, turn in enumerate(turns):
        role, value = _turn(turn, i)
        pieces = value.split(sound_tag)
        n_tags += len(pieces) - 1
        if len(pieces) > 1 and role == "assistant":
            raise BadItem(f"turn {i}: {sound_tag} in an answer")
        parts = []
        for k, piece in enumerate(pieces):
            if k > 0 and pending:
                parts.append(audio_part(pending.pop(0)))
            if piece.strip():
                parts.append(text_part(piece.strip()))
        messages.append(message(role, parts))
    if n_tags == 0 and audio_ids:
        first_user = next((m for m in messages if m["role"] == "user"), None)
        if first_user is not None:
            first_user["content"][:0] = [audio_part(a) for a in audio_ids]
    elif n_tags != len(audio_ids):
        raise BadItem(f"{n_tags} {sound_tag} tag(s) but {len(audio_ids)} audio file(s)")
    problem = dialogue_problem(messages)
    if problem:
        raise BadItem(problem)
    return messages


def _turn(turn: Any, i: int) -> Tuple[str, str]:
    if not isinstance(turn, dict):
        raise BadItem(f"turn {i} is not an object")
    role = map_role(turn.get("from", turn.get("role")))
    if role is None:
        raise BadItem(f"turn {i}: unknown role {turn.get('from', turn.get('role'))!r}")
    value = turn.get("value", turn.get("content"))
    if not isinstance(value, str):
        raise BadItem(f"turn {i}: value is not a string")
    return role, value
