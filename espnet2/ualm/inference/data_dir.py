"""Inference requests from an ESPnet data directory, as training reads them.

The same files stage 5 and the training dataset read: ``text``,
``rich_text``, ``wav.scp``, ``dialogue.jsonl`` (doc/data_layout.md). A task
is rendered with the template training used for it (``audio_qa`` data
directories hold dialogues, read with the ``audio_dialogue`` template), and
only the prompt's fields are read: the answers may be absent.
"""

import os
from typing import Dict, List, Optional, Tuple

from espnet2.ualm.data.io import read_jsonl
from espnet2.ualm.data.kaldi_dir import read_kv
from espnet2.ualm.data.rejects import RejectLog
from espnet2.ualm.inference.requests import Request
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

    Items whose prompt files lack an entry are rejected (counted, listed);
    a missing file for the whole task is an error naming it.
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
        wavs = read_kv(wav_scp) if os.path.isfile(wav_scp) else {}
        requests = []
        dialogues = {str(row["id"]): row.get("messages") for row in read_jsonl(path)}
        for did, messages in sorted(dialogues.items()):
            audio = {}
            for msg in messages:
                for part in msg.get("content") or ():
                    if part.get("type") in ("audio", "audio_input"):
                        aid = part.get("audio")
                        if aid in wavs:
                            audio[aid] = wavs[aid]
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
        tables[field] = read_kv(path)
    if not tables:
        raise ValueError(f"task {task}: its prompt reads no field of the data dir")
    ids = sorted(set().union(*[set(t) for t in tables.values()]))
    requests = []
    for utt in ids:
        absent = [f for f, t in tables.items() if utt not in t]
        if absent:
            rejects.add(utt, data_dir, f"no {absent[0]!r} entry")
            continue
        fields = {f: t[utt] for f, t in tables.items()}
        requests.append(Request(utt, task, fields, plan=plan, template=name))
    return requests, rejects
