"""Inference requests from an ESPnet data directory, as training reads them.

The same files stage 5 and the training dataset read: ``text``,
``rich_text``, ``wav.scp``, ``dialogue.jsonl`` (doc/data_layout.md). A task
is rendered with the template training used for it (``audio_qa`` data
directories hold dialogues, read with the ``audio_dialogue`` template), and
only the prompt's fields are read: the answers may be absent.
"""

import os
from typing import Any, Dict, List, Optional, Tuple

from espnet2.ualm.data.io import read_jsonl
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.inference.requests import Request
from espnet2.ualm.tokens.conversation import message_parts
from espnet2.ualm.tokens.tasks import FILE_NAMES, TaskRegistry
from espnet2.ualm.tokens.templates import TaskTemplate, format_fields


def _prompt_fields(template: TaskTemplate) -> List[Tuple[str, str]]:
    """``(field, segment kind)`` of the messages before the answer."""
    out: List[Tuple[str, str]] = []
    for message in template.prompt_messages():
        for seg in message.segments:
            for name in format_fields(seg.value):
                if (name, seg.kind) not in out:
                    out.append((name, seg.kind))
    return out


def read_requests(
    data_dir: str,
    task: str,
    tasks: TaskRegistry,
    plan: Optional[Tuple[str, ...]] = None,
) -> Tuple[List[Request], RejectLog]:
    """One request per item of ``data_dir`` for ``task`` (of ``tasks``),
    sorted by id.

    Bad items (no or an empty entry in a prompt file, a malformed line or
    dialogue) are rejected one by one (counted, listed with their id); a
    missing file for the whole task is an error naming it.
    """
    spec = tasks.get(task)
    name = spec.template
    template = tasks.templates[name]
    rejects = RejectLog(f"inference requests {data_dir} ({task})")
    plan = plan if plan is not None else spec.reply
    wav_scp = os.path.join(data_dir, FILE_NAMES["wav"])
    if template.conversation:
        path = os.path.join(data_dir, FILE_NAMES["dialogue"])
        if not os.path.isfile(path):
            raise FileNotFoundError(f"task {task} reads {path}, which does not exist")
        # a bad wav.scp line is reported by the dialogue that names its audio
        wav_rejects = RejectLog(f"inference requests {wav_scp}")
        wavs = read_kv(wav_scp, wav_rejects) if os.path.isfile(wav_scp) else {}
        requests = []
        rows = read_jsonl(path, rejects)
        for row in sorted(rows, key=lambda r: str(r["id"])):
            did, messages = str(row["id"]), row.get("messages")
            try:
                audio = _dialogue_audio(messages, wavs)
            except ValueError as e:
                rejects.add(did, path, str(e))
                continue
            requests.append(
                Request(did, task, {"messages": messages}, audio, plan, template=name)
            )
        return requests, rejects
    tables: Dict[str, Dict[str, str]] = {}
    for field, kind in _prompt_fields(template):
        fname = "wav" if kind == "audio_input" else spec.file_of(field)
        path = os.path.join(data_dir, FILE_NAMES.get(fname, fname))
        if not os.path.isfile(path):
            raise FileNotFoundError(f"task {task} reads {path}, which does not exist")
        tables[field] = read_kv(path, rejects)  # empty or bad lines: rejected
    if not tables:
        raise ValueError(f"task {task}: its prompt reads no field of the data dir")
    # ids whose line was dropped (a kept first line of a duplicate is used)
    listed = {r.utt_id for r in rejects.items if not r.reason.startswith("duplicate")}
    ids = sorted(set().union(*[set(t) for t in tables.values()]))
    requests = []
    for utt in ids:
        absent = [f for f, t in tables.items() if utt not in t]
        if absent:
            if utt not in listed:  # else its bad line is listed already
                rejects.add(utt, data_dir, f"no {absent[0]!r} entry")
            continue
        fields = {f: t[utt] for f, t in tables.items()}
        requests.append(Request(utt, task, fields, plan=plan, template=name))
    return requests, rejects


def _dialogue_audio(messages: Any, wavs: Dict[str, str]) -> Dict[str, str]:
    """The wav.scp entries of the audio a dialogue names (a malformed
    dialogue: ``ValueError``)."""
    if not isinstance(messages, list) or not messages:
        raise ValueError("no 'messages' list")
    audio = {}
    for i, msg in enumerate(messages):
        for part in message_parts(msg, f"message {i}"):
            if part.get("type") in ("audio", "audio_input"):
                aid = part.get("audio")
                if aid in wavs:
                    audio[aid] = wavs[aid]
    return audio
