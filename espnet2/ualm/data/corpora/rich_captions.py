"""Rich captions and self-reflection data for real corpora (UALM-Reason).

One JSON object per line (or a JSON list), doc/rich_captions.md::

    {"id": "clip0001", "audio": "clips/clip0001.wav",
     "caption": "a dog barks twice, then a siren",
     "rich_caption": "Keywords: dog bark, siren. Layout: ... Description: ...",
     "attempts": [{"audio": "attempts/clip0001_v1.wav",
                   "rich_caption": "Keywords: ... (what the attempt holds)",
                   "critique": "Critique: ... (optional: else computed)"}]}

``rich_captions`` writes ``wav.scp``, ``text`` (the caption) and
``rich_text`` (the rich caption, checked and written in the library's
canonical form) of every item: the ``rich_text_to_audio`` task's data.
``reflection`` writes, for every attempt of an item, one self-reflection
conversation in ``dialogue.jsonl`` laid out by the ``self_reflection``
template (the plan, the attempt, the assistant listening to it, its rich
caption, the critique, the item's clip) and the clips it names in
``wav.scp``: the ``reasoning`` task's data.
"""

import os
from typing import Any, Dict, List, Optional

from espnet2.ualm.data.corpora.common import (
    BadItem,
    item_id,
    require_dir,
    require_file,
    resolve_audio,
)
from espnet2.ualm.data.corpora.readers import iter_json_items
from espnet2.ualm.data.corpora.writer import DataDirWriter
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.text.critique import CritiqueError, critique_text, parse_critique
from espnet2.ualm.text.rich_caption import RichCaptionError, parse, render
from espnet2.ualm.tokens.tasks import REFLECTION_LISTEN, REFLECTION_TEMPLATE, TASKS
from espnet2.ualm.tokens.templates import template_dialogue

NAME = "rich_captions"


def _string(item: Dict[str, Any], key: str, what: str) -> str:
    value = item.get(key)
    if not isinstance(value, str) or not value.strip():
        raise BadItem(f"no {what} ('{key}')")
    return " ".join(value.split())


def _audio(item: Dict[str, Any], audio_dir: str, what: str) -> str:
    path = resolve_audio(_string(item, "audio", f"{what} audio"), audio_dir)
    if not os.path.isfile(path):
        raise BadItem(f"missing {what} audio file: {path}")
    return path


def _rich(item: Dict[str, Any], what: str) -> str:
    """The item's rich caption in canonical form; a malformed one is a
    ``BadItem`` with the parser's message (section, event, field)."""
    try:
        return render(parse(_string(item, "rich_caption", f"{what} rich caption")))
    except RichCaptionError as e:
        raise BadItem(f"{what}: {e}") from e


def _item(
    index: int, item: Dict[str, Any], id_prefix: str, audio_dir: str
) -> Dict[str, str]:
    return {
        "id": item_id(id_prefix, item, index),
        "audio": _audio(item, audio_dir, "the clip's"),
        "caption": _string(item, "caption", "caption"),
        "rich_caption": _rich(item, "the clip's"),
    }


def _audio_dir(json: str, audio_dir: Optional[str]) -> str:
    require_file(json, "rich-caption JSON file")
    if audio_dir is None:
        audio_dir = os.path.dirname(os.path.abspath(json))
    return require_dir(audio_dir, "audio folder")


def prepare_rich_captions(
    out_dir: str,
    rejects: RejectLog,
    *,
    json: str,
    audio_dir: Optional[str] = None,
    id_prefix: str = NAME,
) -> int:
    """Writes ``wav.scp``, ``text`` and ``rich_text``.

    Args:
        json: JSONL (or JSON list) of id/audio/caption/rich_caption items.
        audio_dir: Folder relative audio paths start from (default: the JSON
            file's folder).
        id_prefix: Prefix of all ids.
    """
    audio_dir = _audio_dir(json, audio_dir)
    writer = DataDirWriter(rejects)
    for where, index, item in iter_json_items(json, rejects, id_prefix):
        utt = item_id(id_prefix, item, index)
        try:
            x = _item(index, item, id_prefix, audio_dir)
        except BadItem as e:
            rejects.add(utt, where, str(e))
            continue
        writer.add(
            utt,
            where,
            audio={utt: x["audio"]},
            text=x["caption"],
            rich_text=x["rich_caption"],
        )
    return writer.write(out_dir)


def reflection_messages(
    caption: str, plan: str, attempt_id: str, heard: str, critique: str, final_id: str
) -> List[Dict[str, Any]]:
    """The ``dialogue.jsonl`` messages of one self-reflection round, laid
    out by the ``self_reflection`` template (what ``UALM.reflect`` decodes)."""
    return template_dialogue(
        TASKS.templates[REFLECTION_TEMPLATE],
        {
            "caption": caption,
            "rich_caption": plan,
            "attempt": attempt_id,
            REFLECTION_LISTEN: attempt_id,
            "heard_caption": heard,
            "critique": critique,
            "audio": final_id,
        },
    )


def _critique(attempt: Dict[str, Any], plan: str, heard: str, what: str) -> str:
    """The attempt's critique: given (checked) or computed from the plan and
    the attempt's rich caption."""
    given = attempt.get("critique")
    if given is None:
        return critique_text(parse(plan), parse(heard))
    if not isinstance(given, str):
        raise BadItem(f"{what}: 'critique' is not a string")
    try:
        parse_critique(given)
    except CritiqueError as e:
        raise BadItem(f"{what}: {e}") from e
    return " ".join(given.split())


def prepare_reflection(
    out_dir: str,
    rejects: RejectLog,
    *,
    json: str,
    audio_dir: Optional[str] = None,
    id_prefix: str = NAME,
) -> int:
    """Writes ``dialogue.jsonl`` (one self-reflection round per attempt,
    ids ``<item id>_r<n>``) and ``wav.scp`` (the clips, ids ``<item id>``,
    and the attempts, ``<item id>_v<n>``).

    Args:
        json: JSONL (or JSON list) of items with 'attempts' (doc/rich_captions.md).
        audio_dir: Folder relative audio paths start from (default: the JSON
            file's folder).
        id_prefix: Prefix of all ids.
    """
    audio_dir = _audio_dir(json, audio_dir)
    writer = DataDirWriter(rejects)
    for where, index, item in iter_json_items(json, rejects, id_prefix):
        utt = item_id(id_prefix, item, index)
        try:
            x = _item(index, item, id_prefix, audio_dir)
            attempts = item.get("attempts")
            if not isinstance(attempts, list) or not attempts:
                raise BadItem("no 'attempts' (a list): not a self-reflection item")
        except BadItem as e:
            rejects.add(utt, where, str(e))
            continue
        for n, attempt in enumerate(attempts, 1):
            dialogue_id, attempt_id = f"{utt}_r{n}", f"{utt}_v{n}"
            what = f"attempt {n}"
            try:
                if not isinstance(attempt, dict):
                    raise BadItem(f"{what} is not a JSON object")
                path = _audio(attempt, audio_dir, f"{what}'s")
                heard = _rich(attempt, what)
                critique = _critique(attempt, x["rich_caption"], heard, what)
            except BadItem as e:
                rejects.add(dialogue_id, where, str(e))
                continue
            writer.add(
                dialogue_id,
                where,
                audio={utt: x["audio"], attempt_id: path},
                messages=reflection_messages(
                    x["caption"], x["rich_caption"], attempt_id, heard, critique, utt
                ),
            )
    return writer.write(out_dir)
