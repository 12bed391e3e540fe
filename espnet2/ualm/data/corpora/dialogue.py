"""Building ``dialogue.jsonl`` messages from the chat formats found in the wild.

Corpora name roles differently (ShareGPT/LLaVA ``human``/``gpt``, OpenAI
``user``/``assistant``); this maps them onto the three roles of
doc/data_layout.md and says why a conversation cannot be used, so the
converters for audio QA and for text-only instructions agree.
"""

from typing import Any, Dict, List, Optional

ROLES = {
    "system": "system",
    "human": "user",
    "user": "user",
    "gpt": "assistant",
    "assistant": "assistant",
}

Message = Dict[str, Any]


def text_part(text: str) -> Dict[str, str]:
    return {"type": "text", "text": text}


def audio_part(audio_id: str) -> Dict[str, str]:
    return {"type": "audio", "audio": audio_id}


def message(role: str, parts: List[Dict[str, str]]) -> Message:
    return {"role": role, "content": parts}


def map_role(raw: Any) -> Optional[str]:
    """Our role for a corpus's role name, None when it has no equivalent."""
    return ROLES.get(str(raw).strip().lower()) if isinstance(raw, str) else None


def dialogue_problem(messages: List[Message]) -> Optional[str]:
    """Why a conversation is unusable for training, or None when it is fine."""
    if not messages:
        return "no messages"
    for i, msg in enumerate(messages):
        if not msg["content"]:
            return f"message {i} ({msg['role']}) is empty"
    if not any(m["role"] == "assistant" for m in messages):
        return "no assistant message (nothing to learn)"
    if not any(m["role"] == "user" for m in messages):
        return "no user message"
    return None
