"""Clarifying dialogues (UALM-Reason): a vague prompt, the assistant's
questions and the user's answers, then the rich caption and the audio.

``dialogue_messages`` writes one as ``dialogue.jsonl`` messages (the
``clarifying_dialogue`` template of the task registry, the layout
``UALM.dialogue`` decodes); ``SimulatedUser`` answers questions from a
data directory's ``clarify.jsonl`` (the mini corpus writes one per clip from
its hidden parameters), so that dialogues run without a person in evaluation.
``clarify.jsonl``, one clip per line::

    {"id": "minisound_test_00003", "prompt": "Some beeps.", "asked": 2,
     "questions": [{"kind": "count", "question": "How many beeps do you want?",
                    "answer": "Three."}, ...]}

``questions``: every question the clip's parameters answer, in the order a
training dialogue asks them; ``asked``: how many of them its dialogue asks.
"""

import dataclasses
import json
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from espnet2.ualm.tokens.tasks import DIALOGUE_PROMPT

# What the simulated user says to a question its clip's parameters do not
# answer (the model asked something the corpus never asks).
FALLBACK_ANSWER = "Any is fine."
CLARIFY_FILE = "clarify.jsonl"


class ClarifyError(ValueError):
    """A ``clarify.jsonl`` line is malformed (the message names file and line)."""


@dataclasses.dataclass(frozen=True)
class Clarification:
    """One question the assistant may ask and the answer the clip gives."""

    kind: str
    question: str
    answer: str


@dataclasses.dataclass(frozen=True)
class ClipClarifications:
    """One clip's vague prompt, its questions and how many a dialogue asks."""

    id: str
    prompt: str
    questions: Tuple[Clarification, ...]
    asked: int

    def to_json(self) -> Dict[str, Any]:
        return {
            "id": self.id,
            "prompt": self.prompt,
            "asked": self.asked,
            "questions": [dataclasses.asdict(q) for q in self.questions],
        }

    def turns(self) -> List[Tuple[str, str]]:
        """The (question, answer) turns of the clip's training dialogue."""
        return [(q.question, q.answer) for q in self.questions[: self.asked]]


def dialogue_messages(
    prompt: str,
    turns: Sequence[Tuple[str, str]],
    rich_caption: Optional[str] = None,
    audio: Optional[str] = None,
) -> List[Dict[str, Any]]:
    """The conversation of a clarifying dialogue (``dialogue.jsonl``
    messages): the user's prompt, each question and its answer, then (when
    given) the assistant's rich caption and audio id."""
    messages = [_message("user", [_text(DIALOGUE_PROMPT.format(caption=prompt))])]
    for question, answer in turns:
        messages.append(_message("assistant", [_text(question)]))
        messages.append(_message("user", [_text(answer)]))
    last = []
    if rich_caption is not None:
        last.append(_text(rich_caption))
    if audio is not None:
        last.append({"type": "audio", "audio": audio})
    if last:
        messages.append(_message("assistant", last))
    return messages


def _text(text: str) -> Dict[str, str]:
    return {"type": "text", "text": text}


def _message(role: str, content: List[Dict[str, str]]) -> Dict[str, Any]:
    return {"role": role, "content": content}


def normalise_question(question: str) -> str:
    """A question as the simulated user matches it: lower case, single spaces."""
    return " ".join(question.lower().split())


def read_clarifications(path: str) -> Dict[str, ClipClarifications]:
    """The clips of a ``clarify.jsonl`` (module docstring) by id; a bad line
    raises ``ClarifyError`` naming ``path:line`` and what is wrong."""
    out: Dict[str, ClipClarifications] = {}
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                row = json.loads(line)
                clip = ClipClarifications(
                    str(row["id"]),
                    str(row["prompt"]),
                    tuple(
                        Clarification(
                            str(q["kind"]), str(q["question"]), str(q["answer"])
                        )
                        for q in row["questions"]
                    ),
                    int(row["asked"]),
                )
            except (ValueError, KeyError, TypeError) as e:
                raise ClarifyError(f"{where}: {type(e).__name__}: {e}") from e
            if not 0 <= clip.asked <= len(clip.questions):
                raise ClarifyError(
                    f"{where}: asked {clip.asked} of {len(clip.questions)} questions"
                )
            if clip.id in out:
                raise ClarifyError(f"{where}: id {clip.id!r} repeats")
            out[clip.id] = clip
    return out


class SimulatedUser:
    """Answers the assistant's questions about each item from its clip's
    clarifications (the hidden parameters): the answer of the question that
    matches (``normalise_question``), else ``FALLBACK_ANSWER``."""

    def __init__(self, clips: Mapping[str, ClipClarifications]):
        self.clips = dict(clips)
        self._answers = {
            uid: {normalise_question(q.question): q.answer for q in c.questions}
            for uid, c in self.clips.items()
        }

    @classmethod
    def from_file(cls, path: str) -> "SimulatedUser":
        return cls(read_clarifications(path))

    def answer(self, item_id: str, question: Optional[str]) -> str:
        """The answer to ``question`` about item ``item_id``."""
        if item_id not in self._answers:
            raise KeyError(f"simulated user: no clarifications for item {item_id!r}")
        table = self._answers[item_id]
        return table.get(normalise_question(question or ""), FALLBACK_ANSWER)
