"""Text-only instruction data: Alpaca, OpenAI-chat and ShareGPT items.

Keeping the LLM's text abilities needs plain instruction data (the spec's
text share of the blend). Three item shapes are recognised per item, so a
file may mix them: ``{"instruction", "input", "output"}`` (Alpaca, optional
``system``), ``{"messages": [{"role", "content"}]}`` (content a string or a
list of text parts) and ``{"conversations": [{"from", "value"}]}``. The
result is a ``dialogue.jsonl`` with no ``wav.scp``.
"""

from typing import Any, Dict, List

from espnet2.ualm.data.corpora.common import BadItem, item_id, require_file
from espnet2.ualm.data.corpora.dialogue import (
    Message,
    dialogue_problem,
    map_role,
    message,
    text_part,
)
from espnet2.ualm.data.corpora.readers import iter_json_items
from espnet2.ualm.data.corpora.writer import DataDirWriter
from espnet2.ualm.data.rejects import RejectLog

NAME = "text_instruct"


def prepare_text_instruct(
    out_dir: str,
    rejects: RejectLog,
    *,
    json: str,
    id_prefix: str = "text",
) -> int:
    """Writes ``dialogue.jsonl``.

    Ids are ``<id_prefix>_<item id>``, or ``<id_prefix>_<index>`` (the item's
    position in the file) when items have no ``id``.

    Args:
        json: JSON list or JSONL file of instruction or chat items.
        id_prefix: Prefix of all ids; give each dataset its own.
    """
    require_file(json, "instruction file")
    writer = DataDirWriter(rejects)
    for where, index, item in iter_json_items(json, rejects, id_prefix):
        dialogue_id = item_id(id_prefix, item, index)
        try:
            messages = _messages_of(item)
            problem = dialogue_problem(messages)
            if problem:
                raise BadItem(problem)
        except BadItem as e:
            rejects.add(dialogue_id, where, str(e))
            continue
        writer.add(dialogue_id, where, messages=messages)
    return writer.write(out_dir)


def _messages_of(item: Dict[str, Any]) -> List[Message]:
    if "messages" in item:
        return _chat(item["messages"], "role", "content")
    if "conversations" in item:
        return _chat(item["conversations"], "from", "value")
    if "instruction" in item and "output" in item:
        return _alpaca(item)
    raise BadItem("unknown item shape (no messages, conversations or instruction)")


def _alpaca(item: Dict[str, Any]) -> List[Message]:
    fields = {
        k: item.get(k) or "" for k in ("system", "instruction", "input", "output")
    }
    if not all(isinstance(v, str) for v in fields.values()):
        raise BadItem("instruction/input/output/system must be strings")
    pieces = (fields["instruction"].strip(), fields["input"].strip())
    prompt = "\n\n".join(p for p in pieces if p)
    messages = []
    if fields["system"].strip():
        messages.append(message("system", _text(fields["system"])))
    messages.append(message("user", _text(prompt)))
    messages.append(message("assistant", _text(fields["output"])))
    return messages


def _chat(turns: Any, role_key: str, text_key: str) -> List[Message]:
    if not isinstance(turns, list):
        raise BadItem(f"'{role_key}' turns are not a list")
    messages = []
    for i, turn in enumerate(turns):
        if not isinstance(turn, dict):
            raise BadItem(f"turn {i} is not an object")
        raw_role = turn.get(role_key, turn.get("role"))
        role = map_role(raw_role)
        if role is None:
            raise BadItem(f"turn {i}: unsupported role {raw_role!r}")
        content = turn.get(text_key, turn.get("content"))
        messages.append(message(role, _content(content, i)))
    return messages


def _content(content: Any, i: int) -> List[Dict[str, str]]:
    if isinstance(content, str):
        return _text(content)
    if not isinstance(content, list):
        raise BadItem(f"turn {i}: content is neither text nor a list of parts")
    parts = []
    for part in content:
        if not isinstance(part, dict) or part.get("type") != "text":
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise BadItem(f"turn {i}: non-text content ({kind}) in a text-only corpus")
        parts += _text(str(part.get("text", "")))
    return parts


def _text(text: str) -> List[Dict[str, str]]:
    return [text_part(text.strip())] if text.strip() else []
